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
from .output import FORMATS, MANIFEST, SUMMARY, OutputDir, write_atomic, write_json
from .templates import FAMILIES
from .templify import AugmentedText, TemplifyStats, templify


def read_records(path: Any) -> list[dict[str, Any]]:
    """The rows of one synthesize data shard (Parquet or JSONL)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = ["id", "text", "pairs", "chain_id", "round", "inherits"]
        return pq.read_table(path, columns=columns).to_pylist()
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def encode_texts(texts: list[AugmentedText], fmt: str) -> bytes:
    rows = [t.to_dict() for t in texts]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("source_ids", pa.list_(pa.string())),
         ("n_shots", pa.int32()), ("n_pairs", pa.int32()), ("mode", pa.string())]
    )  # fmt: skip
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def library_fingerprint() -> str:
    """A hash of the whole template library: new templates mean new output."""
    blob = json.dumps({name: list(patterns) for name, (patterns, _, _) in FAMILIES.items()})
    from .templates import dialog, numbering, options

    blob += json.dumps([dialog.SPEAKERS, numbering.STYLES, options.ITEM_STYLES])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stats_to_json(stats: TemplifyStats) -> dict[str, Any]:
    return {
        "texts": stats.texts, "documents": stats.documents, "pairs_rendered": stats.pairs_rendered,
        "inversions": stats.inversions, "modes": dict(stats.modes), "families": dict(stats.families),
        "patterns": sorted(f"{f}:{i}" for f, i in stats.patterns),
        "pairs_dropped": dict(stats.pairs_dropped), "shots": {str(k): v for k, v in stats.shots.items()},
    }  # fmt: skip


def stats_from_json(data: dict[str, Any]) -> TemplifyStats:
    stats = TemplifyStats(data["texts"], data["documents"], data["pairs_rendered"], data["inversions"])
    stats.modes.update(data["modes"])
    stats.families.update(data["families"])
    stats.patterns = {(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in data["patterns"]}
    stats.pairs_dropped.update(data["pairs_dropped"])
    stats.shots.update({int(k): v for k, v in data["shots"].items()})
    return stats


def run_templify(
    source: str | Path,
    output: str | Path,
    seed: int = 0,
    fmt: str = "parquet",
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> dict[str, Any]:
    """Templify the finished synthesize run in `source` into `output`; returns the summary."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    source = Path(source)
    synth = OutputDir(source).read_manifest() if source.is_dir() else None
    if synth is None or "shards" not in synth:
        raise UsageError(f"{source} is not an `instructpt synthesize` output folder (no {MANIFEST})")
    if not synth.get("complete"):
        raise UsageError(f"the synthesize run in {source} is not finished: rerun its command to complete it")
    shards = sorted(synth["shards"].items(), key=lambda kv: int(kv[0]))
    settings = {"source": str(source.resolve()), "source_fingerprint": synth["fingerprint"],
                "seed": seed, "format": fmt, "templates": library_fingerprint()}  # fmt: skip
    out = OutputDir(output, fmt)
    from tqdm import tqdm

    with out.locked():
        manifest = out.open_run(settings, overwrite)
        intact = all(out.shard_file(int(k)).is_file() for k in manifest["shards"])
        if manifest.get("complete") and intact and (out.root / SUMMARY).is_file():
            log(f"{out.root}: templify already complete, nothing to do")
            return json.loads((out.root / SUMMARY).read_text())
        done = manifest["shards"]
        disable = None if progress is None else not progress
        for key, shard in tqdm(shards, unit="shard", disable=disable, file=sys.stderr):
            index = int(key)
            if key in done and out.shard_file(index).is_file():
                continue
            stats = TemplifyStats()
            texts = list(templify(read_records(source / shard["file"]), seed, stats))
            write_atomic(out.shard_file(index), encode_texts(texts, fmt))
            done[key] = {
                "file": str(out.shard_file(index).relative_to(out.root)),
                "stats": stats_to_json(stats),
            }
            out.write_manifest(manifest)
        total = TemplifyStats()
        for shard in done.values():
            total.add(stats_from_json(shard["stats"]))
        summary = {"seed": seed, "shards": len(done), **total.to_dict()}
        write_json(out.root / SUMMARY, summary)
        manifest["complete"] = True
        out.write_manifest(manifest)
    return summary
