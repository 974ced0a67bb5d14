"""The synthesize stage's summary: the figures users read first, from the shards' counters."""

from __future__ import annotations

import time
from typing import Any

from ..executor import Progress, throughput
from ..executor.progress import ratio
from ..records import Counts


def run_summary(markers: dict[int, dict[str, Any]], complete: bool, bar: Progress | None) -> dict[str, Any]:
    """summary.json's figures from the shards' markers; `bar`: this run's throughput."""
    total = Counts()
    for marker in markers.values():
        total.update(marker["counts"])
    summary = summarize(total)
    summary["complete"] = complete
    summary["shards"] = len(markers)
    if bar is not None:
        summary["this_run"] = throughput(bar.counts, time.monotonic() - bar.started)
        summary["this_run"]["documents"] = bar.counts["documents"]
    return summary


def summarize(total: Counts) -> dict[str, Any]:
    """The figures users read first, from the summed counters."""
    c = total.values
    entries = total["entries"]
    by_prefix = lambda prefix: {k[len(prefix) :]: v for k, v in sorted(c.items()) if k.startswith(prefix)}  # noqa: E731
    return {
        "documents": total["documents"],
        "entries": entries,
        "pairs": total["pairs"],
        "pairs_per_entry": round(ratio(total["pairs"], entries), 4),
        "entries_without_pairs": total["entries_without_pairs"],
        "entries_inheriting": total["entries_inheriting"],
        "prompts_with_context": total["prompts_with_context"],
        "context_over_budget": total["context_over_budget"],
        "long_docs": {
            "split": total["long_docs_split"],
            "parts": total["long_doc_parts"],
            "truncated": total["long_docs_truncated"],
            "skipped": total["long_docs_skipped"],
        },
        "rejected_inputs": total["rejected_inputs"],
        **({"not_selected": total["not_selected"]} if total["not_selected"] else {}),  # --fraction
        "rejected_by_reason": by_prefix("rejected."),
        "parse_dropped": by_prefix("parse_dropped."),
        "generations_hit_max_new_tokens": total["generations_hit_max_new_tokens"],
        "tokens": {
            "raw": total["raw_tokens"],
            "prompt": total["prompt_tokens"],
            "generated": total["generated_tokens"],
        },
        "counts": total.to_dict(),
    }
