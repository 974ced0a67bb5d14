"""Synthesis on a Ray cluster: one actor per GPU holding the engine, shards as tasks.

Why Ray Core actors rather than Ray Data: the unit of work is already the shard (written
atomically, with a completion marker), loading a 7B model is the expensive part, and chains
must stay within a shard; a pool of long-lived actors, each keeping its engine loaded, fed
shard by shard by the driver, is the simplest thing that fits. The driver reads the input
once, skips shards whose marker exists, keeps about two shards in flight per actor, and
when an actor dies (a node lost, a GPU error, `ray.kill`) starts a replacement and
resubmits that actor's shard, up to `max_retries` times. Any actor computes any shard to the
same bytes, so the output equals a single-process run. Works on a local Ray started here or
on an existing cluster (`RAY_ADDRESS`); the output folder must be visible to every node.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .engines.registry import EngineOptions, create_engine
from .errors import UsageError
from .output import OutputDir
from .pipeline import Progress, ShardRunner, SynthesisConfig, _finished, finalize, open_synthesis


class ShardActor:
    """Holds one engine and computes the shards it is given."""

    def __init__(self, config: SynthesisConfig, engine_name: str, options: EngineOptions,
                 fingerprint: str | None = None) -> None:  # fmt: skip
        self.runner = ShardRunner(config, OutputDir(config.output, config.format), fingerprint)
        self.engine = create_engine(engine_name, options)

    def describe(self) -> dict[str, Any]:
        return {**self.engine.describe(), "node": os.uname().nodename}

    def run(self, index: int, docs: list, rejects: list) -> dict[str, Any]:
        return self.runner.run(index, docs, rejects, self.engine)


def run_ray(
    config: SynthesisConfig,
    engine_name: str,
    options: EngineOptions,
    num_workers: int | None = None,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    max_retries: int = 3,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    on_shard_done: Callable[[int, list], None] | None = None,
) -> dict[str, Any]:
    """Run `config` on Ray actors; returns the summary. `on_shard_done(index, actors)` is a
    hook for tests (e.g. to kill an actor mid-run)."""
    try:
        import ray
        from ray.exceptions import ActorDiedError, RayActorError
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'instructpt[ray]'") from None
    files, out, manifest = open_synthesis(config)
    with out.locked():
        if (finished := _finished(out, manifest, config.verify)) is not None:
            log(f"{out.root}: run already complete, nothing to do")
            return finished
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
            actor_class = ray.remote(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker, max_restarts=0)(
                ShardActor
            )

            def new_actor() -> Any:
                return actor_class.remote(config, engine_name, options, manifest["fingerprint"])

            actors = [new_actor() for _ in range(num_workers)]
            log(f"ray: {num_workers} workers ({gpus_per_worker} GPU, {cpus_per_worker} CPU each)")
            runner = ShardRunner(config, out, manifest["fingerprint"])
            bar = Progress(progress, total=None)
            pending = iter(runner.shards(files))
            inflight: dict[
                Any, tuple[int, list, list, int, int]
            ] = {}  # ref -> (index, docs, rejects, tries, slot)
            load = [0] * num_workers
            n_shards = 0
            exhausted = False
            engine_recorded = False

            def submit(index: int, docs: list, rejects: list, tries: int) -> None:
                slot = min(range(num_workers), key=lambda k: load[k])
                load[slot] += 1
                inflight[actors[slot].run.remote(index, docs, rejects)] = (index, docs, rejects, tries, slot)

            while True:
                while not exhausted and len(inflight) < 2 * num_workers:
                    try:
                        index, docs, rejects = next(pending)
                    except StopIteration:
                        exhausted = True
                        break
                    n_shards = index + 1
                    if runner.done(index):
                        bar.skipped(len(docs))
                    else:
                        submit(index, docs, rejects, 0)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                index, docs, rejects, tries, slot = inflight.pop(ref)
                load[slot] -= 1
                try:
                    marker = ray.get(ref)
                except (ActorDiedError, RayActorError) as exc:
                    if tries + 1 > max_retries:
                        runner.record_failure(index, exc)
                        raise RuntimeError(f"shard {index} failed {tries + 1} times; last: {exc}") from None
                    log(f"ray: worker {slot} died on shard {index}; retrying (attempt {tries + 2})")
                    actors[slot] = new_actor()
                    submit(index, docs, rejects, tries + 1)
                    continue
                except Exception as exc:  # noqa: BLE001 - a shard that raised: recorded, then re-raised
                    runner.record_failure(index, exc)
                    raise
                if not engine_recorded:
                    manifest["engine"] = ray.get(actors[slot].describe.remote())
                    engine_recorded = True
                manifest["shards"][str(index)] = marker
                out.write_manifest(manifest)
                from .records import Counts

                bar.computed(Counts(dict(marker["counts"])))
                if on_shard_done is not None:
                    on_shard_done(index, actors)
            bar.close()
            runner.record_shard_count(n_shards)
            return finalize(out, manifest, bar, log)
        finally:
            if started_here:
                ray.shutdown()
