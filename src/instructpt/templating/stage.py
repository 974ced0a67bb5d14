"""Running templify over a synthesize output folder: shard by shard, resumable.

Input shard i (its chains never cross shards) becomes output shard i, written atomically
and recorded in the output manifest; a rerun skips recorded shards. Since every text's
randomness derives from its documents' ids and the seed, the bytes do not depend on how
the work was split or interrupted.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..executor import BaseStage, ShardResult, check_worker, launch, open_output
from ..io.files import write_json
from ..io.integrity import read_verified, write_recorded
from ..io.output import FORMATS, MANIFEST, SUMMARY, OutputDir, stage_hint, stage_of
from ..io.shards import encode_rows, read_rows
from ..io.synthesized import SynthesizedShards, source_record
from .render import AugmentedText, templify
from .stats import TemplifyStats


def read_records(path: Any, data: bytes | None = None) -> list[dict[str, Any]]:
    """The rows of one synthesize data shard (Parquet or JSONL); from `data` (the file's bytes,
    already read and checked) when given."""
    return read_rows(path, data, columns=RECORD_COLUMNS)


RECORD_COLUMNS = ["id", "text", "pairs", "chain_id", "round", "inherits"]


def texts_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("source_ids", pa.list_(pa.string())),
         ("n_shots", pa.int32()), ("n_pairs", pa.int32()), ("mode", pa.string()),
         ("templates", pa.list_(pa.string()))]
    )  # fmt: skip


def encode_texts(texts: list[AugmentedText], fmt: str) -> bytes:
    return encode_rows([t.to_dict() for t in texts], fmt, texts_schema() if fmt != "jsonl" else None)


def library_fingerprint() -> str:
    """A hash of the whole template library and the rendering rates: new templates mean new output."""
    from . import render as t  # the rendering rates
    from .templates import LIBRARY

    rates = [t.MODES_MANY_PAIRS, t.MODES_ONE_PAIR, t.INVERSION_RATE, t.BARE_RATE, t.BRIDGE_RATE,
             t.MC_FREE_RATE, t.NUMBERED_BEFORE_RATE, t.FEWSHOT_INLINE_RATE, t.RENDER_VERSION]  # fmt: skip
    blob = json.dumps({"library": {name: list(items) for name, items in LIBRARY.items()}, "rates": rates})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stats_to_json(stats: TemplifyStats) -> dict[str, Any]:
    return {
        "texts": stats.texts, "documents": stats.documents, "pairs_rendered": stats.pairs_rendered,
        "inversions": stats.inversions, "modes": dict(stats.modes), "families": dict(stats.families),
        "patterns": sorted(f"{f}:{i}" for f, i in stats.all_patterns()),
        "pairs_dropped": dict(stats.pairs_dropped), "shots": {str(k): v for k, v in stats.shots.items()},
        "kinds": dict(stats.kinds), "events": dict(stats.events), "templates": dict(stats.templates),
    }  # fmt: skip


def stats_from_json(data: dict[str, Any]) -> TemplifyStats:
    stats = TemplifyStats(data["texts"], data["documents"], data["pairs_rendered"], data["inversions"])
    stats.modes.update(data["modes"])
    stats.families.update(data["families"])
    stats.patterns = {(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in data["patterns"]}
    stats.pairs_dropped.update(data["pairs_dropped"])
    stats.shots.update({int(k): v for k, v in data["shots"].items()})
    stats.kinds.update(data.get("kinds", {}))
    stats.events.update(data.get("events", {}))
    stats.templates.update(data.get("templates", {}))
    return stats


def run_templify(
    source: str | Path,
    output: str | Path,
    seed: int = 0,
    fmt: str = "parquet",
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    verify: bool = False,
    num_workers: int = 1,
    worker_index: int = 0,
    executor: str = "local",
    ray_workers: int | None = None,
) -> dict[str, Any]:
    """Templify the finished synthesize run in `source` into `output`; returns the summary.

    Output shard i is done when its marker (shards/part-i.json) is readable, was written under
    these settings from the same source bytes, and its file checks out (size + mtime, or a full
    hash with `verify`); anything else is recomputed. Every source shard read is hashed and
    compared with the synthesize marker: damaged input is refused, naming the file. With
    `num_workers` > 1 this process is static worker `worker_index`; `executor="ray"` runs the
    shards on Ray actors (`ray_workers` of them, default: one per CPU).
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    check_worker(num_workers, worker_index)
    source = Path(source)
    synth = _synthesize_manifest(source)
    settings = {"source": str(source.resolve()), "source_fingerprint": synth["fingerprint"],
                "seed": seed, "format": fmt, "templates": library_fingerprint()}  # fmt: skip
    out = OutputDir(output, fmt)
    manifest = open_output(out, settings, STAGE, overwrite, num_workers, worker_index)
    stage = TemplifyStage(source, synth, out, manifest, seed, fmt, verify)
    return launch(stage, executor, num_workers, worker_index, ray_workers, progress, log=log)


