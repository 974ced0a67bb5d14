"""What decontamination and the pair filters keep of synthesize rows: one `RowChecker` for the
decontaminate stage's shards and for the public `decontaminate` function (in memory).

Rows are synthesize records as dicts (`Entry.to_dict`, or a shard's rows). A pair is checked as
its instruction followed by its response (an n-gram may span both); a document as its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
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


def pair_keys(
    shards: Iterable[tuple[int, list[dict[str, Any]]]], filters: FilterSettings
) -> Iterator[tuple[int, int]]:
    """(position, key) of every pair the per-pair filters keep, for `DuplicateTable.build`."""
    for index, rows in shards:
        for r, row in enumerate(rows):
            doc = DocumentView(row["text"])
            for p, pair in enumerate(row.get("pairs") or []):
                instruction, response = pair["instruction"], pair["response"]
                if pair_problem(instruction, response, doc, filters) is None:
                    yield position(index, r, p), pair_key(instruction, response)


class RowChecker:
    """Checks rows against the n-gram index and the pair filters (`duplicates`: the corpus's
    table of repeated pairs, when the options ask for dedupe)."""

    def __init__(
        self, index: NgramIndex, options: DecontaminateOptions, duplicates: DuplicateTable | None = None
    ) -> None:
        self.index, self.options, self.duplicates = index, options, duplicates

    def check(self, shard_index: int, rows: list[dict[str, Any]]) -> ShardOutcome:
        """The kept rows (text cut, pairs filtered), the contamination lines and the counts."""
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
        shard = ShardOutcome()
        for r, row in enumerate(rows):
            hits = {p: found.get((r, p), []) for p in [None, *range(len(row.get("pairs") or []))]}
            words = {p: segments[segment_of[(r, p)]] for p in hits if hits[p] or p is None}
            if (kept := self._row(shard_index, r, row, hits, words, shard)) is not None:
                shard.rows.append(kept)
        return shard

    def _row(
        self,
        shard_index: int,
        r: int,
        row: dict[str, Any],
        hits: dict[int | None, list[Hit]],
        words: dict[int | None, list[str]],
        shard: ShardOutcome,
    ) -> dict[str, Any] | None:
        """The row as written (text cut, pairs filtered), or None when the document is dropped."""
        stats, pairs = shard.stats, list(row.get("pairs") or [])
        stats["documents_in"] += 1
        stats["pairs_in"] += len(pairs)
        action, text = None, row["text"]
        if hits[None]:
            cut = None
            if self.options.document_action == "cut":
                cut = cut_document(text, [(h.start, h.length) for h in hits[None]], self.options.window)
            action = "document_cut" if cut is not None else "document_dropped"
            shard.record(row, None, hits[None], words[None], action)
            text = cut if cut is not None else text
        doc = DocumentView(row["text"], words[None])
        reasons: list[str | None] = []
        for p, pair in enumerate(pairs):
            if hits[p]:
                shard.record(row, p, hits[p], words[p], "pair_dropped")
                reasons.append("contaminated")
            else:
                reasons.append(self._pair_reason(shard_index, r, p, pair, doc))
        if action == "document_dropped":
            stats["documents_dropped"] += 1
            for reason in reasons:
                bump(stats["pairs_dropped"], reason or "document_dropped")
            return None
        stats["documents_cut"] += action == "document_cut"
        for reason in reasons:
            if reason is not None:
                bump(stats["pairs_dropped"], reason)
        kept = [pair for pair, reason in zip(pairs, reasons) if reason is None]
        stats["documents_out"] += 1
        stats["pairs_out"] += len(kept)
        return {**row, "text": text, "pairs": kept}

    def _pair_reason(
        self, shard: int, r: int, p: int, pair: Mapping[str, Any], doc: DocumentView
    ) -> str | None:
        instruction, response = pair["instruction"], pair["response"]
        problem = pair_problem(instruction, response, doc, self.options.filters)
        if problem is not None:
            return problem
        if self.duplicates is not None:
            if self.duplicates.is_duplicate(pair_key(instruction, response), position(shard, r, p)):
                return "duplicate"
        return None
