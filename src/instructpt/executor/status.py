"""`instructpt status` and `merge` for any stage's folder (synthesize, templify, mix)."""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import read_json_or_none
from ..io.integrity import OUTPUT_FILES, RunCheck, check_run
from ..io.output import MANIFEST, SHARDS_DIR, OutputDir, stage_of
from ..records import Counts
from .local import Log, finish, shard_count
from .stage import Stage

# stage name -> "module:function" rebuilding a Stage from its folder's manifest (for merge).
REOPEN = {
    "synthesize": "instructpt.synthesis.stage:reopen_stage",
    "templify": "instructpt.templating.stage:reopen_stage",
    "mix": "instructpt.mixing.stage:reopen_stage",
    "decontaminate": "instructpt.quality.decontaminate:reopen_stage",
}
NOT_OURS = "is not an `instructpt synthesize` output folder, nor a templify or mix one"
# No ETA when no shard has finished for 3 times the usual wait (between two finished shards, or
# for one shard): the workers are stopped, or not started (static workers), and a rate from the
# past would promise an end that is not coming ("ETA 0 s").
STALLED_AFTER = 3.0


def open_folder(folder: str | Path) -> tuple[OutputDir, dict[str, Any], str]:
    """(folder, manifest, stage name) of a stage's output folder, or a one-line UsageError."""
    out = OutputDir(folder)
    if not out.root.is_dir():
        raise UsageError(f"{folder} is not a folder: give a stage's output folder (synthesize, "
                         "decontaminate, templify or mix)")  # fmt: skip
    if out.manifest_unreadable():
        raise UsageError(
            f"{out.root / MANIFEST} is unreadable; rerun the command that wrote it to rebuild it"
        )
    manifest = out.read_manifest()
    stage = stage_of(manifest) if manifest is not None else None
    if manifest is None and (out.root / SHARDS_DIR).is_dir():  # ours, its manifest deleted
        raise UsageError(f"{out.root / MANIFEST} is missing; rerun the command that wrote {folder} to "
                         "rebuild it (its finished shards are kept)")  # fmt: skip
    if manifest is None or stage is None:
        raise UsageError(f"{folder} {NOT_OURS} (no manifest.json)")
    return out, manifest, stage


def run_status(folder: str | Path, verify: bool = False, now: float | None = None) -> dict[str, Any]:
    """Done/total shards, documents, throughput, ETA, failures and damaged shards of a (possibly
    running) run of any stage. Shards are checked cheaply (size + mtime), or fully with `verify`.
    `eta_seconds` is None when there is no honest estimate; `eta_note` then says why."""
    out, manifest, stage = open_folder(folder)
    check = check_run(out.root, verify)
    markers = check.good  # a finished run's own: shards computed past its --target-tokens stop are `beyond`
    n = shard_count(out.root) or check.shard_count
    if not manifest.get("complete") and n is not None and markers and max(markers) >= n:
        n = None  # the count of a run stopped at --target-tokens, now continued past it
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
    complete = bool(manifest.get("complete")) and not check.damaged
    idle = (time.time() if now is None else now) - finished[-1] if finished else None
    eta, eta_note = estimate_eta(complete, remaining, rate, idle, busy / len(markers) if markers else 0.0)
    if manifest.get("complete") and check.damaged:  # finished, then damaged: no worker will come
        eta, eta_note = None, "damaged since it finished: rerun its command to recompute"
    waiting = static_workers_not_started(out.root, n, markers) if not complete else None
    if waiting:
        eta, eta_note = None, waiting
    return {
        "folder": str(out.root),
        "stage": stage,
        "complete": complete,
        "finished": bool(manifest.get("complete")),  # complete once, perhaps damaged since
        "shards_done": done,
        "shards_total": n,
        "shards_beyond": len(check.beyond),  # kept for a larger --target-tokens, not in the counts here
        "documents_done": documents,
        "pairs": total["pairs"],
        "shards_per_hour": round(rate * 3600, 2),
        "documents_per_s": round(total["documents"] / wall, 3) if wall > 0 else 0.0,
        "generated_tokens_per_s": round(total["generated_tokens"] / wall, 1) if wall > 0 else 0.0,
        "eta_seconds": eta,
        "eta_note": eta_note,
        "failures": failures,
        "damaged": damaged_entries(check),
    }


