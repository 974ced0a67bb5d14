"""The report's figures of each stage output, from its manifest, summary and data shards.

Synthesize data shards are read batch by batch, and every statistic is a bounded counter (word
lengths are capped, the openings counter is pruned, duplicate instructions are counted on a
hash sample that shrinks when it outgrows its cap), so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import random
import shlex
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io.output import SUMMARY
from ..synthesis.format import Pair
from .read import batches, cut, read_json, shard_files

TOP_OPENINGS = 20
OPENING_WORDS = 3
LENGTH_CAP = 4000  # word lengths above this are counted as this, so the counters stay small
OPENINGS_PRUNE_AT = 200_000  # distinct openings kept before pruning to the most frequent
OPENINGS_KEEP = 20_000
DUPLICATE_SAMPLE_CAP = 500_000  # instruction hashes kept; past it the hash sample halves

# What the statistics need of a synthesize record; the text is read only for sampled entries.
_SYNTH_COLUMNS = ("id", "doc_id", "part", "n_parts", "pairs", "chain_id", "round", "inherits", "n_context",
                  "prompt_tokens", "generated_tokens", "finish_reason", "source")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Bounded statistics


class DuplicateCounter:
    """Share of items that repeat an earlier item (casefolded, stripped), in bounded memory.

    Each item is hashed to 64 bits; only hashes whose lowest `level` bits are zero are kept
    (with their counts). Equal items have equal hashes, so the kept ones are a uniform sample
    of *distinct* items together with all their repeats: the share of repeats in the sample
    estimates the corpus's share. The count is exact while `level` is 0, i.e. until more than
    `cap` distinct items were seen; then `level` rises by one and half the sample is dropped.
    """

    def __init__(self, cap: int = DUPLICATE_SAMPLE_CAP) -> None:
        self.cap = cap
        self.level = 0
        self.counts: dict[int, int] = {}

    def add(self, item: str) -> None:
        digest = hashlib.blake2b(item.casefold().strip().encode("utf-8"), digest_size=8).digest()
        key = int.from_bytes(digest, "little")
        if key & ((1 << self.level) - 1):
            return
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.counts) > self.cap:
            self.level += 1
            mask = (1 << self.level) - 1
            self.counts = {k: v for k, v in self.counts.items() if not k & mask}

    def share(self) -> float | None:
        total = sum(self.counts.values())
        return (total - len(self.counts)) / total if total else None

    @property
    def exact(self) -> bool:
        return self.level == 0


def _quantile(counter: Mapping[int, int], q: float) -> int | None:
    total = sum(counter.values())
    if not total:
        return None
    target, seen = q * total, 0
    for value in sorted(counter):
        seen += counter[value]
        if seen >= target:
            return value
    return max(counter)


def _length_figures(counter: Mapping[int, int]) -> dict[str, Any]:
    total = sum(counter.values())
    return {
        "count": total,
        "mean": round(sum(k * v for k, v in counter.items()) / total, 2) if total else None,
        "median": _quantile(counter, 0.5),
        "p90": _quantile(counter, 0.9),
        "p99": _quantile(counter, 0.99),
        "max_counted": max(counter) if counter else None,
        "cap": LENGTH_CAP,
    }


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# ---------------------------------------------------------------------------------------------
# The three stages' figures


def synthesize_figures(
    folder: Path, manifest: dict[str, Any], sample_size: int, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Figures of a synthesize output, from its data shards and summary, and the sample.

    Parse rate = pairs / (pairs + fragments the parser dropped for any reason except
    `duplicate_instruction`): the share of the synthesizer's answer fragments that were well
    formed. A repeated instruction is a well-formed pair the parser drops on purpose, so it
    does not count against the format; it is measured instead by the duplicate-instruction
    share across the whole corpus.
    """
    from ..synthesis.classify import classify

    settings = manifest.get("settings", {})
    summary = read_json(folder / SUMMARY) or {}
    counts: Counter[str] = Counter()
    if summary.get("counts"):
        counts.update(summary["counts"])
    else:  # no summary yet: the recorded shards' counters are the same numbers
        for shard in (manifest.get("shards") or {}).values():
            counts.update(shard.get("counts", {}))
    by_prefix = lambda p: {k[len(p) :]: v for k, v in sorted(counts.items()) if k.startswith(p) and v}  # noqa: E731
    parse_dropped = summary.get("parse_dropped", by_prefix("parse_dropped."))
    rejected_by_reason = summary.get("rejected_by_reason", by_prefix("rejected."))
    rejected = summary.get("rejected_inputs", counts["rejected_inputs"])

    entries = documents = pairs = zero = hit_length = inheriting = 0
    prompt_tokens = generated_tokens = 0
    per_entry: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    instruction_words: Counter[int] = Counter()
    response_words: Counter[int] = Counter()
    openings: Counter[str] = Counter()
    duplicates = DuplicateCounter()
    rng = random.Random(seed)
    reservoir: list[tuple[int, dict[str, Any]]] = []
    sample: list[dict[str, Any]] = []

    for path in shard_files(folder, manifest):
        for rows, get in batches(path, _SYNTH_COLUMNS):
            for i, row in enumerate(rows):
                row_pairs = row.get("pairs") or []
                n = len(row_pairs)
                entries += 1
                documents += row.get("part") in (0, None)  # parts of a split document count once
                pairs += n
                zero += n == 0
                per_entry[n] += 1
                hit_length += row.get("finish_reason") == "length"
                inheriting += bool(row.get("inherits"))
                prompt_tokens += row.get("prompt_tokens") or 0
                generated_tokens += row.get("generated_tokens") or 0
                pair_kinds = []
                for pair in row_pairs:
                    instruction, response = pair.get("instruction") or "", pair.get("response") or ""
                    view = classify(Pair(instruction, response))
                    kind = view if isinstance(view, str) else view.kind
                    kinds[kind] += 1
                    pair_kinds.append(kind)
                    words = instruction.split()
                    instruction_words[min(len(words), LENGTH_CAP)] += 1
                    response_words[min(len(response.split()), LENGTH_CAP)] += 1
                    openings[" ".join(words[:OPENING_WORDS]).lower()] += 1
                    duplicates.add(instruction)
                if len(openings) > OPENINGS_PRUNE_AT:
                    # Heavy hitters survive pruning; the top 20 stays right unless a very long tail
                    # of rare openings adds up to more than the 20th, which is why it is a "top".
                    openings = Counter(dict(openings.most_common(OPENINGS_KEEP)))
                # Reservoir sampling (Algorithm R): a uniform sample, decided in one pass.
                index = entries - 1
                slot = index if len(reservoir) < sample_size else rng.randrange(index + 1)
                if slot < sample_size:
                    record = dict(row, pair_kinds=pair_kinds)
                    text, left_out = cut(get(i, "text"))
                    record["text"], record["text_cut"] = text, left_out
                    if slot == len(reservoir):
                        reservoir.append((index, record))
                    else:
                        reservoir[slot] = (index, record)
    for _, record in sorted(reservoir, key=lambda item: item[0]):
        kinds_of = record.pop("pair_kinds")
        record["pairs"] = [
            {"instruction": p.get("instruction") or "", "response": p.get("response") or "", "kind": k}
            for p, k in zip(record.get("pairs") or [], kinds_of)
        ]
        sample.append(record)

    format_drops = sum(v for k, v in parse_dropped.items() if k != "duplicate_instruction")
    this_run = summary.get("this_run") or {}
    shard_seconds = sum((s.get("seconds") or 0) for s in (manifest.get("shards") or {}).values())
    figures = {
        "folder": str(folder),
        "complete": bool(manifest.get("complete")),
        "fingerprint": manifest.get("fingerprint"),
        "engine": settings.get("engine"),
        "model": settings.get("model"),
        "rounds": settings.get("rounds"),
        "max_new_tokens": settings.get("max_new_tokens"),
        "shards": len(manifest.get("shards") or {}),
        "documents": documents,
        "entries": entries,
        "pairs": pairs,
        "pairs_per_entry": round(pairs / entries, 4) if entries else None,
        "parse_rate": _ratio(pairs, pairs + format_drops),
        "parse_dropped": dict(parse_dropped),
        "entries_without_pairs": zero,
        "zero_pair_share": _ratio(zero, entries),
        "entries_inheriting": inheriting,
        "duplicate_instruction_share": duplicates.share(),
        "duplicate_instruction_exact": duplicates.exact,
        "generations_hit_max_new_tokens": hit_length,
        "hit_max_new_tokens_share": _ratio(hit_length, entries),
        "rejected_inputs": rejected,
        "rejected_share": _ratio(rejected, documents + rejected),
        "rejected_by_reason": dict(rejected_by_reason),
        # the paper's corpus split (--fraction) and a clean stop at --target-tokens
        "fraction": settings.get("fraction", 1.0),
        "not_selected": summary.get("not_selected", counts["not_selected"]),
        "stopped": summary.get("stopped"),
        "target_tokens": summary.get("target_tokens"),
        "training_tokens_estimate": summary.get("training_tokens_estimate"),
        "long_docs": summary.get("long_docs", {}),
        "pairs_per_entry_histogram": {str(k): v for k, v in sorted(per_entry.items())},
        "kinds": dict(kinds.most_common()),
        "instruction_words": _length_figures(instruction_words),
        "response_words": _length_figures(response_words),
        "instruction_words_histogram": {str(k): v for k, v in sorted(instruction_words.items())},
        "response_words_histogram": {str(k): v for k, v in sorted(response_words.items())},
        "top_openings": openings.most_common(TOP_OPENINGS),
        "tokens": {
            "prompt": prompt_tokens,
            "generated": generated_tokens,
            "raw": summary.get("tokens", {}).get("raw", counts["raw_tokens"]),
        },
        "throughput": {
            "last_run": {
                k: this_run[k]
                for k in (
                    "seconds",
                    "documents",
                    "documents_per_s",
                    "raw_tokens_per_s",
                    "generated_tokens_per_s",
                )
                if k in this_run
            },
            "shard_seconds": round(shard_seconds, 3),
            "documents_per_shard_second": round(documents / shard_seconds, 3) if shard_seconds else None,
        },
    }
    return figures, sample


