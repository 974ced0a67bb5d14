"""`instructpt report`: a run's outputs -> one self-contained HTML page (figures, charts, samples)."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path(file_okay=False))
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (replaced atomically).",
)
@click.option(
    "--samples",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="Documents drawn at random for the sample browser (0: none).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the sample draw; the same seed, the same page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures and alerts as JSON when done.")
@user_errors
def report(paths: tuple[str, ...], output: str, samples: int, seed: int, as_json: bool) -> None:
    """Write an HTML report about the outputs in PATH...: an `instructpt run` workdir, or any
    of its synthesize, decontaminate, templify and mix output folders.

    The page has the headline figures (documents, pairs, parse rate, entries without pairs,
    duplicate instructions, tokens per source, achieved mix ratio, throughput), charts, alerts
    for figures outside their usual range, and a browser over a random sample of documents
    with their pairs and the instruction-augmented text each became. It is one file that
    opens offline: plotly.js and all data are inside it.
    """
    from ..report import write_report

    result = write_report(list(paths), output, sample_size=samples, seed=seed)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    alerts = result["alerts"]
    lines = [
        f"{output}: {len(result['charts'])} charts, {len(result['samples'])} samples, "
        f"{result['bytes'] / 1e6:.1f} MB, {len(alerts) or 'no'} alert{'' if len(alerts) == 1 else 's'}"
    ]
    lines += [f"  alert: {a['message']}" for a in alerts]
    click.echo("\n".join(lines), err=True)
