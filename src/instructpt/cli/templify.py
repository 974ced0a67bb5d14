"""`instructpt templify`: documents + pairs -> instruction-augmented texts (docs/method.md §4)."""

from __future__ import annotations

import json

import click

from ..templating.settings import TemplifySettings  # not ..config: the other stages stay unloaded
from .common import shard_stage_options, user_errors, worker_args, worker_options
from .options import settings_options


@click.command()
@click.argument("source", type=click.Path())
@shard_stage_options("templify", "Output folder for the texts (created). Rerunning into it resumes.")
@settings_options(TemplifySettings, ["seed", "format"])
@worker_options
@user_errors
def templify(source: str, output: str, seed: int, format: str, overwrite: bool, verify: bool,  # noqa: A002
             progress: bool | None, as_json: bool, executor: str, num_workers: int | None,
             worker_index: int) -> None:  # fmt: skip
    """Render the documents and pairs in SOURCE (an `instructpt synthesize` output folder)
    into instruction-augmented texts: Parquet/JSONL shards of {id, text, source_ids, n_shots,
    n_pairs, mode} in OUTPUT/data/, and OUTPUT/summary.json with the mix of modes and
    pattern families used.

    Linked entries of a chain become one multi-shot text; an entry without usable pairs
    becomes its raw document. Every document appears verbatim in exactly one text.
    """
    from ..templating.stage import run_templify

    summary = run_templify(source, output, seed=seed, fmt=format, overwrite=overwrite, progress=progress,
                           verify=verify, **worker_args(executor, num_workers, worker_index))  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    modes = ", ".join(f"{k} {v}" for k, v in summary["modes"].items())
    click.echo(
        f"{summary['documents']} documents -> {summary['texts']} texts ({modes}); "
        f"{summary['pairs_rendered']} pairs rendered, {sum(summary['pairs_dropped'].values())} dropped; "
        f"{summary['distinct_patterns_total']} distinct patterns. Output: {output}",
        err=True,
    )
