"""The shard loop: in this process, or as one of N static workers (`--num-workers/--worker-index`).

Every shard is: mine? (index mod N) -> done? (its marker is readable, written under these
settings, carries the stage's key and its files check out) -> compute it -> write its marker,
last. A rerun of the same command skips done shards, so a crash costs at most the shards in
flight; the run is finalized by whichever process finds every shard done.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import UsageError
from ..io.files import read_json_or_none, write_json
from ..io.integrity import check_run, marker_problem
from ..io.output import SHARDS_DIR
from .progress import Progress, already_complete
from .stage import Stage

# Shards the async scheduler keeps open at once: new shards start while old ones drain, so the
# engine always has the next chains' requests; requests in flight are bounded by the engine.
SHARDS_IN_FLIGHT = 4

Log = Callable[[str], None]
# Fault injection for the kill tests: seconds to wait between a shard's files and its marker, so
# that a SIGKILL lands mid-run (and sometimes between the two) on a fast engine.
TEST_DELAY_ENV = "INSTRUCTPT_TEST_SHARD_DELAY"


def _test_delay() -> float:
    try:
        return max(0.0, float(os.environ.get(TEST_DELAY_ENV, "0")))
    except ValueError:
        return 0.0


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr)


def lock_name(num_workers: int, worker_index: int) -> str:
    return ".lock" if num_workers == 1 else f".lock-w{worker_index}-of-{num_workers}"


def check_worker(num_workers: int, worker_index: int) -> None:
    if num_workers < 1:
        raise UsageError(f"--num-workers must be at least 1, got {num_workers}")
    if not 0 <= worker_index < num_workers:
        raise UsageError(f"--worker-index must be in 0..{num_workers - 1}, got {worker_index}")


def is_done(stage: Stage, index: int, work: Any) -> bool:
    """Whether shard `index` is finished and intact: its marker is readable, written under these
    settings for this work, and every file it records checks out (cheaply, or fully with
    verify). Anything else (a missing, damaged or unreadable piece) means: compute it again."""
    marker = read_json_or_none(stage.out.marker_file(index))
    if not isinstance(marker, dict):
        return False
    fingerprint = stage.manifest.get("fingerprint")
    if fingerprint is not None and marker.get("fingerprint", fingerprint) != fingerprint:
        return False
    if any(marker.get(k) != v for k, v in stage.key(work).items()):
        return False
    return marker_problem(stage.out.root, marker, stage.verify, index) is None


def _marker(stage: Stage, work: Any, result: Any, started: float) -> dict[str, Any]:
    # "files": {path: {bytes, sha256, rows, mtime_ns}}, what "intact" means; then what it was made from
    return {**result.extra, "files": result.files, "fingerprint": stage.manifest.get("fingerprint"),
            **stage.key(work), "counts": result.counts, "seconds": round(time.monotonic() - started, 3),
            "finished_at": round(time.time(), 3)}  # fmt: skip


def run_shard(stage: Stage, index: int, work: Any) -> dict[str, Any]:
    """Compute shard `index` and write its marker (the shard counts as done from then on)."""
    started = time.monotonic()
    marker = _marker(stage, work, stage.run(index, work), started)
    if delay := _test_delay():
        time.sleep(delay)
    write_json(stage.out.marker_file(index), marker)
    return marker


async def arun_shard(stage: Any, index: int, work: Any) -> dict[str, Any]:
    """`run_shard` through the stage's barrier-free `arun`."""
    started = time.monotonic()
    marker = _marker(stage, work, await stage.arun(index, work), started)
    if delay := _test_delay():
        import asyncio

        await asyncio.sleep(delay)
    write_json(stage.out.marker_file(index), marker)
    return marker


def record_failure(stage: Stage, index: int, exc: BaseException) -> None:
    """Leave a note for `instructpt status`; a later successful run of the shard supersedes it."""
    note = {"error": f"{type(exc).__name__}: {str(exc)[:500]}", "at": round(time.time(), 3)}
    write_json(stage.out.root / SHARDS_DIR / f"part-{index:05d}.failed.json", note)


