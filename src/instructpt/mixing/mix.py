"""Mix, tokenize and pack the pre-training corpus (docs/method.md §5).

Three passes, memory bounded by a batch plus a few numbers per document:

1. **Tokenize** every source once: each text is wrapped in the target model's BOS/EOS *as
   text* and tokenized without adding special tokens (docs/method.md §5), batched, in worker
   processes. Each input file is one executor shard (stage.py): its token ids, lengths,
   ids and texts go to scratch files in out/.work/tokens with a completion marker, so a
   crash, static workers or Ray redo no finished file. Plan, shuffle and write run once
   every shard is done.
2. **Plan**: every source with a weight gets `tokens(anchor) * weight / weight(anchor)`
   tokens, the anchor being the first weighted source (kept whole, exactly once). A source
   with fewer tokens than that is repeated (whole passes) and topped up with a seeded random
   subset of its documents; one with more is down-sampled to a seeded random subset. The
   subset stops at the document whose cumulative tokens land closest to the target, so the
   achieved ratio is off by at most half a document (< 0.1% at 1M tokens of 600-token
   documents). Sources without a weight are kept whole. Then all chosen documents are
   shuffled together with the seed.
3. **Write** in that order: text shards, a Hugging Face dataset, or tokenized shards
   (Megatron `.bin/.idx`, OLMo `.npy` + `.csv.gz`; see formats.py).

Packing (`--pack`, hf and megatron): documents are concatenated in shuffled order into one
stream, cut into rows of exactly `seq_len` tokens; a document that crosses a row boundary
continues in the next row, and each row records where documents start in it. The final
partial row is dropped (its token count is in the manifest), so packing costs at most
seq_len - 1 tokens of the whole corpus and no padding.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..executor import check_worker, launch, open_locked
from ..io.changes import refusal
from ..io.corpus import file_size
from ..io.files import DiskFull, write_json
from ..io.integrity import check_inputs, output_problems
from ..io.output import SCRATCH_DIR, OutputDir, expect_stage
from .formats import token_dtype, write_corpus
from .ftdata import ft_files
from .recipes import MixConfig, SourceSpec
from .split import with_corpus_split
from .tokenize import SourceData, TargetTokenizer, _hash, _run_digest, source_files

MIX_FORMATS = ("parquet", "jsonl", "hf", "megatron", "olmo")
PACKABLE = ("hf", "megatron")


# -- planning ---------------------------------------------------------------------------------


@dataclass
class SourcePlan:
    name: str
    documents_available: int
    tokens_available: int
    weight: float | None
    target_tokens: int
    selected: np.ndarray  # document indices, repeats included

    def tokens_selected(self, lengths: np.ndarray) -> int:
        return int(lengths[self.selected].sum(dtype=np.int64))


def plan_source(lengths: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Document indices whose tokens sum closest to `target`: whole passes, then a random subset."""
    total = int(lengths.sum(dtype=np.int64))
    if total == 0 or target <= 0:
        return np.zeros(0, dtype=np.int64)
    passes, remainder = divmod(target, total)
    if passes > MAX_UPSAMPLE:
        raise UsageError(f"a target of {target:,} tokens repeats {total:,} tokens {passes:,} times, "
                         f"above the limit {MAX_UPSAMPLE}x")  # fmt: skip
    order = rng.permutation(len(lengths))
    cumulative = np.cumsum(lengths[order], dtype=np.int64)
    k = int(np.searchsorted(cumulative, remainder))  # first k+1 docs reach the remainder
    below = int(cumulative[k - 1]) if k else 0  # tokens of the first k docs
    if k < len(order) and abs(int(cumulative[k]) - remainder) <= abs(below - remainder):
        k += 1  # include the crossing document when that lands closer (none for remainder 0)
    whole = np.tile(np.arange(len(lengths), dtype=np.int64), passes)
    return np.concatenate([whole, order[:k].astype(np.int64)])


