"""`instructpt templify`: documents + pairs -> instruction-augmented texts (SPEC §4)."""

from __future__ import annotations

import json

import click

from ..output import FORMATS
from .common import user_errors


@click.command()
@click.argument("source", type=click.Path())
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder for the texts (created). Rerunning into it resumes.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Changes every text's template draws; the same seed gives the same bytes.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="parquet",
    show_default=True,
    help="Format of the text shards.",
)
@click.option("--overwrite", is_flag=True, help="Discard an earlier templify run in the output folder.")
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every finished output shard (default: trust size + mtime) and recompute damaged ones.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout when done.")
@user_errors
def templify(source: str, output: str, seed: int, fmt: str, overwrite: bool, verify: bool,
             progress: bool | None, as_json: bool) -> None:  # fmt: skip
    """Render the documents and pairs in SOURCE (an `instructpt synthesize` output folder)
    into instruction-augmented texts: Parquet/JSONL shards of {id, text, source_ids, n_shots,
    n_pairs, mode} in OUTPUT/data/, and OUTPUT/summary.json with the mix of modes and
    pattern families used.

    Linked entries of a chain become one multi-shot text; an entry without usable pairs
    becomes its raw document. Every document appears verbatim in exactly one text.
    """
    from ..templify_run import run_templify

    summary = run_templify(source, output, seed=seed, fmt=fmt, overwrite=overwrite, progress=progress,
                           verify=verify)  # fmt: skip
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
