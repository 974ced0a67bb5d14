"""`instructpt trace`: where one training sequence of a mix came from."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.argument("seq_index", type=int)
@click.option(
    "--shard",
    type=int,
    default=None,
    help="Count SEQ_INDEX inside this output shard (as a trainer reading data/part-<shard> does); "
    "default: in the whole output, shards in order.",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@user_errors
def trace(folder: str, seq_index: int, shard: int | None, as_json: bool) -> None:
    """Print the documents behind training sequence SEQ_INDEX of the mix output in FOLDER: each
    piece's token offsets, document id and source, and for augmented texts the template ids
    and the synthesized pairs (read back from the templify and synthesize folders it came from).

    \b
      instructpt trace train/ 1234
      instructpt trace train/ 17 --shard 3 --json
    """
    from ..mixing.trace import format_trace, trace_sequence

    info = trace_sequence(folder, seq_index, shard)
    click.echo(json.dumps(info, indent=2, ensure_ascii=False) if as_json else format_trace(info))
