"""`instructpt report`: one self-contained HTML page about a run's outputs.

Reads what `synthesize`, `templify` and `mix` wrote (a `instructpt run` workdir, or any of the
three output folders, each recognised by its manifest.json) and renders headline figures,
plotly charts, alerts for figures outside their usual range, and a browser over a seeded
random sample of documents with their pairs and the instruction-augmented text each became.

Boundaries: this module only reads finished or partial output folders; it never writes into
them, never runs a stage and never fetches anything. The page it writes embeds the plotly.js
bundle and all its data, so it opens offline (a Content-Security-Policy forbids any request).
Synthesize data shards are read batch by batch, and every statistic is a bounded counter (word
lengths are capped, the openings counter is pruned, duplicate instructions are counted on a
hash sample that shrinks when it outgrows its cap), so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import MissingExtraError, UsageError, first_line
from .format import Pair
from .output import MANIFEST, SUMMARY, write_atomic

# Alert thresholds: a figure beyond one of these is shown in red with an explanation.
PARSE_RATE_MIN = 0.90  # share of the synthesizer's fragments that parse as pairs
ZERO_PAIR_SHARE_MAX = 0.20  # share of entries without any pair
DUPLICATE_INSTRUCTION_SHARE_MAX = 0.10  # share of pairs repeating an earlier instruction
HIT_MAX_NEW_TOKENS_SHARE_MAX = 0.10  # share of generations cut by max_new_tokens
REJECTED_INPUT_SHARE_MAX = 0.05  # share of input records rejected (synthesize, each mix source)
RATIO_TOLERANCE = 0.005  # achieved mix ratio vs requested, relative

STAGES = ("synthesize", "templify", "mix")
TOP_OPENINGS = 20
OPENING_WORDS = 3
LENGTH_CAP = 4000  # word lengths above this are counted as this, so the counters stay small
OPENINGS_PRUNE_AT = 200_000  # distinct openings kept before pruning to the most frequent
OPENINGS_KEEP = 20_000
DUPLICATE_SAMPLE_CAP = 500_000  # instruction hashes kept; past it the hash sample halves
SAMPLE_TEXT_CHARS = 20_000  # longer texts are cut in the page (their length is stated)
BATCH_ROWS = 1024

# What the statistics need of a synthesize record; the text is read only for sampled entries.
_SYNTH_COLUMNS = ("id", "doc_id", "part", "n_parts", "pairs", "chain_id", "round", "inherits", "n_context",
                  "prompt_tokens", "generated_tokens", "finish_reason", "source")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Finding the stages


def _stage_of(folder: Path) -> tuple[str, dict[str, Any]] | None:
    """Which stage wrote `folder` (by its manifest), or None when it holds no manifest of ours."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(manifest, dict):
        return None
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    # A finished mix has its sources at the top level; an unfinished one only in its settings.
    if isinstance(manifest.get("sources"), list) or isinstance(settings.get("sources"), list):
        return "mix", manifest
    if "templates" in settings:
        return "templify", manifest
    if "rounds" in settings:
        return "synthesize", manifest
    return None