STAGE = "templify"


class TemplifyStage(SynthesizedShards, BaseStage):
    """Templify as an executor stage: input shard i (its chains never cross shards) becomes
    output shard i."""

    name = STAGE

    def __init__(self, source: Path, synth: dict[str, Any], out: OutputDir, manifest: dict[str, Any],
                 seed: int, fmt: str, verify: bool = False) -> None:  # fmt: skip
        self.source, self.synth, self.out, self.manifest = source, synth, out, manifest
        self.seed, self.fmt, self.verify = seed, fmt, verify
        wrote = stage_of(synth) or "synthesize"
        self.fix = f"rerun the {wrote} command that wrote {source} (with --verify) to recompute it"

    def run(self, index: int, work: dict[str, Any]) -> ShardResult:
        data = read_verified(self.source / work["file"], source_record(work), self.fix)
        stats = TemplifyStats()
        texts = list(templify(read_records(self.source / work["file"], data), self.seed, stats))
        payload = encode_texts(texts, self.fmt)
        files = dict([write_recorded(self.out.root, self.out.shard_file(index), payload, len(texts))])
        counts = {"documents": stats.documents, "texts": stats.texts, "pairs": stats.pairs_rendered}
        return ShardResult(files, counts, {"file": next(iter(files)), "stats": stats_to_json(stats)})

    def finalize(self, markers: dict[int, dict[str, Any]], complete: bool, progress: Any) -> dict[str, Any]:
        total = TemplifyStats()
        for marker in markers.values():
            total.add(stats_from_json(marker["stats"]))
        summary = {"seed": self.seed, "shards": len(markers), **total.to_dict()}
        if complete:
            write_json(self.out.root / SUMMARY, summary)
        return summary


def reopen_stage(out: OutputDir, manifest: dict[str, Any]) -> TemplifyStage:
    """The stage of a templify folder, to finalize it (`instructpt merge`)."""
    settings = manifest["settings"]
    source = Path(settings["source"])
    return TemplifyStage(source, _synthesize_manifest(source), OutputDir(out.root, settings["format"]),
                         manifest, settings["seed"], settings["format"])  # fmt: skip


def _synthesize_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the finished synthesize run in `source`, or a one-line UsageError."""
    what = "not an `instructpt synthesize` output folder"
    if not source.exists():
        raise UsageError(f"{source} is {what} (it does not exist)")
    if not source.is_dir():
        raise UsageError(f"{source} is {what} (it is a file)")
    folder = OutputDir(source)
    if folder.manifest_unreadable():
        raise UsageError(f"{source / MANIFEST} is unreadable; rerun the synthesize (or decontaminate) "
                         f"command that wrote {source} to rebuild it")  # fmt: skip
    synth = folder.read_manifest()
    if synth is None:
        raise UsageError(f"{source} is {what} (no {MANIFEST})")
    stage = stage_of(synth)
    if stage in ("templify", "mix"):
        raise UsageError(f"{stage_hint(source, stage)} (templify reads a synthesize output)")
    if stage not in ("synthesize", "decontaminate") or not isinstance(synth.get("shards"), dict):
        kind = stage if stage is not None else "another kind of"
        raise UsageError(f"{source} is {what} (it holds a {kind} output folder's manifest)")
    if not synth.get("complete"):
        raise UsageError(f"the synthesize run in {source} is not finished: rerun its command to complete it")
    return synth