def decontaminate_figures(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Documents and pairs in and out, pairs dropped by reason, contamination by benchmark."""
    from ..quality.outcome import add_stats, new_stats

    summary = read_json(folder / SUMMARY)
    if summary is None or not manifest.get("complete"):  # unfinished: add up the recorded shards
        summary = new_stats()
        for shard in (manifest.get("shards") or {}).values():
            if isinstance(shard.get("stats"), dict):
                add_stats(summary, shard["stats"])
    settings = manifest.get("settings", {})
    keys = tuple(new_stats())
    figures = {k: summary.get(k) for k in keys}
    figures.update(
        folder=str(folder),
        complete=bool(manifest.get("complete")),
        benchmarks=dict((settings.get("index") or {}).get("benchmarks") or {}),  # name -> texts, n-grams
        fingerprint=manifest.get("fingerprint"),
        source_fingerprint=settings.get("source_fingerprint"),
    )
    return figures


def templify_figures(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    summary = read_json(folder / SUMMARY)
    if summary is None:  # an unfinished run: add up the recorded shards' stats
        from ..templating.stage import stats_from_json
        from ..templating.stats import TemplifyStats

        total = TemplifyStats()
        for shard in (manifest.get("shards") or {}).values():
            total.add(stats_from_json(shard["stats"]))
        summary = total.to_dict()
    keys = (
        "texts",
        "documents",
        "pairs_rendered",
        "pairs_dropped",
        "modes",
        "inversions",
        "shots_per_text",
        "families",
        "distinct_patterns",
        "distinct_patterns_total",
        "library_sizes",
        "bare_document_share",
        "mc_without_options_share",
        "pattern_consistency",
    )
    figures = {k: summary.get(k) for k in keys}
    figures.update(
        folder=str(folder),
        complete=bool(manifest.get("complete")),
        seed=manifest.get("settings", {}).get("seed"),
        fingerprint=manifest.get("fingerprint"),
        source_fingerprint=manifest.get("settings", {}).get("source_fingerprint"),
    )
    return figures


def mix_figures(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    settings = manifest.get("settings", {})
    share = manifest.get("token_share") or {}
    sources = []
    for s in manifest.get("sources") or []:
        if not isinstance(s, dict) or "tokens_selected" not in s:
            continue  # an unfinished mix lists only what it was asked to do
        rejected = sum((s.get("rejected") or {}).values())
        sources.append(
            {
                "name": s.get("name"),
                "weight": s.get("weight"),
                "sampling": s.get("sampling"),
                "documents_available": s.get("documents_available"),
                "documents_selected": s.get("documents_selected"),
                "tokens_available": s.get("tokens_available"),
                "tokens_selected": s.get("tokens_selected"),
                "token_share": share.get(s.get("name")),
                "ratio_requested": s.get("ratio_to_anchor_requested"),
                "ratio_achieved": s.get("ratio_to_anchor_achieved"),
                "rejected": rejected,
                "rejected_by_reason": dict(s.get("rejected") or {}),
                "rejected_share": _ratio(rejected, (s.get("documents_available") or 0) + rejected),
                "raw_excluded_converted": s.get("raw_excluded_converted", 0),
            }
        )
    sidecars = [
        s["provenance"] for s in manifest.get("shards") or [] if isinstance(s, dict) and s.get("provenance")
    ]
    return {
        "folder": str(folder),
        "complete": bool(manifest.get("complete")),
        "recipe": settings.get("recipe"),
        "format": manifest.get("format", settings.get("format")),
        "tokenizer": (manifest.get("tokenizer") or {}).get("name", settings.get("tokenizer")),
        "tokens_total": manifest.get("tokens_total"),
        "documents_total": manifest.get("documents_total"),
        "tokens_dropped_by_packing": manifest.get("tokens_dropped_by_packing"),
        "sources": sources,
        "corpus_split": manifest.get("corpus_split"),  # scratch: the converted documents left out of raw
        "provenance": {  # one sidecar per output shard (mixing/provenance.py), read by `instructpt trace`
            "shards": len(sidecars),
            "sequences": sum(p.get("sequences") or 0 for p in sidecars),
            "command": f"instructpt trace {shlex.quote(str(folder))} 0",
        },
        "input_fingerprints": [
            i.get("fingerprint") for i in settings.get("inputs", []) if i.get("fingerprint")
        ],
    }
