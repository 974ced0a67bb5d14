"""`instructpt engines list`: which inference backends exist and which are installed."""

from __future__ import annotations

import json

import click

from ..engines.registry import engine_specs


@click.group()
def engines() -> None:
    """Inference backends (engines)."""


@engines.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_engines(as_json: bool) -> None:
    """List registered engines, whether they are installed, and what --engine auto picks."""
    rows = []
    for spec in engine_specs().values():
        missing = spec.missing()
        rows.append(
            {
                "name": spec.name,
                "installed": not missing,
                "install": f"pip install 'instructpt[{spec.extra}]'" if missing and spec.extra else "",
                "auto_priority": spec.auto_priority,
                "description": spec.description,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "installed" if row["installed"] else f"missing ({row['install']})"
        click.echo(f"{row['name']:<10} {state:<40} {row['description']}")
