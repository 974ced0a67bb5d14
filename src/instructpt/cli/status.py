"""`instructpt status` and `instructpt merge`: how far a (distributed) run of any stage is."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--verify", is_flag=True, help="Hash every shard's files (default: check size + mtime).")
@user_errors
def status(folder: str, as_json: bool, verify: bool) -> None:
    """Done/total shards, documents, throughput, ETA and failed shards of the run in FOLDER (a
    synthesize, templify or mix output folder), while it runs (any number of workers) or after."""
    from ..executor.status import eta_text, run_status

    info = run_status(folder, verify=verify)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
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
    for failure in info["failures"]:
        click.echo(f"failed: shard {failure['shard']}: {failure['error']}")
    for damaged in info["damaged"]:
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
