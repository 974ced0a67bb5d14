"""`instructpt decontaminate`: benchmark decontamination and pair filters between synthesize and
templify, as an executor stage (resumable, markers, `status`/`merge`).

Input shard i of a synthesize folder becomes output shard i, with the same rows and columns:
contaminated pairs and filtered pairs are removed from each entry's `pairs`; a contaminated
document is either cut (GPT-3: the matching n-gram and `window` characters each side removed,
leftover pieces shorter than `window` discarded, the document dropped if nothing or more than
10 pieces remain) or dropped with its pairs. The output folder reads as a synthesize folder, so
templify takes it unchanged. Every hit is a line of contamination.jsonl (entry id, document id,
pair index or null, benchmark, matched n-gram, what was done); summary.json counts documents and
pairs by reason and contamination by benchmark.

A pair is checked as its instruction followed by its response (an n-gram may span both); a
document as its text. A shard's bytes depend only on its input shard, the index and the settings
(the duplicate table, when used, only on the whole input), so any worker may compute any shard.
With dedupe, a repeated pair keeps its first copy (by shard, row, pair) that survives every other
decision; a copy in a dropped document, or dropped for its own reason, never counts as the first.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SettingsChanged, UsageError
from ..executor import BaseStage, ShardResult, check_worker, launch, open_output
from ..io.changes import settings_changed
from ..io.files import write_json
from ..io.integrity import read_verified, write_output_file, write_recorded
from ..io.output import SUMMARY, OutputDir, arrow_schema
from ..io.shards import encode_jsonl, encode_rows, read_rows
from ..io.synthesized import SynthesizedShards, source_record
from .check import DecontaminateOptions, RowChecker, pair_keys
from .evalsets import eval_set_texts, lm_eval_texts, parse_eval_set
from .filters import DuplicateTable, FilterSettings
from .ngrams import NgramIndex
from .outcome import add_stats, cut_document, new_stats  # noqa: F401  (cut_document: re-exported)

STAGE = "decontaminate"
CONTAMINATION = "contamination.jsonl"
CONTAMINATION_DIR = "contamination"
DEFAULT_OPTIONS = DecontaminateOptions()


def build_index(
    eval_sets: Sequence[str] = (),
    lm_eval_tasks: Sequence[str] = (),
    lm_eval_include: str | None = None,
    n: int = 13,
    min_words: int = 8,
    benchmarks: Mapping[str, Iterable[str]] | None = None,
) -> NgramIndex:
    """The n-gram index of every eval set (`[NAME=]PATH[:FIELDS]`), lm-eval task and in-memory
    benchmark (`benchmarks`: {name: texts})."""
    specs = [parse_eval_set(s) for s in eval_sets]
    benchmarks = benchmarks or {}
    names = [s.name for s in specs] + list(lm_eval_tasks) + list(benchmarks)
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise UsageError(f"two eval sets are named {dup!r}; name them apart with NAME=PATH")

    def texts() -> Iterator[tuple[str, str]]:
        for spec in specs:
            yield from eval_set_texts(spec)
        yield from lm_eval_texts(list(lm_eval_tasks), lm_eval_include)
        for name, items in benchmarks.items():
            if isinstance(items, str):
                raise UsageError(f"benchmark {name!r}: give a list of texts, not one string")
            yield from ((name, text) for text in items)

    return NgramIndex.build(texts(), n, min_words)


def run_decontaminate(
    source: str | Path,
    output: str | Path,
    eval_sets: Sequence[str] = (),
    options: DecontaminateOptions = DEFAULT_OPTIONS,
    lm_eval_tasks: Sequence[str] = (),
    lm_eval_include: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    verify: bool = False,
    num_workers: int = 1,
    worker_index: int = 0,
    executor: str = "local",
    ray_workers: int | None = None,
    index: NgramIndex | None = None,
) -> dict[str, Any]:
    """Decontaminate and filter the finished synthesize run in `source` into `output` (a folder
    templify reads as it reads `source`); returns the summary. `index`: a prebuilt index
    (otherwise built from `eval_sets` and `lm_eval_tasks`; with none, only the filters run)."""
    from ..templating.stage import _synthesize_manifest

    if options.document_action not in ("cut", "drop"):
        raise UsageError(f"--document-action must be cut or drop, got {options.document_action!r}")
    if options.n < 1 or options.min_words < 1 or options.window < 0:
        raise UsageError("--ngram and --min-words must be at least 1, --window at least 0")
    check_worker(num_workers, worker_index)
    source = Path(source)
    synth = _synthesize_manifest(source)
    if index is None:
        index = build_index(eval_sets, lm_eval_tasks, lm_eval_include, options.n, options.min_words)
    fmt = synth.get("settings", {}).get("format", "parquet")
    settings = {
        "source": str(source.resolve()),
        "source_fingerprint": synth["fingerprint"],
        "format": fmt,
        "index": {"digest": index.digest(), **index.describe()},
        "options": _options_json(options),
    }
    out = OutputDir(output, fmt)
    try:
        manifest = open_output(out, settings, STAGE, overwrite, num_workers, worker_index)
    except SettingsChanged:  # again, naming the file each changed eval set was read from
        sources = {f"index.benchmarks.{s.name}": s.path for s in map(parse_eval_set, eval_sets)}
        old = (out.read_manifest() or {}).get("settings", {})
        raise settings_changed(out.root, STAGE, old, settings, sources) from None
    stage = DecontaminateStage(source, synth, out, manifest, index, options, verify)
    return launch(stage, executor, num_workers, worker_index, ray_workers, progress, log=log)


def _options_json(options: DecontaminateOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


def _options_from_json(data: dict[str, Any]) -> DecontaminateOptions:
    return DecontaminateOptions(**{**data, "filters": FilterSettings(**data["filters"])})


class DecontaminateStage(SynthesizedShards, BaseStage):
    """Decontamination + pair filters as an executor stage: input shard i -> output shard i."""

    name = STAGE

    def __init__(
        self,
        source: Path,
        synth: dict[str, Any],
        out: OutputDir,
        manifest: dict[str, Any],
        index: NgramIndex,
        options: DecontaminateOptions,
        verify: bool = False,
    ) -> None:
        self.source, self.synth, self.out, self.manifest = source, synth, out, manifest
        self.index, self.options, self.verify = index, options, verify
        self.duplicates: DuplicateTable | None = None
        self.fix = f"rerun the command that wrote {source} (with --verify) to recompute it"

    def _rows(self, work: dict[str, Any]) -> list[dict[str, Any]]:
        data = read_verified(self.source / work["file"], source_record(work), self.fix)
        return read_rows(self.source / work["file"], data)

    def prepare(self) -> None:
        """With dedupe: one pass over every input shard for the table of repeated pairs among
        those that survive every other decision (contamination, the other filters)."""
        if self.options.filters.dedupe and self.duplicates is None:
            shards = ((index, self._rows(work)) for index, work in self.shards())
            self.duplicates = DuplicateTable.build(pair_keys(shards, self.index, self.options))

    def run(self, index: int, work: dict[str, Any]) -> ShardResult:
        rows = self._rows(work)
        shard = RowChecker(self.index, self.options, self.duplicates).check(index, rows)
        fmt = self.out.fmt
        schema = arrow_schema(bool(rows) and "generation" in rows[0]) if fmt != "jsonl" else None
        data = encode_rows(shard.rows, fmt, schema)
        files = dict(
            [
                write_recorded(self.out.root, self.out.shard_file(index), data, len(shard.rows)),
                write_recorded(
                    self.out.root, self._hits_file(index), encode_jsonl(shard.hits), len(shard.hits)
                ),
            ]
        )
        stats = shard.stats
        counts = {
            "documents": stats["documents_in"],
            "pairs": stats["pairs_out"],
            "contaminated": len(shard.hits),
        }
        rel = self.out.shard_file(index).relative_to(self.out.root).as_posix()
        return ShardResult(files, counts, {"file": rel, "stats": stats})

    def _hits_file(self, index: int) -> Path:
        return self.out.root / CONTAMINATION_DIR / f"part-{index:05d}.jsonl"

    def finalize(self, markers: dict[int, dict[str, Any]], complete: bool, progress: Any) -> dict[str, Any]:
        total = new_stats()
        for marker in markers.values():
            add_stats(total, marker["stats"])
        index = self.manifest["settings"]["index"]
        summary = {
            "shards": len(markers),
            **total,
            "index": index,
            "options": self.manifest["settings"]["options"],
        }
        if complete:
            parts = [
                (self.out.root / CONTAMINATION_DIR / f"part-{i:05d}.jsonl").read_bytes()
                for i in sorted(markers)
            ]
            hits = b"".join(parts)
            write_output_file(self.out.root, self.manifest, CONTAMINATION, hits, hits.count(b"\n"))
            write_json(self.out.root / SUMMARY, summary)
        return summary


def reopen_stage(out: OutputDir, manifest: dict[str, Any]) -> DecontaminateStage:
    """The stage of a decontaminate folder, to finalize it (`instructpt merge`)."""
    from ..templating.stage import _synthesize_manifest

    settings = manifest["settings"]
    source = Path(settings["source"])
    return DecontaminateStage(
        source,
        _synthesize_manifest(source),
        OutputDir(out.root, settings["format"]),
        manifest,
        NgramIndex(),
        _options_from_json(settings["options"]),
    )
