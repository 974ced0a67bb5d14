"""What decontamination and the pair filters keep of synthesize rows: one `RowChecker` for the
decontaminate stage's shards and for the public `decontaminate` function (in memory).

Rows are synthesize records as dicts (`Entry.to_dict`, or a shard's rows). A pair is checked as
its instruction followed by its response (an n-gram may span both); a document as its text.

Every decision but dedupe is a pure function of one row (`RowChecker.verdicts`), so the pass that
builds the duplicate table before the shards run (`pair_keys`) knows which pairs survive all of
them: a repeated pair's kept copy is its first copy that survives every other decision, and a
later copy is a duplicate only when an earlier one is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from .filters import DocumentView, DuplicateTable, FilterSettings, pair_key, pair_problem, position
from .ngrams import Hit, NgramIndex, tokens
from .outcome import ShardOutcome, bump, cut_document

DocumentAction = Literal["cut", "drop"]


@dataclasses.dataclass(frozen=True)
class DecontaminateOptions:
    n: int = 13
    min_words: int = 8
    document_action: DocumentAction = "cut"
    window: int = 200
    filters: FilterSettings = FilterSettings()


@dataclasses.dataclass
class RowVerdict:
    """One row's fate before dedupe: `action` None, "document_cut" or "document_dropped"; `text`
    as written; per pair, why it is dropped ("contaminated", a filter's reason) or None."""

    action: str | None
    text: str
    reasons: list[str | None]
    hits: dict[int | None, list[Hit]]  # document (None) and pair index -> its hits
    words: dict[int | None, list[str]]  # the normalised words of the document and of each hit pair

    @property
    def dropped(self) -> bool:
        return self.action == "document_dropped"


def pair_keys(
    shards: Iterable[tuple[int, list[dict[str, Any]]]], index: NgramIndex, options: DecontaminateOptions
) -> Iterator[tuple[int, int]]:
    """(position, key) of every pair that survives all but dedupe, for `DuplicateTable.build`."""
    checker = RowChecker(index, options)
    for shard_index, rows in shards:
        for r, (row, verdict) in enumerate(zip(rows, checker.verdicts(rows))):
            if verdict.dropped:
                continue
            for p, (pair, reason) in enumerate(zip(row.get("pairs") or [], verdict.reasons)):
                if reason is None:
                    yield position(shard_index, r, p), pair_key(pair["instruction"], pair["response"])


class RowChecker:
    """Checks rows against the n-gram index and the pair filters (`duplicates`: the corpus's
    table of repeated pairs, when the options ask for dedupe)."""

    def __init__(
        self, index: NgramIndex, options: DecontaminateOptions, duplicates: DuplicateTable | None = None
    ) -> None:
        self.index, self.options, self.duplicates = index, options, duplicates

    def verdicts(self, rows: list[dict[str, Any]]) -> list[RowVerdict]:
        """Every row's verdict before dedupe (one index lookup for all of them)."""
        segments: list[list[str]] = []
        segment_of: dict[tuple[int, int | None], int] = {}  # (row, pair index or None) -> segment
        for r, row in enumerate(rows):
            segment_of[(r, None)] = len(segments)
            segments.append(tokens(row["text"]))
            for p, pair in enumerate(row.get("pairs") or []):
                segment_of[(r, p)] = len(segments)
                segments.append(tokens(pair["instruction"]) + tokens(pair["response"]))
        owner = {i: key for key, i in segment_of.items()}
        found: dict[tuple[int, int | None], list[Hit]] = {}
        for hit in self.index.find(segments):
            found.setdefault(owner[hit.segment], []).append(hit)
        verdicts = []
        for r, row in enumerate(rows):
            hits = {p: found.get((r, p), []) for p in [None, *range(len(row.get("pairs") or []))]}
            words = {p: segments[segment_of[(r, p)]] for p in hits if hits[p] or p is None}
            verdicts.append(self._verdict(row, hits, words))
        return verdicts

    def _verdict(
        self, row: dict[str, Any], hits: dict[int | None, list[Hit]], words: dict[int | None, list[str]]
    ) -> RowVerdict:
        action, text = None, row["text"]
        if hits[None]:
            cut = None
            if self.options.document_action == "cut":
                cut = cut_document(text, [(h.start, h.length) for h in hits[None]], self.options.window)
            action = "document_cut" if cut is not None else "document_dropped"
            text = cut if cut is not None else text
        doc = DocumentView(row["text"], words[None])
        reasons: list[str | None] = []
        for p, pair in enumerate(row.get("pairs") or []):
            if hits[p]:
                reasons.append("contaminated")
            else:
                reasons.append(pair_problem(pair["instruction"], pair["response"], doc, self.options.filters))
        return RowVerdict(action, text, reasons, hits, words)

    def check(self, shard_index: int, rows: list[dict[str, Any]]) -> ShardOutcome:
        """The kept rows (text cut, pairs filtered), the contamination lines and the counts."""
        shard = ShardOutcome()
        for r, (row, verdict) in enumerate(zip(rows, self.verdicts(rows))):
            if (kept := self._row(shard_index, r, row, verdict, shard)) is not None:
                shard.rows.append(kept)
        return shard

    def _row(
        self, shard_index: int, r: int, row: dict[str, Any], verdict: RowVerdict, shard: ShardOutcome
    ) -> dict[str, Any] | None:
        """The row as written (text cut, pairs filtered), or None when the document is dropped.
        Each pair is counted under one reason: its own (contaminated, a filter's), else
        document_dropped with its document, else duplicate when an earlier copy is kept."""
        stats, pairs, hits, words = shard.stats, list(row.get("pairs") or []), verdict.hits, verdict.words
        stats["documents_in"] += 1
        stats["pairs_in"] += len(pairs)
        if verdict.action is not None:
            shard.record(row, None, hits[None], words[None], verdict.action)
        for p in range(len(pairs)):
            if hits[p]:
                shard.record(row, p, hits[p], words[p], "pair_dropped")
        if verdict.dropped:
            stats["documents_dropped"] += 1
            for reason in verdict.reasons:
                bump(stats["pairs_dropped"], reason or "document_dropped")
            return None
        reasons = [
            reason or self._duplicate(position(shard_index, r, p), pair)
            for p, (pair, reason) in enumerate(zip(pairs, verdict.reasons))
        ]
        stats["documents_cut"] += verdict.action == "document_cut"
        for reason in reasons:
            if reason is not None:
                bump(stats["pairs_dropped"], reason)
        kept = [pair for pair, reason in zip(pairs, reasons) if reason is None]
        stats["documents_out"] += 1
        stats["pairs_out"] += len(kept)
        return {**row, "text": verdict.text, "pairs": kept}

    def _duplicate(self, pos: int, pair: dict[str, Any]) -> str | None:
        """The reason "duplicate" when an earlier copy of this surviving pair is kept, else None."""
        if self.duplicates is not None:
            if self.duplicates.is_duplicate(pair_key(pair["instruction"], pair["response"]), pos):
                return "duplicate"
        return None