def record_shard_count(stage: Stage, n: int) -> None:
    """Every process that listed all shards knows how many there are."""
    write_json(stage.out.root / SHARDS_DIR / "count.json", {"shards": n})


def shard_count(root: Any) -> int | None:
    from pathlib import Path

    count = read_json_or_none(Path(root) / SHARDS_DIR / "count.json")
    return count.get("shards") if isinstance(count, dict) else None


Total = int | Callable[[], int | None] | None


def execute(stage: Stage, num_workers: int = 1, worker_index: int = 0, progress: bool | None = None,
            total: Total = None, log: Log = stderr_log) -> dict[str, Any]:  # fmt: skip
    """Run every shard of `stage` that is ours and not done, then finalize; returns the result.
    `total` (documents, for the progress bar) may be a function, called only if there is work."""
    check_worker(num_workers, worker_index)
    with stage.out.locked(lock_name(num_workers, worker_index)):
        if (finished := stage.finished()) is not None:
            log(f"{stage.out.root}: {stage.name} already complete, nothing to do")
            return already_complete(finished)
        bar = Progress(progress, total=total() if callable(total) else total)
        seen = [0]  # shards listed so far
        prepared = False
        stop: int | None = None  # a clean stop before this shard: the shards before it are the run
        try:
            todo = _ours_to_do(stage, bar, num_workers, worker_index, seen)
            for index, work in todo:
                if stop_reason(stage, index) is not None:
                    stop = index
                    break
                if not prepared:
                    stage.prepare()
                    prepared = True
                    bar.restart()  # throughput excludes loading the model
                if stage.can_async():  # no barriers: hand the rest to the async scheduler
                    import asyncio  # here, not at the top: a synchronous stage starts without it

                    stop = asyncio.run(_drive_async(stage, itertools.chain([(index, work)], todo), bar,
                                                    num_workers))  # fmt: skip
                    break
                try:
                    marker = run_shard(stage, index, work)
                except Exception as exc:
                    record_failure(stage, index, exc)
                    raise
                shard_done(stage, index, marker, bar, num_workers)
        finally:
            bar.close()
            if num_workers == 1:
                write_progress_manifest(stage, flush=True)
            if prepared:
                stage.close()
        stop = run_end(stage, seen[0] if stop is None else stop, stop)
        record_shard_count(stage, seen[0] if stop is None else stop)
        if stop is not None:
            log(f"{stage.out.root}: stopped before shard {stop} ({stop_reason(stage, stop)}); "
                "a rerun with a larger target continues")  # fmt: skip
        return finish(stage, bar, log)


def stop_reason(stage: Stage, next_index: int) -> str | None:
    """A stage's reason to stop cleanly before shard `next_index` (synthesize: --target-tokens);
    the shards before it then make a complete run. Once true for some index, it is for every
    later one; the first such index depends only on the shards before it, not on timing."""
    check = getattr(stage, "stop_reason", None)
    return check(next_index) if check is not None else None


def run_end(stage: Stage, listed: int, stop: int | None) -> int | None:
    """Once every shard dispatched is done: the first of the `listed` shards a clean stop comes
    before (the finished run is the shards before it), or None (every listed shard). Shards were
    dispatched ahead while it was not known yet (async, Ray): the stop found before dispatching
    `stop` may come later than the run's end, and those past it stay on disk, done, outside the
    run (a rerun with a larger target, or none, uses them)."""
    if getattr(stage, "stop_reason", None) is None:
        return stop
    return next((i for i in range(listed) if stop_reason(stage, i) is not None), stop)


def write_progress_manifest(stage: Stage, flush: bool = False) -> None:
    """Rewrite the manifest with the shards finished so far, when due (or pending, with flush)."""
    last, cost, pending = getattr(stage, "_manifest_pace", (float("-inf"), 0.0, False))
    now = time.monotonic()
    if flush and not pending:
        return
    if not flush and now - last < max(MANIFEST_EVERY_S, cost / MANIFEST_TIME_SHARE):
        stage._manifest_pace = (last, cost, True)  # type: ignore[attr-defined]
        return
    stage.out.write_manifest(stage.manifest)
    stage._manifest_pace = (now, time.monotonic() - now, False)  # type: ignore[attr-defined]


