"""`instructpt status` and `instructpt merge`: how far a (distributed) run of any stage is."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import user_errors

VERIFY_HELP = ("Hash every file the run recorded (default: check size + mtime), and exit 1 when any "
               "shard or final file is damaged (plain `status` exits 0 whatever it finds).")  # fmt: skip


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--verify", is_flag=True, help=VERIFY_HELP)
@user_errors
def status(folder: str, as_json: bool, verify: bool) -> None:
    """Done/total shards, documents, throughput, ETA and failed shards of the run in FOLDER (a
    synthesize, decontaminate, templify or mix output folder), while it runs (any number of
    workers) or after. Exits 0 whatever it finds (scripts poll it while jobs run); with --verify,
    1 when a shard or final file is damaged."""
    from ..executor.status import run_status

    info = run_status(folder, verify=verify)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_status(info)
    if verify and info["damaged"]:
        sys.exit(1)  # a script asking for verification needs the verdict in the exit code


def _print_status(info: dict[str, Any]) -> None:
    """The lines of `status` without --json: state and progress, then failures and damage."""
    from ..executor.status import eta_text

    total = info["shards_total"] if info["shards_total"] is not None else "?"
    eta = eta_text(info)
    state = "complete" if info["complete"] else "running or stopped"
    if info["finished"] and not info["complete"]:
        state = "finished, then damaged"
    elif info["damaged"] and not info["complete"]:
        state += ", with damaged shards"
    line = f"{info['folder']} ({info['stage']}): {state}; {info['shards_done']}/{total} shards, "
    if info["stage"] == "synthesize":
        line += (f"{info['documents_done']} documents, {info['pairs']} pairs; {info['documents_per_s']} "
                 f"docs/s, {info['generated_tokens_per_s']} generated tok/s; ETA {eta}")  # fmt: skip
    else:
        line += f"{info['documents_done']} documents; {info['documents_per_s']} docs/s; ETA {eta}"
    click.echo(line)
    if info.get("shards_beyond"):
        click.echo(f"{info['shards_beyond']} shard(s) computed beyond the target (--target-tokens) are kept "
                   "for a larger target; they are not part of this run")  # fmt: skip
    for failure in info["failures"]:
        click.echo(f"failed: shard {failure['shard']}: {failure['error']}")
    for damaged in info["damaged"]:
        if damaged.get("final"):  # rejects.jsonl, mix's training files: no one shard's
            click.echo(f"damaged: final file {damaged['problem']} (a rerun rewrites it)")
        else:
            click.echo(f"damaged: shard {damaged['shard']}: {damaged['problem']} (a rerun recomputes it)")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@user_errors
def merge(folder: str) -> None:
    """Check that every shard of the run in FOLDER (any stage) is done, after static workers,
    and finalize it: its final manifest, combined files and summary. Fails, naming the missing
    shards, if some are not."""
    from ..executor.status import merge_folder

    stage, n, result = merge_folder(folder, lambda m: click.echo(m, err=True))
    if stage == "synthesize":
        click.echo(
            f"{folder}: complete, {n} shards, {result['documents']} documents, {result['pairs']} pairs"
        )
    elif stage == "templify":
        click.echo(
            f"{folder}: complete, {n} shards, {result['documents']} documents, {result['texts']} texts"
        )
    elif stage == "decontaminate":
        from ..quality.outcome import summary_line

        click.echo(f"{folder}: complete, {n} shards, {summary_line(result)}")
    else:
        click.echo(f"{folder}: complete, {result['tokens_total']:,} tokens in {result['documents_total']:,} "
                   "documents")  # fmt: skip
