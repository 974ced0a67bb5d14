"""Synthesis on a Ray cluster: one actor per GPU holding the engine, shards as tasks.

The actor pool lives in `executor.ray` and runs any stage; this module keeps the synthesize
entry point (`instructpt synthesize --executor ray`)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ..engines.registry import EngineOptions, create_engine
from ..executor.ray import ShardActor, execute_ray
from .stage import SynthesisConfig, open_stage

__all__ = ["ShardActor", "run_ray"]


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
    """Run `config` on Ray actors, each loading the engine once; returns the summary.
    `on_shard_done(index, actors)` is a hook for tests (e.g. to kill an actor mid-run). The
    collapse guard and `--target-tokens` run on the driver, as shards come back (executor/ray.py)."""
    stage = open_stage(config, functools.partial(create_engine, engine_name, options))
    return execute_ray(stage, num_workers, gpus_per_worker, cpus_per_worker, max_retries, progress, log,
                       on_shard_done)  # fmt: skip
