"""What one decontaminate shard produces and how shards add up: cut documents, contamination
lines, counts by reason and by benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ngrams import Hit, tokens_with_spans

MAX_PIECES = 10  # GPT-3: a document cut into more pieces than this is dropped


def new_stats() -> dict[str, Any]:
    return {
        "documents_in": 0,
        "documents_out": 0,
        "documents_cut": 0,
        "documents_dropped": 0,
        "pairs_in": 0,
        "pairs_out": 0,
        "pairs_dropped": {},
        "contamination": {},
    }


def add_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if key == "contamination":
            for bench, counts in value.items():
                mine = total[key].setdefault(bench, {"documents": 0, "pairs": 0})
                for k, v in counts.items():
                    mine[k] = mine.get(k, 0) + v
        elif isinstance(value, dict):
            for k, v in value.items():
                total[key][k] = total[key].get(k, 0) + v
        else:
            total[key] += value


def cut_document(text: str, hits: Sequence[tuple[int, int]], window: int) -> str | None:
    """`text` without the words [start, start+length) of each hit and `window` characters each side
    (GPT-3); pieces shorter than `window` are discarded. None: drop the document (nothing left,
    or more than MAX_PIECES pieces)."""
    spans = tokens_with_spans(text)
    cuts = sorted(
        (max(0, spans[s][1] - window), min(len(text), spans[s + k - 1][2] + window)) for s, k in hits
    )
    merged: list[list[int]] = []
    for a, b in cuts:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    pieces, at = [], 0
    for a, b in merged:
        pieces.append(text[at:a])
        at = b
    pieces.append(text[at:])
    kept = [p.strip() for p in pieces if p.strip() and len(p.strip()) >= window]
    if not kept or len(kept) > MAX_PIECES:
        return None
    return "\n\n".join(kept)


class ShardOutcome:
    """What one shard produces: kept rows, contamination lines, counts."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.hits: list[dict[str, Any]] = []
        self.stats = new_stats()

    def record(
        self, row: dict[str, Any], pair: int | None, hits: list[Hit], words: list[str], action: str
    ) -> None:
        """One contamination line per benchmark (its first matched n-gram, how many matched)."""
        lines: dict[str, dict[str, Any]] = {}
        for h in hits:
            if h.benchmark in lines:
                lines[h.benchmark]["matches"] += 1
                continue
            lines[h.benchmark] = {
                "id": row.get("id"),
                "doc_id": row.get("doc_id"),
                "pair": pair,
                "benchmark": h.benchmark,
                "ngram": " ".join(words[h.start : h.start + h.length]),
                "matches": 1,
                "action": action,
            }
            counts = self.stats["contamination"].setdefault(h.benchmark, {"documents": 0, "pairs": 0})
            counts["documents" if pair is None else "pairs"] += 1
        self.hits.extend(lines.values())


def bump(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the CLI and `run`."""
    dropped = sum(summary["pairs_dropped"].values())
    benches = ", ".join(
        f"{b} {c['documents']} docs/{c['pairs']} pairs" for b, c in summary["contamination"].items()
    )
    return (
        f"{summary['documents_in']} documents ({summary['documents_cut']} cut, "
        f"{summary['documents_dropped']} dropped), {summary['pairs_in']} pairs ({dropped} dropped); "
        f"contamination: {benches or 'none'}"
    )
