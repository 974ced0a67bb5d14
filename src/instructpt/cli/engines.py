"""`instructpt engines list`: which inference backends exist, which are installed, and the
options each takes (`-O key=value`, `synthesize.engine_options:` in a run config)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..engines.options import describe_options
from ..engines.registry import registry
from ..errors import UsageError


def auto_pick() -> tuple[str | None, str]:
    """(the engine `--engine auto` picks on this machine, or None; a line saying so and why)."""
    try:
        picked = registry().resolve("auto")
    except UsageError as exc:
        return None, f"--engine auto picks nothing on this machine: {exc}"
    specs = registry().specs()
    floor = specs[picked].auto_priority or 0
    better = [s.name for s in specs.values() if s.auto_priority is not None and s.auto_priority > floor]
    why = f" ({', '.join(better)}, ranked higher, not installed)" if better else ""
    return picked, f"--engine auto picks {picked} on this machine{why}"


def engine_rows() -> list[dict[str, Any]]:
    picked, _ = auto_pick()
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
                "auto_pick": spec.name == picked,  # what --engine auto picks on this machine
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
        auto += " (what --engine auto picks here)" if row["auto_pick"] else ""
        click.echo(f"{row['name']:<10} {state}{auto}: {row['description']}")
        if isinstance(row["options"], str):
            click.echo(f"    {row['options']}")
        for opt in row["options"] if isinstance(row["options"], list) else []:
            click.echo(
                f"    -O {opt['name']}=...  ({opt['type']}, default {opt['default']!r})  {opt['help']}"
            )
    click.echo(f"\n{auto_pick()[1]}.")
    click.echo(
        "Every engine also takes the common settings: --model, --tokenizer, --max-model-len, --dtype, "
        "--device, --max-batch-tokens, --trust-remote-code (synthesize.<name> in a run config)."
    )