# A source is repeated at most this many times to meet its weight: the plan holds one index
# per selected document (and the shuffle three arrays of them), so an unbounded factor from a
# mistyped weight would allocate without limit. Documented in the README (Custom recipes).
MAX_UPSAMPLE = 100


def plan(data: list[SourceData], seed: int, upsample: bool) -> list[SourcePlan]:
    totals = [int(d.lengths.sum(dtype=np.int64)) for d in data]
    weighted = [i for i, d in enumerate(data) if d.spec.weight is not None]
    anchor = weighted[0] if weighted else None
    plans = []
    for i, d in enumerate(data):
        if not len(d.lengths):
            raise UsageError(f"source {d.spec.name!r} has no usable documents ({_rejects(d)})")
        if d.spec.weight is None or i == anchor:
            repeat = d.spec.repeat if d.spec.weight is None else 1  # a weighted source has no repeat
            target = totals[i] * repeat
            selected = np.tile(np.arange(len(d.lengths), dtype=np.int64), repeat)
        else:
            factor = totals[anchor] * d.spec.weight / data[anchor].spec.weight / totals[i]
            if factor > 1 and not upsample:
                raise UsageError(
                    f"source {d.spec.name!r} has {totals[i]:,} tokens but the ratio needs "
                    f"{round(factor * totals[i]):,}: it would be repeated {factor:.2f}x; add data, "
                    "lower its weight, or drop --no-upsample"
                )
            if not factor <= MAX_UPSAMPLE:  # also inf and nan from extreme weights
                raise UsageError(
                    f"source {d.spec.name!r} would be repeated {factor:,.2f}x to meet its weight "
                    f"{d.spec.weight:g} (anchor {data[anchor].spec.name!r}: {data[anchor].spec.weight:g}); "
                    f"the limit {MAX_UPSAMPLE}x keeps the plan in memory: lower its weight or add data"
                )
            target = round(totals[anchor] * d.spec.weight / data[anchor].spec.weight)
            selected = plan_source(d.lengths, target, np.random.default_rng([seed, i]))
        plans.append(SourcePlan(d.spec.name, len(d.lengths), totals[i], d.spec.weight, target, selected))
    return plans


def _rejects(d: SourceData) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.rejects.items())) or "no input records"


