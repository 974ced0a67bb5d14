"""The steps every stage's `run_*` function shares: open the output folder under its lock, then
run the stage here (this process or one static worker) or on Ray.

A stage's own function validates its settings (`check_worker` first), opens its folder with
`open_output`, or `open_locked` when it checks its inputs under the lock, builds its `Stage` and
hands it to `launch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import SettingsChanged, UsageError
from ..io.output import OutputDir
from .local import Log, Total, execute, lock_name, stderr_log
from .stage import Stage

EXECUTORS = ("local", "ray")


@contextmanager
def open_locked(out: OutputDir, settings: Mapping[str, Any], stage: str, overwrite: bool = False,
                rebuild: bool = False, num_workers: int = 1, worker_index: int = 0,
                lock: str | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The manifest to continue (`OutputDir.open_run`), used while holding the folder's lock (a
    static worker's own, or `lock`). With `rebuild`, a folder written under other settings is
    started afresh instead of refused (`SettingsChanged`)."""
    with out.locked(lock or lock_name(num_workers, worker_index)):
        try:
            manifest = out.open_run(settings, overwrite, stage)
        except SettingsChanged:
            if not rebuild:
                raise
            manifest = out.open_run(settings, overwrite=True, stage=stage)
        yield manifest


def open_output(out: OutputDir, settings: Mapping[str, Any], stage: str, overwrite: bool = False,
                num_workers: int = 1, worker_index: int = 0) -> dict[str, Any]:  # fmt: skip
    """`open_locked` for a stage that checks nothing more under the lock: the manifest."""
    with open_locked(
        out, settings, stage, overwrite, num_workers=num_workers, worker_index=worker_index
    ) as m:
        return m


def launch(stage: Stage, executor: str = "local", num_workers: int = 1, worker_index: int = 0,
           ray_workers: int | None = None, progress: bool | None = None,
           total: Total = None, log: Log = stderr_log) -> dict[str, Any]:  # fmt: skip
    """Run `stage`: in this process as static worker `worker_index` of `num_workers`, or on
    `ray_workers` Ray actors (default: one per CPU); returns the stage's result."""
    if executor not in EXECUTORS:
        raise UsageError(f"executor must be 'local' or 'ray', got {executor!r}")
    if executor == "ray":
        from .ray import execute_ray

        return execute_ray(stage, ray_workers, progress=progress, log=log)
    return execute(stage, num_workers, worker_index, progress, total, log)
