"""`instructpt engines list`: which inference backends exist, which are installed, and the
options each takes (`-O key=value`, `synthesize.engine_options:` in a run config)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..engines.options import describe_options
from ..engines.registry import registry


def engine_rows() -> list[dict[str, Any]]:
    rows = []
    for spec in registry().specs().values():
        missing = spec.missing()
        try:
            options: list[dict[str, Any]] | str = describe_options(spec.options_model())
        except Exception as exc:  # noqa: BLE001 - a broken plug-in still gets listed
            options = f"cannot load its options: {type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": spec.name,
                "installed": not missing,
                "install": f"pip install 'instructpt[{spec.extra}]'" if missing and spec.extra else "",
                "auto_priority": spec.auto_priority,
                "description": spec.description,
                "options": options,
            }
        )
    return rows


@click.group(invoke_without_command=True)
@click.pass_context
def engines(ctx: click.Context) -> None:
    """Inference backends (engines) and their options."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_engines)


@engines.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_engines(as_json: bool = False) -> None:
    """List registered engines, whether they are installed, what --engine auto picks, and each
    engine's options with their defaults (set them with -O key=value or synthesize.engine_options)."""
    rows = engine_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        state = "installed" if row["installed"] else f"missing ({row['install']})"
        auto = f", auto priority {row['auto_priority']}" if row["auto_priority"] is not None else ""
        click.echo(f"{row['name']:<10} {state}{auto}: {row['description']}")
        if isinstance(row["options"], str):
            click.echo(f"    {row['options']}")
        for opt in row["options"] if isinstance(row["options"], list) else []:
            click.echo(
                f"    -O {opt['name']}=...  ({opt['type']}, default {opt['default']!r})  {opt['help']}"
            )
    click.echo(
        "\nEvery engine also takes the common settings: --model, --tokenizer, --max-model-len, --dtype, "
        "--device, --max-batch-tokens, --trust-remote-code (synthesize.<name> in a run config)."
    )