def _ours_to_do(stage: Stage, bar: Progress, num_workers: int, worker_index: int, seen: list[int]
                ) -> Iterator[tuple[int, Any]]:  # fmt: skip
    """The shards this worker must compute: its own (index congruent to `worker_index`) and not
    done yet (those count as skipped on the bar). `seen[0]` tracks how many shards were listed."""
    for index, work in stage.shards():
        seen[0] = index + 1
        if index % num_workers != worker_index:
            continue
        if is_done(stage, index, work):
            bar.skipped(stage.size(work))
            continue
        yield index, work


# The manifest's table of finished shards is rewritten for readers (`report` of a running job) as
# shards finish; the markers are what count. Each rewrite carries every marker so far, so rewrites
# are paced: at most one per MANIFEST_EVERY_S and at most 1/20 of the time, else a run of
# thousands of shards spends hours re-encoding its manifest (the cost grows with the square).
MANIFEST_EVERY_S = 5.0
MANIFEST_TIME_SHARE = 0.05


def shard_done(stage: Stage, index: int, marker: dict[str, Any], bar: Progress, num_workers: int) -> None:
    if num_workers == 1:
        stage.manifest["shards"][str(index)] = marker
        write_progress_manifest(stage)
    bar.computed(dict(marker["counts"]))
    if (finished := getattr(stage, "shard_finished", None)) is not None:
        finished(index, marker)  # may raise (synthesize: the collapse guard); the shard stays done


async def _drive_async(stage: Any, todo: Iterator[tuple[int, Any]], bar: Progress, num_workers: int
                       ) -> int | None:  # fmt: skip
    """Run the shards of `todo` (ours, not done) concurrently through `stage.arun`; returns the
    shard a clean stop (`stop_reason`) came before, once the shards in flight are done, or None."""
    import asyncio

    pending: dict[asyncio.Task, int] = {}
    stop: int | None = None

    async def settle(wait_all: bool) -> None:
        done, _ = await asyncio.wait(pending, return_when=asyncio.ALL_COMPLETED if wait_all
                                     else asyncio.FIRST_COMPLETED)  # fmt: skip
        for task in done:
            index = pending.pop(task)
            try:
                marker = task.result()
            except Exception as exc:
                record_failure(stage, index, exc)
                for other in pending:
                    other.cancel()
                raise
            try:
                shard_done(stage, index, marker, bar, num_workers)
            except Exception:
                for other in pending:
                    other.cancel()
                raise

    try:
        for index, work in todo:
            if len(pending) >= SHARDS_IN_FLIGHT:
                await settle(wait_all=False)
            if stop_reason(stage, index) is not None:
                stop = index
                break
            pending[asyncio.create_task(arun_shard(stage, index, work))] = index
        while pending:
            await settle(wait_all=True)
    finally:
        await stage.aclose()
    return stop


def finish(stage: Stage, bar: Progress | None, log: Log) -> dict[str, Any]:
    """Finalize `stage`'s folder: when every shard is done, the stage's final files and the
    complete manifest; in any case what the stage returns (its summary)."""
    out, manifest = stage.out, stage.manifest
    check = check_run(out.root)
    good = {**check.good, **check.beyond}  # a run continued past its last stop: its manifest is the old one
    n = shard_count(out.root)
    complete = n is not None and all(i in good for i in range(n))
    markers = {i: good[i] for i in sorted(good) if n is None or i < n}
    if complete:
        manifest["shards"] = {str(i): markers[i] for i in range(n or 0)}
        manifest["shard_count"] = n
        manifest["complete"] = True
    elif n is not None:
        log(f"{out.root}: {len(markers)} of {n} shards done; the rest belong to other workers")
    result = stage.finalize(markers, complete, bar)
    if complete:
        out.write_manifest(manifest)
        stage._manifest_pace = (time.monotonic(), 0.0, False)  # type: ignore[attr-defined]
        stage.cleanup()
        out.remove_temp_files()  # a worker killed mid-write (a Ray actor, say) left its temporary file
    return result
