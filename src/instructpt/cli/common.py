"""Shared CLI plumbing: user errors become one line and a non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import UsageError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted: finished shards are kept; rerun the same command to resume", err=True)
            sys.exit(130)
        except Exception:
            click.echo(
                "instructpt stopped on an error (traceback below); finished shards are kept, "
                "rerun the same command to resume",
                err=True,
            )
            raise

    return wrapper


def worker_options(fn: Callable[..., Any] | None = None, *, ray_default: str = "CPUs") -> Any:
    """--executor, --num-workers, --worker-index: where a stage's shards run (see executor/).
    `@worker_options`, or `@worker_options(ray_default=...)` to say how many Ray actors run by
    default."""
    if fn is None:
        return functools.partial(worker_options, ray_default=ray_default)
    fn = click.option(
        "--worker-index",
        type=int,
        default=0,
        show_default=True,
        help="Static sharding: this worker's index, 0..num-workers-1 (e.g. $SLURM_ARRAY_TASK_ID).",
    )(fn)
    fn = click.option(
        "--num-workers",
        type=int,
        default=None,
        help="Static sharding: how many workers split the shards (Slurm arrays, indexed jobs; the "
        "last to finish, or `instructpt merge`, finalizes); with --executor ray: how many actors "
        f"[default: {ray_default}].",
    )(fn)
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="local: this process (or one static worker, see --num-workers); ray: actors on a Ray "
        "cluster (RAY_ADDRESS, or a local one started here).",
    )(fn)


def shard_stage_options(stage: str, output_help: str) -> Callable[[Callable[..., Any]], Any]:
    """-o/--output, --overwrite, --verify, --progress, --json of a stage that reads one finished
    folder and writes shards (templify, decontaminate)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        options = [
            click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help=output_help),
            click.option("--overwrite", is_flag=True, help=f"Discard an earlier {stage} run in the output."),
            click.option("--verify", is_flag=True, help="Hash every finished output shard (default: trust "
                         "size + mtime) and recompute damaged ones."),
            click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a tty]."),
            click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout when done."),
        ]  # fmt: skip
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


# Ray: the GPUs each synthesize actor holds (synthesize, run).
gpus_per_worker_option = click.option(
    "--gpus-per-worker",
    type=float,
    default=0.0,
    show_default=True,
    help="Ray: GPUs per actor (1 for a 7B model on one GPU; with tensor parallelism, more).",
)


def worker_args(executor: str, num_workers: int | None, worker_index: int) -> dict[str, Any]:
    """The keyword arguments of run_templify / run_mix for the worker options."""
    if executor == "ray":
        return {"executor": "ray", "ray_workers": num_workers}
    return {"num_workers": num_workers or 1, "worker_index": worker_index}