def find_stages(paths: Iterable[str | Path]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The output folders among `paths` by stage: {"synthesize": (folder, manifest), ...}.

    A path is one stage's output folder, or a folder whose subfolders are (a `run` workdir).
    """
    found: dict[str, tuple[Path, dict[str, Any]]] = {}

    def add(stage: str, folder: Path, manifest: dict[str, Any]) -> None:
        if stage in found and found[stage][0].resolve() != folder.resolve():
            raise UsageError(
                f"two {stage} outputs given ({found[stage][0]}, {folder}): report one run at a time"
            )
        found[stage] = (folder, manifest)

    paths = list(paths)
    if not paths:
        raise UsageError("no output folder given: pass a run workdir or synthesize/templify/mix outputs")
    for raw in paths:
        folder = Path(raw)
        if not folder.is_dir():
            raise UsageError(
                f"{folder} is not a folder: pass a run workdir or a synthesize/templify/mix output"
            )
        stage = _stage_of(folder)
        if stage is not None:
            add(stage[0], folder, stage[1])
            continue
        children = [(child, _stage_of(child)) for child in sorted(folder.iterdir()) if child.is_dir()]
        children = [(child, stage) for child, stage in children if stage is not None]
        if not children:
            raise UsageError(
                f"{folder} is not an instructpt output: no synthesize, templify or mix manifest.json "
                "in it or its subfolders"
            )
        for child, (name, manifest) in children:
            add(name, child, manifest)
    return found


# ---------------------------------------------------------------------------------------------
# Reading shards


def _shard_files(folder: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The data files of the shards the manifest records as written, in shard order."""
    shards = manifest.get("shards") or {}
    files = []
    for key in sorted(shards, key=lambda k: int(k)):
        path = folder / shards[key]["file"]
        if not path.is_file():
            raise UsageError(f"{path} is recorded in {folder / MANIFEST} but missing: rerun that stage")
        files.append(path)
    return files


def _batches(
    path: Path, light: Iterable[str]
) -> Iterator[tuple[list[dict[str, Any]], Callable[[int, str], Any]]]:
    """Batches of one Parquet/JSONL shard: rows with the `light` columns, and `get(i, column)`
    for any other column of row i, converted only when asked (texts are the bulk of a shard)."""
    light = list(light)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            handle = pq.ParquetFile(path)
            names = set(handle.schema_arrow.names)
            columns = [c for c in light if c in names]
            for batch in handle.iter_batches(batch_size=BATCH_ROWS):
                rows = batch.select(columns).to_pylist()
                yield rows, lambda i, column, batch=batch: batch.column(column)[i].as_py()
            return
        with open(path, encoding="utf-8") as lines:
            rows = []
            for line in lines:
                if line.strip():
                    rows.append(json.loads(line))
                if len(rows) == BATCH_ROWS:
                    yield rows, lambda i, column, rows=rows: rows[i].get(column)
                    rows = []
            if rows:
                yield rows, lambda i, column, rows=rows: rows[i].get(column)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
    except Exception as exc:  # pyarrow's errors: a torn or foreign file is the user's to fix
        if type(exc).__module__.startswith("pyarrow"):
            raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None


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


def _cut(text: Any) -> tuple[str, int]:
    """The text as the page shows it, and how many characters were left out."""
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(text) <= SAMPLE_TEXT_CHARS:
        return text, 0
    return text[:SAMPLE_TEXT_CHARS], len(text) - SAMPLE_TEXT_CHARS


# ---------------------------------------------------------------------------------------------
# The three stages' figures


def _synthesize_figures(
    folder: Path, manifest: dict[str, Any], sample_size: int, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Figures of a synthesize output, from its data shards and summary, and the sample.

    Parse rate = pairs / (pairs + fragments the parser dropped for any reason except
    `duplicate_instruction`): the share of the synthesizer's answer fragments that were well
    formed. A repeated instruction is a well-formed pair the parser drops on purpose, so it
    does not count against the format; it is measured instead by the duplicate-instruction
    share across the whole corpus.
    """
    from .templify import classify

    settings = manifest.get("settings", {})
    summary = _read_json(folder / SUMMARY) or {}
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

    for path in _shard_files(folder, manifest):
        for rows, get in _batches(path, _SYNTH_COLUMNS):
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
                    text, cut = _cut(get(i, "text"))
                    record["text"], record["text_cut"] = text, cut
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


def _templify_figures(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    summary = _read_json(folder / SUMMARY)
    if summary is None:  # an unfinished run: add up the recorded shards' stats
        from .templify import TemplifyStats
        from .templify_run import stats_from_json

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


def _mix_figures(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
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
            }
        )
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
        "input_fingerprints": [
            i.get("fingerprint") for i in settings.get("inputs", []) if i.get("fingerprint")
        ],
    }


def _attach_augmented(folder: Path, manifest: dict[str, Any], sample: list[dict[str, Any]]) -> None:
    """Give each sampled entry the templify text whose source_ids contain its id."""
    wanted = {record["id"]: record for record in sample}
    for path in _shard_files(folder, manifest):
        for rows, get in _batches(path, ("id", "source_ids", "mode", "n_shots", "n_pairs")):
            for i, row in enumerate(rows):
                hits = [wanted.pop(sid) for sid in row.get("source_ids") or [] if sid in wanted]
                if not hits:
                    continue
                text, cut = _cut(get(i, "text"))
                augmented = {
                    "id": row.get("id"),
                    "mode": row.get("mode"),
                    "n_shots": row.get("n_shots"),
                    "n_pairs": row.get("n_pairs"),
                    "source_ids": row.get("source_ids"),
                    "text": text,
                    "text_cut": cut,
                }
                for record in hits:
                    record["augmented"] = augmented
            if not wanted:  # every document is in exactly one text: nothing left to find
                return


# ---------------------------------------------------------------------------------------------
# Alerts


def _alert(
    key: str, message: str, explanation: str, value: Any = None, threshold: Any = None
) -> dict[str, Any]:
    return {"id": key, "message": message, "explanation": explanation, "value": value, "threshold": threshold}


def alerts_for(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The alerts raised by `figures` (as `analyze` returns them), each with an explanation."""
    out = []
    for stage in STAGES:
        if stage in figures and not figures[stage]["complete"]:
            out.append(
                _alert(
                    f"{stage}_incomplete",
                    f"The {stage} run in {figures[stage]['folder']} is not finished.",
                    "Its figures cover only the shards written so far; rerun its command to finish it.",
                )
            )
    syn = figures.get("synthesize")
    if syn:
        rate = syn["parse_rate"]
        if rate is not None and rate < PARSE_RATE_MIN:
            out.append(
                _alert(
                    "parse_rate",
                    f"Parse rate {rate:.1%} is below {PARSE_RATE_MIN:.0%}.",
                    "Many of the synthesizer's fragments were malformed (see parse_dropped), which usually "
                    "means a wrong model or tokenizer, or generations cut short by max_new_tokens.",
                    rate,
                    PARSE_RATE_MIN,
                )
            )
        share = syn["zero_pair_share"]
        if share is not None and share > ZERO_PAIR_SHARE_MAX:
            out.append(
                _alert(
                    "zero_pairs",
                    f"{share:.1%} of entries have no pair (more than {ZERO_PAIR_SHARE_MAX:.0%}).",
                    "Entries without pairs reach the training corpus as plain raw text, so a high share "
                    "means the synthesizer found little to ask about these documents or failed on them.",
                    share,
                    ZERO_PAIR_SHARE_MAX,
                )
            )
        share = syn["duplicate_instruction_share"]
        if share is not None and share > DUPLICATE_INSTRUCTION_SHARE_MAX:
            out.append(
                _alert(
                    "duplicate_instructions",
                    f"{share:.1%} of pairs repeat an instruction seen before in the corpus "
                    f"(more than {DUPLICATE_INSTRUCTION_SHARE_MAX:.0%}).",
                    "Instructions that recur across documents are generic (like the rules engine's "
                    "templated questions) and teach less than questions specific to each text.",
                    share,
                    DUPLICATE_INSTRUCTION_SHARE_MAX,
                )
            )
        share = syn["hit_max_new_tokens_share"]
        if share is not None and share > HIT_MAX_NEW_TOKENS_SHARE_MAX:
            out.append(
                _alert(
                    "hit_max_new_tokens",
                    f"{share:.1%} of generations stopped at max_new_tokens "
                    f"(more than {HIT_MAX_NEW_TOKENS_SHARE_MAX:.0%}).",
                    "A generation cut at the token limit loses its unfinished last pair; raising "
                    "--max-new-tokens keeps more pairs at the cost of longer generation.",
                    share,
                    HIT_MAX_NEW_TOKENS_SHARE_MAX,
                )
            )
        share = syn["rejected_share"]
        if share is not None and share > REJECTED_INPUT_SHARE_MAX:
            out.append(
                _alert(
                    "rejected_inputs",
                    f"{syn['rejected_inputs']:,} input records ({share:.1%}) were rejected by synthesize "
                    f"(more than {REJECTED_INPUT_SHARE_MAX:.0%}).",
                    "Rejected records are not in the output; rejects.jsonl lists each with its reason "
                    "(often a wrong --text-field, bad JSON or non-UTF-8 bytes).",
                    share,
                    REJECTED_INPUT_SHARE_MAX,
                )
            )
    tem = figures.get("templify")
    if syn and tem and tem.get("source_fingerprint") and syn.get("fingerprint"):
        if tem["source_fingerprint"] != syn["fingerprint"]:
            out.append(
                _alert(
                    "templify_source",
                    "The templify output was not made from the synthesize output given.",
                    "Its manifest names another synthesize run, so the sample's augmented texts and the "
                    "two stages' figures do not describe the same documents.",
                )
            )
    mix = figures.get("mix")
    if mix:
        if tem and mix["input_fingerprints"] and tem.get("fingerprint") not in mix["input_fingerprints"]:
            out.append(
                _alert(
                    "mix_source",
                    "The mix was not made from the templify output given.",
                    "Its manifest's inputs name other output folders, so its token counts describe "
                    "other augmented texts than the ones shown here.",
                )
            )
        for s in mix["sources"]:
            share = s["rejected_share"]
            if share is not None and share > REJECTED_INPUT_SHARE_MAX:
                out.append(
                    _alert(
                        f"mix_rejected:{s['name']}",
                        f"Mix source {s['name']!r}: {s['rejected']:,} records ({share:.1%}) rejected "
                        f"(more than {REJECTED_INPUT_SHARE_MAX:.0%}).",
                        "Rejected records are left out of the training corpus; the mix's rejects.jsonl "
                        "lists each with its reason.",
                        share,
                        REJECTED_INPUT_SHARE_MAX,
                    )
                )
            requested, achieved = s["ratio_requested"], s["ratio_achieved"]
            if requested and achieved is not None and abs(achieved / requested - 1) > RATIO_TOLERANCE:
                out.append(
                    _alert(
                        f"mix_ratio:{s['name']}",
                        f"Mix source {s['name']!r}: achieved ratio {achieved:.4g} vs requested "
                        f"{requested:.4g} (off by {abs(achieved / requested - 1):.2%}, "
                        f"more than {RATIO_TOLERANCE:.1%}).",
                        "The corpus does not have the token proportions the recipe asked for, usually "
                        "because a source is too small or too coarse (few, long documents) to sample finely.",
                        achieved / requested - 1,
                        RATIO_TOLERANCE,
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------
# Analysis


def analyze(paths: Iterable[str | Path], sample_size: int = 50, seed: int = 0) -> dict[str, Any]:
    """Figures, alerts and the document sample of the outputs in `paths` (no charts, no HTML)."""
    if sample_size < 0:
        raise UsageError("--samples must be 0 or more")
    stages = find_stages(paths)
    figures: dict[str, Any] = {}
    sample: list[dict[str, Any]] = []
    if "synthesize" in stages:
        folder, manifest = stages["synthesize"]
        figures["synthesize"], sample = _synthesize_figures(folder, manifest, sample_size, seed)
    if "templify" in stages:
        folder, manifest = stages["templify"]
        figures["templify"] = _templify_figures(folder, manifest)
        if sample:
            _attach_augmented(folder, manifest, sample)
    if "mix" in stages:
        figures["mix"] = _mix_figures(*stages["mix"])
    alerts = alerts_for(figures)
    return {"figures": figures, "alerts": alerts, "sample": sample, "has_templify": "templify" in stages}


# ---------------------------------------------------------------------------------------------
# Charts (plotly figures built here, drawn by the inlined plotly.js in the page)

_BLUE, _ORANGE, _GREEN, _RED, _GREY = "#3366cc", "#ff9900", "#109618", "#dc3912", "#999999"
_KIND_COLORS = {"free": _BLUE, "options": _GREEN, "cot": _ORANGE, "options_cot": "#990099"}


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingExtraError("instructpt report", "report", "plotly") from None
    return go


def _layout(fig: Any, x: str, y: str, **extra: Any) -> Any:
    layout = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 10, "b": 50}, "height": 340,
              "xaxis_title": x, "yaxis_title": y, "showlegend": False}  # fmt: skip
    fig.update_layout(**{**layout, **extra})
    return fig


def _label(text: Any) -> str:
    """Text for a plotly label: plotly reads a few HTML tags and entities in labels, so text from
    the data (instructions, source names) is entity-escaped to be shown exactly as written."""
    return html.escape(str(text), quote=False)


def build_charts(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{id, title, caption, figure}] for the figures present: each figure a plotly JSON dict."""
    go = _plotly()
    charts: list[tuple[str, str, str, Any]] = []
    syn, tem, mix = figures.get("synthesize"), figures.get("templify"), figures.get("mix")
    if syn and syn["entries"]:
        hist = syn["pairs_per_entry_histogram"]
        xs = [int(k) for k in hist]
        fig = go.Figure(
            go.Bar(
                x=xs,
                y=list(hist.values()),
                marker_color=[_RED if x == 0 else _BLUE for x in xs],
                hovertemplate="%{x} pairs: %{y} entries<extra></extra>",
            )
        )
        charts.append(
            (
                "pairs-per-entry",
                "Pairs per entry",
                "Entries (documents, or parts of split documents) by how many pairs they got; "
                "0 (red) becomes raw text.",
                _layout(fig, "pairs", "entries", xaxis_dtick=1),
            )
        )
    if syn and syn["kinds"]:
        kinds = syn["kinds"]
        fig = go.Figure(
            go.Bar(
                x=list(kinds),
                y=list(kinds.values()),
                marker_color=[_KIND_COLORS.get(k, _GREY) for k in kinds],
                hovertemplate="%{x}: %{y} pairs<extra></extra>",
            )
        )
        charts.append(
            (
                "kinds",
                "Pair kinds",
                "How templify reads each pair: free-form, multiple-choice, chain-of-thought, both; "
                "grey bars are pairs it cannot template, by reason.",
                _layout(fig, "", "pairs"),
            )
        )
    if syn and syn["pairs"]:
        from plotly.subplots import make_subplots

        fig = make_subplots(
            rows=1, cols=2, subplot_titles=("instructions", "responses"), horizontal_spacing=0.1
        )
        for col, (name, color) in enumerate((("instruction", _BLUE), ("response", _ORANGE)), start=1):
            hist = syn[f"{name}_words_histogram"]
            end = max(syn[f"{name}_words"]["p99"] or 1, 1)
            size = max(1, -(-end // 40))  # about 40 bins up to the 99th percentile
            fig.add_trace(
                go.Histogram(
                    x=[int(k) for k in hist],
                    y=list(hist.values()),
                    histfunc="sum",
                    marker_color=color,
                    xbins={"start": -0.5, "end": end + size, "size": size},
                    name=name,
                    hovertemplate="%{x} words: %{y}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.update_xaxes(title_text="words", row=1, col=col)
        fig.update_yaxes(title_text="pairs", row=1, col=1)
        fig.update_layout(
            template="plotly_white",
            height=340,
            showlegend=False,
            bargap=0.05,
            margin={"l": 60, "r": 20, "t": 30, "b": 50},
        )
        charts.append(
            (
                "lengths",
                "Instruction and response lengths",
                "Words per instruction and per response, up to the 99th percentile.",
                fig,
            )
        )
    if syn and syn["top_openings"]:
        top = list(reversed(syn["top_openings"]))
        fig = go.Figure(
            go.Bar(
                y=[_label(f"“{o}…”") for o, _ in top],
                x=[c for _, c in top],
                orientation="h",
                marker_color=_BLUE,
                hovertemplate="%{y}: %{x} pairs<extra></extra>",
            )
        )
        _layout(fig, "pairs", "", height=max(300, 22 * len(top) + 80))
        fig.update_layout(margin={"l": 220, "r": 20, "t": 10, "b": 50})
        charts.append(
            (
                "openings",
                f"Most frequent instruction openings (first {OPENING_WORDS} words)",
                "A few openings dominating means templated, repetitive questions.",
                fig,
            )
        )
    if tem and tem.get("modes"):
        modes = dict(sorted(tem["modes"].items(), key=lambda kv: -kv[1]))
        fig = go.Figure(
            go.Bar(
                x=list(modes),
                y=list(modes.values()),
                marker_color=[_GREY if m == "raw" else _GREEN for m in modes],
                hovertemplate="%{x}: %{y} texts<extra></extra>",
            )
        )
        charts.append(
            (
                "modes",
                "Templify modes",
                f"Texts by rendering mode ({tem.get('inversions') or 0} inversions); raw: documents "
                "without usable pairs.",
                _layout(fig, "", "texts"),
            )
        )
    if tem and tem.get("families"):
        families = sorted(tem["families"].items(), key=lambda kv: kv[1])
        distinct = tem.get("distinct_patterns") or {}
        fig = go.Figure(
            go.Bar(
                y=[f for f, _ in families],
                x=[c for _, c in families],
                orientation="h",
                customdata=[distinct.get(f, 0) for f, _ in families],
                marker_color=_GREEN,
                hovertemplate="%{y}: drawn %{x} times, %{customdata} distinct patterns<extra></extra>",
            )
        )
        _layout(fig, "times drawn", "", height=max(300, 22 * len(families) + 80))
        fig.update_layout(margin={"l": 200, "r": 20, "t": 10, "b": 50})
        charts.append(
            (
                "families",
                "Template pattern families",
                f"How often each family of the template library was drawn; "
                f"{tem.get('distinct_patterns_total') or 0} distinct patterns in all.",
                fig,
            )
        )
    if tem and tem.get("library_sizes") and tem.get("distinct_patterns"):
        sizes, used = tem["library_sizes"], tem["distinct_patterns"]
        names = sorted(sizes, key=lambda f: (used.get(f, 0), f))
        fig = go.Figure(
            [
                go.Bar(y=names, x=[sizes[f] for f in names], orientation="h", name="in the library",
                       marker_color=_GREY, hovertemplate="%{y}: %{x} templates<extra></extra>"),
                go.Bar(y=names, x=[used.get(f, 0) for f in names], orientation="h", name="used",
                       marker_color=_GREEN, hovertemplate="%{y}: %{x} used<extra></extra>"),
            ]
        )  # fmt: skip
        _layout(fig, "distinct templates", "", height=max(300, 22 * len(names) + 80))
        fig.update_layout(barmode="overlay", margin={"l": 200, "r": 20, "t": 10, "b": 50})
        bare, free = tem.get("bare_document_share"), tem.get("mc_without_options_share")
        charts.append(
            (
                "template-usage",
                "Template usage",
                "Distinct templates each text recorded (its `templates` ids), per family, against the "
                f"library's size; bare documents {_pct(bare)} of Classic shots, multiple choice "
                f"without options {_pct(free)}.",
                fig,
            )
        )
    if mix and mix["sources"]:
        sources = mix["sources"]
        text = [f"{(s['token_share'] or 0):.1%}" for s in sources]
        fig = go.Figure(
            go.Bar(
                x=[_label(s["name"]) for s in sources],
                y=[s["tokens_selected"] for s in sources],
                text=text,
                textposition="auto",
                marker_color=_BLUE,
                customdata=[_label(s["sampling"]) for s in sources],
                hovertemplate="%{x}: %{y:,} tokens (%{text}), %{customdata}<extra></extra>",
            )
        )
        charts.append(
            (
                "tokens",
                "Tokens per source",
                f"Tokens of the trained model's tokenizer selected from each source "
                f"({mix['tokens_total'] or 0:,} in all).",
                _layout(fig, "", "tokens"),
            )
        )
    rejects: dict[str, dict[str, int]] = {}
    if syn and syn["rejected_by_reason"]:
        rejects["synthesize inputs"] = syn["rejected_by_reason"]
    for s in (mix or {}).get("sources", []):
        if s["rejected_by_reason"]:
            rejects[f"mix source {s['name']}"] = s["rejected_by_reason"]
    if rejects:
        reasons = sorted({r for by in rejects.values() for r in by})
        fig = go.Figure(
            [
                go.Bar(
                    name=_label(stage),
                    x=[_label(r) for r in reasons],
                    y=[by.get(r, 0) for r in reasons],
                    hovertemplate="%{fullData.name}: %{x} %{y}<extra></extra>",
                )
                for stage, by in rejects.items()
            ]
        )
        _layout(fig, "", "records", barmode="stack", showlegend=True, legend={"orientation": "h", "y": 1.1})
        charts.append(
            (
                "rejects",
                "Rejected records by reason",
                "Input records left out, by stage and reason (each listed in that stage's rejects.jsonl).",
                fig,
            )
        )
    out = []
    for key, title, caption, fig in charts:
        spec = json.loads(fig.to_json())
        spec["layout"].pop("template", None)  # one shared copy in the page instead of one per chart
        out.append({"id": f"chart-{key}", "title": title, "caption": caption, "figure": spec})
    return out


def _template() -> dict[str, Any]:
    """The plotly_white template, embedded once and applied to every chart in the page."""
    go = _plotly()
    return json.loads(go.Figure(layout={"template": "plotly_white"}).to_json())["layout"]["template"]


# ---------------------------------------------------------------------------------------------
# The page


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _num(x: float | None, fmt: str = ",") -> str:
    return "–" if x is None else format(x, fmt)


def headline(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The figure cards at the top of the page: [{label, value, detail, alert}], alert an id prefix."""
    cards = []
    card = lambda label, value, detail="", alert="": cards.append(  # noqa: E731
        {"label": label, "value": value, "detail": detail, "alert": alert}
    )
    syn, tem, mix = figures.get("synthesize"), figures.get("templify"), figures.get("mix")
    if syn:
        split = syn["long_docs"].get("split") or 0
        card(
            "Documents",
            _num(syn["documents"]),
            f"{syn['entries']:,} entries"
            + (f"; {split:,} split into {syn['long_docs'].get('parts', 0):,} parts" if split else ""),
        )
        card("Pairs", _num(syn["pairs"]), f"{_num(syn['pairs_per_entry'], ',.2f')} per entry")
        drops = syn["parse_dropped"]
        dup = drops.get("duplicate_instruction", 0)
        card(
            "Parse rate",
            _pct(syn["parse_rate"]),
            f"{sum(drops.values()) - dup:,} malformed fragments dropped"
            + (f" (and {dup:,} repeated instructions, not counted)" if dup else ""),
            "parse_rate",
        )
        card(
            "Entries with no pair",
            _pct(syn["zero_pair_share"]),
            f"{syn['entries_without_pairs']:,} of {syn['entries']:,}",
            "zero_pairs",
        )
        card(
            "Duplicate instructions",
            _pct(syn["duplicate_instruction_share"]),
            "pairs repeating an earlier instruction, ignoring case"
            + ("" if syn["duplicate_instruction_exact"] else " (estimated on a hash sample)"),
            "duplicate_instructions",
        )
        card(
            "Hit max_new_tokens",
            _pct(syn["hit_max_new_tokens_share"]),
            f"{syn['generations_hit_max_new_tokens']:,} of {syn['entries']:,} generations "
            f"(limit {_num(syn['max_new_tokens'])})",
            "hit_max_new_tokens",
        )
        card(
            "Rejected inputs",
            _num(syn["rejected_inputs"]),
            f"{_pct(syn['rejected_share'])} of input records",
            "rejected_inputs",
        )
        last = syn["throughput"]["last_run"]
        if last.get("documents"):
            card(
                "Throughput",
                f"{last['documents_per_s']:,.1f} docs/s",
                f"{last.get('raw_tokens_per_s', 0):,.0f} raw, {last.get('generated_tokens_per_s', 0):,.0f} "
                f"generated tokens/s; last invocation: {last['documents']:,} documents in "
                f"{last.get('seconds', 0):,.1f} s ({syn['engine']})",
            )
        elif syn["throughput"]["documents_per_shard_second"]:
            card(
                "Throughput",
                f"{syn['throughput']['documents_per_shard_second']:,.1f} docs/s",
                f"over all shards' compute time, engine {syn['engine']}",
            )
    if tem:
        card(
            "Augmented texts",
            _num(tem.get("texts")),
            f"from {_num(tem.get('documents'))} documents; {_num(tem.get('pairs_rendered'))} pairs rendered, "
            f"{sum((tem.get('pairs_dropped') or {}).values()):,} dropped",
        )
    if mix:
        card(
            "Training tokens",
            _num(mix["tokens_total"]),
            f"{_num(mix['documents_total'])} documents, format {mix['format']}",
        )
        if mix["sources"]:
            card(
                "Token share per source",
                " : ".join(_pct(s["token_share"]) for s in mix["sources"]),
                "; ".join(
                    f"{s['name']} {_num(s['tokens_selected'])} tokens ({s['sampling']})"
                    for s in mix["sources"]
                ),
            )
            rejected = sum(s["rejected"] for s in mix["sources"])
            card(
                "Rejected in mix",
                _num(rejected),
                "; ".join(
                    f"{s['name']} {s['rejected']:,} ({_pct(s['rejected_share'])})" for s in mix["sources"]
                ),
                "mix_rejected",
            )
        weighted = [s for s in mix["sources"] if s["ratio_achieved"] is not None]
        if len(weighted) > 1:
            fmt = lambda key: " : ".join(f"{s[key]:.4g}" for s in weighted)  # noqa: E731
            card(
                "Mix ratio",
                fmt("ratio_achieved"),
                f"achieved, {' : '.join(s['name'] for s in weighted)}; requested {fmt('ratio_requested')}",
                "mix_ratio",
            )
        elif mix["sources"]:
            card("Mix ratio", "every source whole", f"recipe {mix['recipe']}: no token ratio requested")
    return cards


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' left raw,
    so no text in the data can close the element or start markup."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
 background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d3de;font-size:13px;word-break:break-all}
main{max-width:1320px;margin:0 auto;padding:16px 28px 40px}
h2{font-size:18px;margin:28px 0 10px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:12px 14px}
.card.bad{border:2px solid #dc3912;background:#fff6f4}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6b7c}
.card .value{font-size:22px;font-weight:600;margin:2px 0;word-break:break-word}
.card .detail{font-size:12px;color:#5b6b7c}
.alerts{list-style:none;padding:0;margin:0}
.alerts li{background:#fff6f4;border-left:4px solid #dc3912;padding:8px 12px;margin:6px 0;border-radius:4px}
.alerts li span{display:block;color:#5b6b7c;font-size:13px}
.ok{background:#f1fbf1;border-left:4px solid #109618;padding:8px 12px;border-radius:4px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
.chart{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:10px 12px}
.chart h3{margin:0;font-size:15px}
.chart p{margin:2px 0 6px;color:#5b6b7c;font-size:12px}
.nav{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:10px}
.nav button,.nav select{font:inherit;padding:4px 10px}
.nav select{max-width:520px}
.sample{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.panel{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:10px 14px;min-width:0}
.panel.wide{grid-column:1/-1}
.panel h3{margin:0 0 4px;font-size:15px}
.meta{color:#5b6b7c;font-size:12px;margin:0 0 6px;word-break:break-all}
pre.text{white-space:pre-wrap;word-wrap:break-word;font:13px/1.45 ui-monospace,Menlo,Consolas,monospace;
 background:#fafbfc;border:1px solid #eef0f3;border-radius:4px;padding:8px;margin:0;max-height:26em;
 overflow:auto}
ol.pairs{margin:0;padding-left:22px;max-height:34em;overflow:auto}
ol.pairs li{margin:0 0 10px}
.kind{display:inline-block;font-size:11px;border-radius:3px;padding:0 5px;margin-right:6px;
 background:#e8eef8;color:#234}
.q{font-weight:600;white-space:pre-wrap}
.a{white-space:pre-wrap;color:#333}
mark{background:#fff3bf}
details{margin-top:26px;color:#444}
footer{color:#8a96a3;font-size:12px;margin-top:30px}
@media (max-width:900px){.sample{grid-template-columns:1fr}.charts{grid-template-columns:1fr}}
"""

# The page's script: charts from the embedded plotly JSON, and the sample browser. Data is only
# ever put in the page with textContent (never innerHTML), so no text can become markup.
_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  data.charts.forEach(function (chart) {
    var layout = Object.assign({}, chart.figure.layout, {template: data.template, autosize: true});
    Plotly.newPlot(chart.id, chart.figure.data, layout, {displaylogo: false, responsive: true});
  });
  var samples = data.sample;
  if (!samples.length) return;
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  var cutNote = function (n) {
    return n ? "\n\n[... " + n.toLocaleString() + " more characters not shown]" : "";
  };
  var select = $("sample-select");
  samples.forEach(function (s, i) {
    var n = (s.pairs || []).length;
    select.appendChild(el("option", "", (i + 1) + ". " + s.id + " (" + n + (n === 1 ? " pair)" : " pairs)")));
  });
  var current = 0;
  function show(i) {
    current = (i + samples.length) % samples.length;
    var s = samples[current];
    select.selectedIndex = current;
    $("sample-pos").textContent = (current + 1) + " of " + samples.length;
    $("doc-meta").textContent = "id " + s.id + " · chain " + s.chain_id + ", round " + s.round +
      (s.inherits ? " (inherits)" : "") + " · " + (s.generated_tokens || 0) + " tokens generated, finish " +
      s.finish_reason + (s.n_parts > 1 ? " · part " + (s.part + 1) + " of " + s.n_parts : "") +
      (s.source ? " · " + s.source : "");
    $("doc-text").textContent = s.text + cutNote(s.text_cut);
    var list = $("pairs");
    list.replaceChildren();
    $("pair-count").textContent = String((s.pairs || []).length);
    (s.pairs || []).forEach(function (p) {
      var item = el("li");
      var q = el("div", "q");
      q.appendChild(el("span", "kind", p.kind));
      q.appendChild(document.createTextNode(p.instruction));
      item.appendChild(q);
      item.appendChild(el("div", "a", p.response));
      list.appendChild(item);
    });
    if (!s.pairs || !s.pairs.length) {
      list.appendChild(el("li", "meta", "No pairs: templify keeps this document as raw text."));
    }
    var aug = s.augmented, box = $("aug-text");
    box.replaceChildren();
    if (!aug) {
      $("aug-meta").textContent = data.has_templify ? "Not found in the templify output given." :
        "No templify output given (pass the augmented/ folder or the run's workdir).";
      return;
    }
    $("aug-meta").textContent = "text " + aug.id + " · mode " + aug.mode + " · " + aug.n_shots +
      " shot(s), " + aug.n_pairs + " pairs · documents: " + (aug.source_ids || []).join(", ") +
      " · this document highlighted";
    var at = aug.text.indexOf(s.text);
    if (at < 0 || s.text_cut) {
      box.textContent = aug.text + cutNote(aug.text_cut);
    } else {
      box.appendChild(document.createTextNode(aug.text.slice(0, at)));
      box.appendChild(el("mark", "", s.text));
      box.appendChild(document.createTextNode(aug.text.slice(at + s.text.length) + cutNote(aug.text_cut)));
    }
  }
  $("prev").addEventListener("click", function () { show(current - 1); });
  $("next").addEventListener("click", function () { show(current + 1); });
  select.addEventListener("change", function () { show(select.selectedIndex); });
  document.addEventListener("keydown", function (e) {
    if (e.target === select) return;
    if (e.key === "ArrowLeft") show(current - 1);
    if (e.key === "ArrowRight") show(current + 1);
  });
  show(0);
})();
"""

# Nothing may be fetched at view time: no network, only the inline script and styles.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


def render(analysis: Mapping[str, Any], charts: list[dict[str, Any]], plotly_js: str, template: Any) -> str:
    """The HTML page for `analysis` (from `analyze`) with `charts` (from `build_charts`)."""
    from . import __version__

    esc = html.escape
    figures, alerts, sample = analysis["figures"], analysis["alerts"], analysis["sample"]
    alert_ids = [a["id"] for a in alerts]
    folders = [f"{stage}: {figures[stage]['folder']}" for stage in STAGES if stage in figures]
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n',  # a constant, no quotes
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        "<title>instructpt report</title>\n<style>",
        _CSS,
        "</style>\n</head>\n",
        f'<body data-charts="{len(charts)}" data-samples="{len(sample)}">\n',
        "<header><h1>instructpt report</h1>",
        "".join(f"<p>{esc(f)}</p>" for f in folders),
        "</header>\n<main>\n",
        '<section id="alerts"><h2>Alerts</h2>',
    ]
    if alerts:
        parts.append('<ul class="alerts">')
        parts += [f"<li><b>{esc(a['message'])}</b><span>{esc(a['explanation'])}</span></li>" for a in alerts]
        parts.append("</ul>")
    else:
        parts.append('<p class="ok">Every figure is within its usual range.</p>')
    parts.append('</section>\n<section id="figures"><h2>Headline figures</h2><div class="cards">')
    for c in headline(figures):
        bad = c["alert"] and any(a == c["alert"] or a.startswith(c["alert"] + ":") for a in alert_ids)
        parts.append(
            f'<div class="card{" bad" if bad else ""}"><div class="label">{esc(c["label"])}</div>'
            f'<div class="value">{esc(c["value"])}</div><div class="detail">{esc(c["detail"])}</div></div>'
        )
    parts.append("</div></section>\n")
    if charts:
        parts.append('<section id="charts"><h2>Charts</h2><div class="charts">')
        for chart in charts:
            parts.append(
                f'<div class="chart"><h3>{esc(chart["title"])}</h3><p>{esc(chart["caption"])}</p>'
                f'<div id="{esc(chart["id"])}" class="plot"></div></div>'
            )
        parts.append("</div></section>\n")
    if sample:
        syn = figures["synthesize"]
        parts.append(
            '<section id="samples"><h2>Sample browser</h2>'
            f'<p class="meta">{len(sample)} of {syn["entries"]:,} entries, drawn at random '
            "(← and → keys also step through them).</p>"
            '<div class="nav"><button id="prev" type="button">◀ Previous</button>'
            '<select id="sample-select" aria-label="sample"></select>'
            '<button id="next" type="button">Next ▶</button><span id="sample-pos" class="meta"></span></div>'
            '<div class="sample">'
            '<div class="panel"><h3>Document</h3><p id="doc-meta" class="meta"></p>'
            '<pre id="doc-text" class="text"></pre></div>'
            '<div class="panel"><h3>Pairs (<span id="pair-count"></span>)</h3>'
            '<ol id="pairs" class="pairs"></ol></div>'
            '<div class="panel wide"><h3>Instruction-augmented text</h3><p id="aug-meta" class="meta"></p>'
            '<pre id="aug-text" class="text"></pre></div></div></section>\n'
        )
    parts.append(
        "<details><summary>How the figures are computed</summary><ul>"
        "<li><b>Entry</b>: a document, or one part of a document split to fit the context.</li>"
        "<li><b>Parse rate</b>: pairs / (pairs + fragments the parser dropped as malformed); instructions "
        "dropped for repeating one of the same generation are not counted against it.</li>"
        "<li><b>Duplicate instructions</b>: pairs whose instruction, ignoring case, appeared before anywhere "
        "in the corpus, over all pairs.</li>"
        "<li><b>Hit max_new_tokens</b>: generations whose finish reason is <code>length</code>.</li>"
        "<li><b>Rejected inputs</b>: rejected records / (documents + rejected records).</li>"
        "<li><b>Throughput</b>: from the synthesize summary of the last invocation (model loading "
        "excluded).</li>"
        f"<li><b>Alert thresholds</b>: parse rate &lt; {PARSE_RATE_MIN:.0%}, no-pair entries &gt; "
        f"{ZERO_PAIR_SHARE_MAX:.0%}, duplicate instructions &gt; {DUPLICATE_INSTRUCTION_SHARE_MAX:.0%}, "
        f"hit max_new_tokens &gt; {HIT_MAX_NEW_TOKENS_SHARE_MAX:.0%}, rejected inputs &gt; "
        f"{REJECTED_INPUT_SHARE_MAX:.0%}, mix ratio off by &gt; {RATIO_TOLERANCE:.1%}.</li></ul></details>\n"
        f"<footer>instructpt {esc(__version__)} · charts: plotly.js (inlined)</footer>\n</main>\n"
    )
    data = {
        "charts": charts,
        "template": template,
        "sample": sample,
        "has_templify": analysis["has_templify"],
        "figures": figures,
        "alerts": alerts,
    }
    parts.append(f'<script type="application/json" id="report-data">{_json_for_script(data)}</script>\n')
    # The bundle has no "</script" in it (checked), but make sure one can never end the element early.
    parts.append("<script>" + plotly_js.replace("</script", "<\\/script") + "</script>\n")
    parts.append("<script>" + _JS + "</script>\n</body>\n</html>\n")
    return "".join(parts)


def _report(paths: Iterable[str | Path], sample_size: int, seed: int) -> tuple[str, dict[str, Any]]:
    go = _plotly()  # fail on a missing plotly before reading any data
    del go
    from plotly.offline import get_plotlyjs

    analysis = analyze(paths, sample_size, seed)
    charts = build_charts(analysis["figures"])
    page = render(analysis, charts, get_plotlyjs(), _template())
    result = {
        "figures": analysis["figures"],
        "alerts": analysis["alerts"],
        "charts": [c["title"] for c in charts],
        "samples": [s["id"] for s in analysis["sample"]],
    }
    return page, result


def build_report(paths: Iterable[str | Path], sample_size: int = 50, seed: int = 0) -> str:
    """The self-contained HTML report of the outputs in `paths` (a run workdir or stage folders)."""
    return _report(paths, sample_size, seed)[0]


def write_report(
    paths: Iterable[str | Path], output: str | Path, sample_size: int = 50, seed: int = 0
) -> dict[str, Any]:
    """Write the report to `output` atomically; returns its figures, alerts, chart titles and sample ids."""
    page, result = _report(paths, sample_size, seed)
    output = Path(output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder: give the report's file name, e.g. {output / 'report.html'}")
    write_atomic(output, page.encode("utf-8"))
    result["output"] = str(output)
    result["bytes"] = output.stat().st_size
    return result