def run_mix(
    config: MixConfig,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    num_workers: int = 1,
    worker_index: int = 0,
    executor: str = "local",
    ray_workers: int | None = None,
) -> dict[str, Any]:
    """Build the training corpus described by `config` in `config.output`; returns the manifest.

    Each input file of each source is tokenized as one executor shard (out/.work/tokens, with a
    completion marker), so a crash, or static workers (`num_workers`/`worker_index`), or Ray
    (`executor="ray"`) redo nothing finished; when every shard is done the plan, shuffle and
    write run once, from the shards, to the same bytes as an uninterrupted run."""
    if config.format not in MIX_FORMATS:
        raise UsageError(f"unknown --format {config.format!r}; choose one of {', '.join(MIX_FORMATS)}")
    if config.pack and config.format not in PACKABLE:
        raise UsageError(
            f"--pack applies to {' and '.join(PACKABLE)}; {config.format} output is per document"
        )
    if config.seq_len < 1 or config.shard_tokens < 1:
        raise UsageError("--seq-len and --shard-tokens must be positive")
    check_worker(num_workers, worker_index)
    names = [s.name for s in config.sources]
    if len(set(names)) != len(names):
        raise UsageError(f"source names must be unique, got {names}")
    for spec in config.sources:
        if spec.weight is not None and spec.weight <= 0:
            raise UsageError(f"source {spec.name!r}: weight must be positive")
    for spec in config.sources:  # a synthesize or mix folder: say which command it is for
        for path in spec.paths:
            expect_stage(path, "templify", "an input of mix")
    # Fails early, with the path, if an input is missing, empty, unfinished or damaged.
    inputs = {p: input_files(s, p, False, config.allow_partial, log) for s in config.sources for p in s.paths}
    config = with_corpus_split(config, inputs, log)  # scratch: the raw share less the converted documents
    tokenizer = TargetTokenizer.load(config.tokenizer, config.bos_text, config.eos_text)
    settings = mix_settings(config, tokenizer)
    out = OutputDir(config.output, config.format)
    opened = open_locked(out, settings, "mix", config.overwrite, config.rebuild, num_workers, worker_index)
    with opened as manifest:
        runs = {p: d for p in inputs if (d := _run_digest(p)) is not None}
        raw = [f for p, files in inputs.items() if p not in runs for f in files]
        manifest = check_inputs(out, manifest, raw, settings, config.verify, config.rebuild)
        before = manifest.get("input_runs", {}) if manifest.get("complete") else {}
        changed = [p for p, d in runs.items() if before.get(p, d) != d]
        if changed and not config.rebuild:
            rewritten = [f"{p}: its shards were rewritten (other sha256s)" for p in changed]
            raise refusal(out.root, "mix", rewritten)
        damaged = output_problems(out.root, manifest, config.verify) if manifest.get("complete") else {}
        if damaged:  # a training file damaged or deleted since: its tokenized shards are gone
            log(f"{out.root}: {next(iter(damaged.values()))}: recomputing the mix")
        if changed or damaged:
            manifest = out.open_run(settings, overwrite=True, stage="mix")
        if manifest.get("complete"):
            log(f"{out.root}: mix already complete, nothing to do")
            return manifest
        # Mixing reads every shard of our runs: hash them all now (cheap next to tokenizing).
        inputs = {p: source_files(p, True, config.allow_partial) if p in runs else files
                  for p, files in inputs.items()}  # fmt: skip
        if (manifest.get("input_runs"), manifest.get("allow_partial")) != (runs, config.allow_partial):
            # Not settings (the inputs' identity is), but `merge` reopens the inputs as we did.
            manifest.update(input_runs=runs, allow_partial=config.allow_partial)
            out.write_manifest(manifest)
    from .stage import MixStage

    stage = MixStage(config, tokenizer, out, manifest, inputs, log)
    try:
        return launch(stage, executor, num_workers, worker_index, ray_workers, False, log=log)
    except DiskFull:
        shutil.rmtree(out.root / SCRATCH_DIR, ignore_errors=True)  # free what we took
        raise


def mix_settings(config: MixConfig, tokenizer: TargetTokenizer) -> dict[str, Any]:
    settings = {**asdict(config), "tokenizer_hash": _hash(tokenizer.json), "inputs": _input_identity(config)}
    for key in ("overwrite", "workers", "verify", "rebuild", "allow_partial"):  # none changes the output
        settings.pop(key)
    if settings["corpus_split"] is None:  # settings as before these keys existed: same fingerprints
        settings.pop("corpus_split")
    for source in settings["sources"]:
        for key, default in (("repeat", 1), ("render", None)):
            if source[key] == default:
                source.pop(key)
    return settings


def input_files(spec: SourceSpec, path: str, full: bool = False, allow_partial: bool = False,
                log: Callable[[str], None] | None = None) -> list:  # fmt: skip
    """The files of one path of a source: an ft-data folder's records files, else `source_files`."""
    if spec.render == "ft-data":
        return ft_files(path)
    return source_files(path, full, allow_partial, log)


def _input_identity(config: MixConfig) -> list[dict[str, Any]]:
    """What the inputs are, for the fingerprint: an instructpt output folder by its manifest's
    fingerprint (so a recomputed templify run means a new mix), a file by its size."""
    identity = []
    for spec in config.sources:
        for path in spec.paths:
            manifest = OutputDir(path).read_manifest() if Path(path).is_dir() else None
            if manifest is not None:
                identity.append({"path": path, "fingerprint": manifest.get("fingerprint")})
            else:
                identity.extend({"path": str(f), "bytes": file_size(f)} for f in input_files(spec, path))
    return identity


