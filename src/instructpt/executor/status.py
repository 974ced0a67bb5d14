"""`instructpt status` and `merge` for any stage's folder (synthesize, templify, mix)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import read_json_or_none
from ..io.integrity import check_run
from ..io.output import MANIFEST, SHARDS_DIR, OutputDir, stage_of
from ..records import Counts
from .local import Log, finish, shard_count
from .stage import Stage

# stage name -> "module:function" rebuilding a Stage from its folder's manifest (for merge).
REOPEN = {
    "synthesize": "instructpt.synthesis.stage:reopen_stage",
    "templify": "instructpt.templating.stage:reopen_stage",
    "mix": "instructpt.mixing.stage:reopen_stage",
}
NOT_OURS = "is not an `instructpt synthesize` output folder, nor a templify or mix one"


def open_folder(folder: str | Path) -> tuple[OutputDir, dict[str, Any], str]:
    """(folder, manifest, stage name) of a stage's output folder, or a one-line UsageError."""
    out = OutputDir(folder)
    if out.manifest_unreadable():
        raise UsageError(
            f"{out.root / MANIFEST} is unreadable; rerun the command that wrote it to rebuild it"
        )
    manifest = out.read_manifest()
    stage = stage_of(manifest) if manifest is not None else None
    if manifest is None or stage is None:
        raise UsageError(f"{folder} {NOT_OURS} (no manifest.json)")
    return out, manifest, stage


def run_status(folder: str | Path, verify: bool = False) -> dict[str, Any]:
    """Done/total shards, documents, throughput, ETA, failures and damaged shards of a (possibly
    running) run of any stage. Shards are checked cheaply (size + mtime), or fully with `verify`."""
    out, manifest, stage = open_folder(folder)
    check = check_run(out.root, verify)
    markers = check.good
    n = shard_count(out.root) or check.shard_count
    failures = []
    if (out.root / SHARDS_DIR).is_dir():
        for path in sorted((out.root / SHARDS_DIR).glob("part-*.failed.json")):
            index = int(path.name.split(".")[0].split("-")[1])
            note = read_json_or_none(path)
            if index not in markers and isinstance(note, dict):
                failures.append({"shard": index, **note})
    total = Counts()
    for marker in markers.values():
        counts = marker.get("counts")
        if not isinstance(counts, dict) and isinstance(marker.get("stats"), dict):  # older templify markers
            counts = {"documents": marker["stats"].get("documents", 0)}
        total.update({k: v for k, v in (counts or {}).items() if isinstance(v, int)})
    busy = sum(m.get("seconds", 0) for m in markers.values())
    finished = sorted(m.get("finished_at", 0) for m in markers.values())
    first = markers[min(markers)].get("seconds", 0) if markers else 0
    wall = finished[-1] - (finished[0] - first) if len(finished) > 1 else busy
    rate = len(markers) / wall if wall > 0 else 0.0
    remaining = (n - len(markers)) if n is not None else None
    done, documents = len(markers), total["documents"]
    if manifest.get("complete") and not markers:  # mix: its tokenized shards go once it is written
        n = done = manifest.get("tokenize_shards", n)
        documents = manifest.get("documents_total", documents)
    return {
        "folder": str(out.root),
        "stage": stage,
        "complete": bool(manifest.get("complete")) and not check.damaged,
        "shards_done": done,
        "shards_total": n,
        "documents_done": documents,
        "pairs": total["pairs"],
        "shards_per_hour": round(rate * 3600, 2),
        "documents_per_s": round(total["documents"] / wall, 3) if wall > 0 else 0.0,
        "generated_tokens_per_s": round(total["generated_tokens"] / wall, 1) if wall > 0 else 0.0,
        "eta_seconds": round(remaining / rate) if remaining is not None and rate > 0 else None,
        "failures": failures,
        "damaged": [{"shard": i, "problem": p} for i, p in sorted(check.damaged.items())],
    }


def reopen(out: OutputDir, manifest: dict[str, Any], stage: str) -> Stage:
    module, _, function = REOPEN[stage].partition(":")
    return getattr(importlib.import_module(module), function)(out, manifest)


def merge_folder(folder: str | Path, log: Log) -> tuple[str, int, dict[str, Any]]:
    """Finalize the folder of a run whose shards static workers computed; (stage, shards, result).
    Fails, naming the missing shards, if some are not done."""
    out, manifest, name = open_folder(folder)
    n = shard_count(out.root)
    if manifest.get("complete") and n is None:
        n = manifest.get("shard_count", manifest.get("tokenize_shards"))
    if n is None:
        raise UsageError(f"{folder}: no worker has read the whole input yet, so the shard count is unknown")
    if not manifest.get("complete"):
        markers = check_run(out.root).good
        missing = [i for i in range(n) if i not in markers]
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise UsageError(f"{folder}: {len(missing)} of {n} shards missing ({shown}); rerun their workers")
    with out.locked():
        stage = reopen(out, manifest, name)
        if (done := stage.finished()) is not None:
            return name, n, done
        return name, n, finish(stage, None, log)