def damaged_entries(check: RunCheck) -> list[dict[str, Any]]:
    """`status`'s "damaged" list: each damaged shard ({shard, problem: "<file>: <problem>", final:
    false}), then each damaged final file of a finished stage (rejects.jsonl, contamination.jsonl,
    mix's training files: {file, problem, final: true, shard: the shard it is recorded under})."""
    recorded = (check.manifest or {}).get(OUTPUT_FILES) or {}
    shards = [{"shard": i, "problem": p, "final": False} for i, p in sorted(check.damaged_shards.items())]
    finals = [{"shard": int(recorded.get(rel, {}).get("shard", 0)), "file": rel, "problem": f"{rel}: {p}",
               "final": True} for rel, p in sorted(check.final.items())]  # fmt: skip
    return shards + finals


def estimate_eta(complete: bool, remaining: int | None, rate: float, idle: float | None,
                 shard_seconds: float) -> tuple[float | None, str]:  # fmt: skip
    """(seconds left, or None when unknown; why) from the shards left, the finish rate so far
    (shards/s), the seconds since the last shard finished and the mean seconds per shard."""
    if complete:
        return 0.0, "complete"
    if remaining is None:
        return None, "the shard count is not known yet"
    if idle is None or rate <= 0:
        return None, "no shard has finished yet"
    if idle > STALLED_AFTER * max(1 / rate, shard_seconds):
        return None, f"no shard has finished for {format_duration(idle)}: are the workers running?"
    # the shard in flight may end any moment; the others take their usual time
    left = max(remaining / rate - idle, (remaining - 1) / rate, 0.0)
    return round(left, 1), f"{remaining} shards left at {rate * 3600:,.1f} shards/h"


def static_workers_not_started(root: Path, n: int | None, markers: dict[int, Any]) -> str | None:
    """Why there is no ETA when shards left belong to static workers that never opened the folder
    (each takes its lock file `.lock-w<K>-of-<N>` and computes the shards congruent to K mod N);
    None when every worker owning a shard left has started, or for other runs."""
    found = [(p.stat().st_mtime, *map(int, m.groups())) for p in root.glob(".lock-w*-of-*")
             if (m := re.fullmatch(r"\.lock-w(\d+)-of-(\d+)", p.name))]  # fmt: skip
    if not found or n is None:
        return None
    workers = max(found)[2]  # the latest run's worker count
    started = {k for _, k, of in found if of == workers}
    owners = {i % workers for i in range(n) if i not in markers}
    missing = sorted(owners - started)
    if not missing:
        return None
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    return f"shards left belong to workers not started yet: --worker-index {shown} of --num-workers {workers}"


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def eta_text(info: dict[str, Any]) -> str:
    """The ETA of a `run_status` result, in words."""
    if info["complete"]:
        return "done"
    if info["eta_seconds"] is None:
        return f"unknown ({info['eta_note']})"
    return format_duration(info["eta_seconds"])


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
    check = check_run(out.root)
    if check.damaged:  # a finished run too: finalizing the good shards alone would drop documents
        raise UsageError(f"{folder}: damaged: {check.problems()}; rerun the {name} command that wrote "
                         f"{folder} to recompute them")  # fmt: skip
    if not manifest.get("complete"):
        markers = check.good
        missing = [i for i in range(n) if i not in markers]
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise UsageError(f"{folder}: {len(missing)} of {n} shards missing ({shown}); rerun their workers")
    with out.locked():
        stage = reopen(out, manifest, name)
        if (done := stage.finished()) is not None:
            return name, n, done
        return name, n, finish(stage, None, log)