def _plan_and_write(config: MixConfig, tokenizer: TargetTokenizer, out: OutputDir, data: list[SourceData],
                    log: Callable[[str], None], excluded: list[int] | None = None
                    ) -> dict[str, Any]:  # fmt: skip
    """Plan every source's share, shuffle, write the output; returns the manifest's figures.
    `excluded`: per source, the documents the corpus split left out (split.py)."""
    plans = plan(data, config.seed, config.upsample)
    source_of = np.concatenate([np.full(len(p.selected), i, dtype=np.int16) for i, p in enumerate(plans)])
    doc_of = np.concatenate([p.selected for p in plans])
    order = np.random.default_rng(config.seed).permutation(len(doc_of))
    dtype = token_dtype(tokenizer.vocab_size)
    shards, dropped = write_corpus(config, data, source_of[order], doc_of[order], dtype, out)
    sources = []
    anchor_tokens = None
    for d, p in zip(data, plans):
        selected_tokens = p.tokens_selected(d.lengths)
        factor = selected_tokens / p.tokens_available if p.tokens_available else 0.0
        sampling = (
            ("all" if d.spec.repeat == 1 else f"repeated x{d.spec.repeat}")
            if p.weight is None or len(p.selected) == p.documents_available and factor == 1
            else (f"upsampled x{factor:.3f}" if factor > 1 else f"downsampled to {factor:.1%}")
        )
        if p.weight is not None and anchor_tokens is None:
            anchor_tokens = selected_tokens
        sources.append({
            "name": p.name, "paths": d.spec.paths, "weight": p.weight,
            "documents_available": p.documents_available,
            "tokens_available": p.tokens_available, "rejected": dict(sorted(d.rejects.items())),
            "target_tokens": p.target_tokens, "documents_selected": int(len(p.selected)),
            "tokens_selected": selected_tokens, "sampling": sampling,
        })  # fmt: skip
        if excluded and excluded[len(sources) - 1]:  # converted by the augmented run: not raw again
            sources[-1]["raw_excluded_converted"] = excluded[len(sources) - 1]
    total = sum(s["tokens_selected"] for s in sources)
    ratio = {s["name"]: round(s["tokens_selected"] / total, 6) if total else 0.0 for s in sources}
    requested = None
    weighted = [s for s in sources if s["weight"] is not None]
    if weighted:
        base = weighted[0]
        requested = {s["name"]: s["weight"] / base["weight"] for s in weighted}
        achieved = {s["name"]: s["tokens_selected"] / base["tokens_selected"] for s in weighted}
        for s in weighted:
            s["ratio_to_anchor_requested"] = round(requested[s["name"]], 6)
            s["ratio_to_anchor_achieved"] = round(achieved[s["name"]], 6)
        for s in weighted[1:]:
            if s["sampling"].startswith("upsampled"):
                log(f"note: source {s['name']!r} was repeated ({s['sampling']}) to meet the ratio")
    result = {
        "sources": sources, "token_share": ratio, "tokens_total": total, "documents_total": int(len(doc_of)),
        "tokenizer": {"name": tokenizer.name, "bos_text": tokenizer.bos_text, "eos_text": tokenizer.eos_text,
                      "vocab_size": tokenizer.vocab_size, "dtype": str(dtype)},
        "format": config.format, "seed": config.seed, "pack": config.pack, "seq_len": config.seq_len,
        "tokens_dropped_by_packing": dropped, "shards": shards,
    }  # fmt: skip
    if config.corpus_split:
        result["corpus_split"] = {**config.corpus_split, "raw_excluded_converted": sum(excluded or [])}
    keys = ("sources", "token_share", "tokens_total", "corpus_split")
    write_json(out.root / "summary.json", {k: result[k] for k in keys if k in result})
    return result
