"""`instructpt status` and `instructpt merge`: how far a (distributed) synthesize run is."""

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
    """Done/total shards, documents, throughput, ETA and failed shards of the synthesize run in
    FOLDER, while it runs (any number of workers) or after."""
    from ..pipeline import synthesis_status

    info = synthesis_status(folder, verify=verify)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    total = info["shards_total"] if info["shards_total"] is not None else "?"
    eta = f"{info['eta_seconds'] / 60:.1f} min" if info["eta_seconds"] is not None else "unknown"
    state = "complete" if info["complete"] else "running or stopped"
    click.echo(f"{info['folder']}: {state}; {info['shards_done']}/{total} shards, {info['documents_done']} "
               f"documents, {info['pairs']} pairs; {info['documents_per_s']} docs/s, "
               f"{info['generated_tokens_per_s']} generated tok/s; ETA {eta}")  # fmt: skip
    for failure in info["failures"]:
        click.echo(f"failed: shard {failure['shard']}: {failure['error']}")
    for damaged in info["damaged"]:
        click.echo(f"damaged: shard {damaged['shard']}: {damaged['problem']} (a rerun recomputes it)")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@user_errors
def merge(folder: str) -> None:
    """Check that every shard of the synthesize run in FOLDER is done (after static workers) and
    write its final manifest, rejects.jsonl and summary.json. Fails, naming the missing shards,
    if some are not."""
    from ..errors import UsageError
    from ..output import OutputDir
    from ..pipeline import finalize, read_markers, shard_count

    out = OutputDir(folder)
    manifest = out.read_manifest()
    if manifest is None:
        raise UsageError(f"{folder} is not an `instructpt synthesize` output folder (no manifest.json)")
    n = shard_count(out)
    if n is None:
        raise UsageError(f"{folder}: no worker has read the whole input yet, so the shard count is unknown")
    markers = read_markers(out)
    missing = [i for i in range(n) if i not in markers]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise UsageError(f"{folder}: {len(missing)} of {n} shards missing ({shown}); rerun their workers")
    with out.locked():
        summary = finalize(out, manifest, None, lambda m: click.echo(m, err=True))
    click.echo(f"{folder}: complete, {n} shards, {summary['documents']} documents, {summary['pairs']} pairs")
