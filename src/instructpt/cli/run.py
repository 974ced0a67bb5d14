"""`instructpt run CONFIG`: the whole pipeline from one YAML file."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set synthesize.rounds=3 --set mix.format=megatron.",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Recompute the synthesize stage when its settings changed (discards its output).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every finished shard and input (default: trust size + mtime); damaged shards are recomputed.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: on a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print every stage's summary as JSON when done.")
@user_errors
def run(config_path: str, overrides: tuple[str, ...], rebuild: bool, verify: bool, progress: bool | None,
        as_json: bool) -> None:  # fmt: skip
    """Run synthesize -> templify -> mix as configured in CONFIG (YAML; see examples/*.yaml).

    Each stage writes under the config's workdir (synthesized/, augmented/, train/) and is
    skipped when complete and consistent with the config, resumed when partial. Rerun the
    same command after a crash.
    """
    from ..config import load_config
    from ..workflow import run_pipeline

    config = load_config(config_path, list(overrides))
    results = run_pipeline(config, rebuild=rebuild, progress=progress, verify=verify)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
        return
    work = config.workdir
    syn, tem = results["synthesize"], results["templify"]
    lines = [
        f"synthesize: {syn['documents']} documents, {syn['pairs']} pairs -> {work}/synthesized",
        f"templify:   {tem['texts']} texts from {tem['documents']} documents -> {work}/augmented",
    ]
    if "mix" in results:
        mix = results["mix"]
        lines.append(f"mix:        {mix['tokens_total']:,} tokens in {mix['documents_total']:,} documents "
                     f"({mix['format']}) -> {work}/train")  # fmt: skip
    click.echo("\n".join(lines), err=True)
