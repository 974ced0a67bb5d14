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

from .errors import UsageError
from .output import (
    FORMATS,
    MANIFEST,
    SUMMARY,
    OutputDir,
    marker_files,
    marker_problem,
    read_json_or_none,
    read_verified,
    write_json,
    write_recorded,
)
from .templify import AugmentedText, TemplifyStats, templify


def read_records(path: Any, data: bytes | None = None) -> list[dict[str, Any]]:
    """The rows of one synthesize data shard (Parquet or JSONL); from `data` (the file's bytes,
    already read and checked) when given."""
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = ["id", "text", "pairs", "chain_id", "round", "inherits"]
        return pq.read_table(pa.BufferReader(data), columns=columns).to_pylist()
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def encode_texts(texts: list[AugmentedText], fmt: str) -> bytes:
    rows = [t.to_dict() for t in texts]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("source_ids", pa.list_(pa.string())),
         ("n_shots", pa.int32()), ("n_pairs", pa.int32()), ("mode", pa.string()),
         ("templates", pa.list_(pa.string()))]
    )  # fmt: skip
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def library_fingerprint() -> str:
    """A hash of the whole template library and the rendering rates: new templates mean new output."""
    from .templates import LIBRARY

    t = sys.modules[TemplifyStats.__module__]  # the module (`instructpt.templify` is the function)
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
) -> dict[str, Any]:
    """Templify the finished synthesize run in `source` into `output`; returns the summary.

    Output shard i is done when its marker (shards/part-i.json) is readable, was written under
    these settings from the same source bytes, and its file checks out (size + mtime, or a full
    hash with `verify`); anything else is recomputed. Every source shard read is hashed and
    compared with the synthesize marker: damaged input is refused, naming the file.
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    source = Path(source)
    synth = _synthesize_manifest(source)
    shards = sorted(synth["shards"].items(), key=lambda kv: int(kv[0]))
    settings = {"source": str(source.resolve()), "source_fingerprint": synth["fingerprint"],
                "seed": seed, "format": fmt, "templates": library_fingerprint()}  # fmt: skip
    out = OutputDir(output, fmt)
    fix = f"rerun the synthesize command that wrote {source} (with --verify) to recompute it"
    from tqdm import tqdm

    with out.locked():
        manifest = out.open_run(settings, overwrite)
        fingerprint = manifest["fingerprint"]

        def source_record(shard: dict[str, Any]) -> dict[str, Any]:
            return marker_files(shard).get(shard["file"], {})

        done: dict[str, dict[str, Any]] = {}
        for key, shard in shards:
            marker = read_json_or_none(out.marker_file(int(key)))
            if (isinstance(marker, dict) and marker.get("fingerprint") == fingerprint
                    and marker.get("source_sha256") == source_record(shard).get("sha256")
                    and marker_problem(out.root, marker, verify) is None):  # fmt: skip
                done[key] = marker
        summary = read_json_or_none(out.root / SUMMARY)
        if manifest.get("complete") and len(done) == len(shards) and isinstance(summary, dict):
            log(f"{out.root}: templify already complete, nothing to do")
            return summary
        manifest["complete"] = False
        disable = None if progress is None else not progress
        todo = [(key, shard) for key, shard in shards if key not in done]
        for key, shard in tqdm(todo, unit="shard", disable=disable, file=sys.stderr):
            index = int(key)
            record = source_record(shard)
            data = read_verified(source / shard["file"], record, fix)
            stats = TemplifyStats()
            texts = list(templify(read_records(source / shard["file"], data), seed, stats))
            payload = encode_texts(texts, fmt)
            files = dict([write_recorded(out.root, out.shard_file(index), payload, len(texts))])
            marker = {"file": next(iter(files)), "files": files, "fingerprint": fingerprint,
                      "source_file": shard["file"], "source_sha256": record.get("sha256"),
                      "stats": stats_to_json(stats)}  # fmt: skip
            write_json(out.marker_file(index), marker)  # the shard counts as done from here on
            done[key] = manifest["shards"][key] = marker
            out.write_manifest(manifest)  # progress for readers; the marker is what counts
        total = TemplifyStats()
        for key, _ in shards:
            total.add(stats_from_json(done[key]["stats"]))
        summary = {"seed": seed, "shards": len(done), **total.to_dict()}
        write_json(out.root / SUMMARY, summary)
        manifest["shards"] = {key: done[key] for key, _ in shards}
        manifest["shard_count"] = len(shards)
        manifest["complete"] = True
        out.write_manifest(manifest)
    return summary


def _synthesize_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the finished synthesize run in `source`, or a one-line UsageError."""
    what = "not an `instructpt synthesize` output folder"
    if not source.exists():
        raise UsageError(f"{source} is {what} (it does not exist)")
    if not source.is_dir():
        raise UsageError(f"{source} is {what} (it is a file)")
    folder = OutputDir(source)
    if folder.manifest_unreadable():
        raise UsageError(f"{source / MANIFEST} is unreadable; rerun the synthesize command that wrote "
                         f"{source} to rebuild it")  # fmt: skip
    synth = folder.read_manifest()
    if synth is None:
        raise UsageError(f"{source} is {what} (no {MANIFEST})")
    settings = synth.get("settings")
    is_synthesize = isinstance(settings, dict) and "rounds" in settings
    if not is_synthesize or not isinstance(synth.get("shards"), dict):
        kind = "templify" if isinstance(settings, dict) and "templates" in settings else "another kind of"
        raise UsageError(f"{source} is {what} (it holds a {kind} output folder's manifest)")
    if not synth.get("complete"):
        raise UsageError(f"the synthesize run in {source} is not finished: rerun its command to complete it")
    return synth
