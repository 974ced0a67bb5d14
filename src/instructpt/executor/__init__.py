"""One executor for every stage: a `Stage` lists shards and computes one shard; the executor
runs them here, on static workers (`--num-workers/--worker-index`) or on Ray, skips done
ones, writes completion markers, finalizes, and reports status and progress."""

from .launch import launch, open_locked, open_output
from .local import SHARDS_IN_FLIGHT, check_worker, execute, finish, is_done, lock_name, run_shard
from .progress import Progress, throughput
from .stage import BaseStage, ShardResult, Stage

__all__ = [
    "SHARDS_IN_FLIGHT", "BaseStage", "Progress", "ShardResult", "Stage", "check_worker", "execute",
    "finish", "is_done", "launch", "lock_name", "open_locked", "open_output", "run_shard", "throughput",
]  # fmt: skip
