"""Any stage on a Ray cluster: a pool of actors, each holding the stage's loaded resources
(an engine on its GPU, tokenizer workers), fed shard by shard by the driver.

Why Ray Core actors rather than Ray Data: the unit of work is already the shard (written
atomically, with a completion marker), loading a model is the expensive part, and chains must
stay within a shard. The driver lists the shards once, skips done ones, keeps about two shards
in flight per actor, and when an actor dies (a node lost, a GPU error, `ray.kill`) starts a
replacement and resubmits that actor's shard, up to `max_retries` times. Any actor computes any
shard to the same bytes, so the output equals a single-process run. Works on a local Ray
started here or on an existing cluster (`RAY_ADDRESS`); the output folder must be visible to
every node.

A stage's optional hooks run as on the local executor: `stop_reason(i)` on the driver before
shard i is submitted (synthesize --target-tokens: a clean stop once the shards in flight are
done; the run is the shards before the first index it stops at, `local.run_end`, whichever
order they finished in, and up to two shards per actor computed past it stay on disk), and
`shard_finished(i, marker)` on the driver as each shard comes back (the collapse guard), after
`absorb_report` of what the actor's `shard_report` returned with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from .local import (
    Log,
    finish,
    is_done,
    record_failure,
    record_shard_count,
    run_end,
    run_shard,
    shard_done,
    stderr_log,
    stop_reason,
    write_progress_manifest,
)
from .progress import Progress, already_complete
from .stage import Stage


class ShardActor:
    """Holds one prepared copy of the stage and computes the shards it is given."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        stage.prepare()

    def describe(self) -> dict[str, Any] | None:
        what = self.stage.describe() if hasattr(self.stage, "describe") else None
        return {**what, "node": os.uname().nodename} if what is not None else None

    def run(self, index: int, work: Any) -> tuple[dict[str, Any], Any]:
        """The shard's marker, and what the stage's driver-side hooks need of it (or None)."""
        marker = run_shard(self.stage, index, work)
        report = getattr(self.stage, "shard_report", None)
        return marker, report() if report is not None else None


def execute_ray(stage: Stage, num_workers: int | None = None, gpus_per_worker: float = 0.0,
                cpus_per_worker: float = 1.0, max_retries: int = 3, progress: bool | None = None,
                log: Log = stderr_log, on_shard_done: Callable[[int, list], None] | None = None,
                ) -> dict[str, Any]:  # fmt: skip
    """Run `stage` on Ray actors; returns its result. `on_shard_done(index, actors)` is a hook
    for tests (e.g. to kill an actor mid-run)."""
    try:
        import ray
        from ray.exceptions import ActorDiedError, RayActorError
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'instructpt[ray]'") from None
    with stage.out.locked():
        if (finished := stage.finished()) is not None:
            log(f"{stage.out.root}: {stage.name} already complete, nothing to do")
            return already_complete(finished)
        actors: list[Any] = []
        started_here = not ray.is_initialized()
        if started_here:
            address = os.environ.get("RAY_ADDRESS")
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": os.cpu_count()}))  # fmt: skip
        try:
            resources = ray.cluster_resources()
            if num_workers is None:
                gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
                num_workers = (
                    int(gpus // gpus_per_worker) if gpus_per_worker else int(cpus // cpus_per_worker)
                )
            if num_workers < 1:
                raise UsageError(f"the Ray cluster has room for no worker ({resources})")
            remote = ray.remote(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker, max_restarts=0)
            actor_class = remote(ShardActor)
            actors.extend(actor_class.remote(stage) for _ in range(num_workers))
            log(f"ray: {num_workers} workers ({gpus_per_worker} GPU, {cpus_per_worker} CPU each)")
            bar = Progress(progress, total=None)
            pending = iter(stage.shards())
            inflight: dict[Any, tuple[int, Any, int, int]] = {}  # ref -> (index, work, tries, slot)
            load = [0] * num_workers
            n_shards = 0
            stop: int | None = None  # a clean stop before this shard (stop_reason)
            exhausted = False
            described = False

            def submit(index: int, work: Any, tries: int) -> None:
                slot = min(range(num_workers), key=lambda k: load[k])
                load[slot] += 1
                inflight[actors[slot].run.remote(index, work)] = (index, work, tries, slot)

            while True:
                while not exhausted and len(inflight) < 2 * num_workers:
                    try:
                        index, work = next(pending)
                    except StopIteration:
                        exhausted = True
                        break
                    n_shards = index + 1
                    if stop_reason(stage, index) is not None:
                        stop, exhausted = index, True
                        break
                    if is_done(stage, index, work):
                        bar.skipped(stage.size(work))
                    else:
                        submit(index, work, 0)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                index, work, tries, slot = inflight.pop(ready[0])
                load[slot] -= 1
                try:
                    marker, report = ray.get(ready[0])
                except (ActorDiedError, RayActorError) as exc:
                    if tries + 1 > max_retries:
                        record_failure(stage, index, exc)
                        raise RuntimeError(f"shard {index} failed {tries + 1} times; last: {exc}") from None
                    log(f"ray: worker {slot} died on shard {index}; retrying (attempt {tries + 2})")
                    actors[slot] = actor_class.remote(stage)
                    submit(index, work, tries + 1)
                    continue
                except Exception as exc:  # noqa: BLE001 - a shard that raised: recorded, then re-raised
                    record_failure(stage, index, exc)
                    raise
                if not described:
                    if (what := ray.get(actors[slot].describe.remote())) is not None:
                        stage.manifest["engine"] = what
                    described = True
                if (absorb := getattr(stage, "absorb_report", None)) is not None:
                    absorb(report)
                shard_done(stage, index, marker, bar, 1)  # may raise (the collapse guard)
                if on_shard_done is not None:
                    on_shard_done(index, actors)
            bar.close()
            stop = run_end(stage, n_shards if stop is None else stop, stop)
            record_shard_count(stage, n_shards if stop is None else stop)
            if stop is not None:
                log(f"{stage.out.root}: stopped before shard {stop} ({stop_reason(stage, stop)}); "
                    "a rerun with a larger target continues")  # fmt: skip
            return finish(stage, bar, log)
        finally:
            write_progress_manifest(stage, flush=True)  # the shards done when a stop raised
            if started_here:
                ray.shutdown()
            else:  # an existing cluster: free its resources now (a stop raised with shards in flight)
                for actor in actors:
                    ray.kill(actor)
