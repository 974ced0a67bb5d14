"""`instructpt plan CONFIG`: what a run config will cost, before a GPU is booked."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, as for `instructpt run`.")  # fmt: skip
@click.option("--sample", type=int, default=None, metavar="N",
              help="Tokenize only the first N documents and scale to the whole corpus by a cheap "
              "record count [default: read every document].")  # fmt: skip
@click.option("--tok-per-s", type=float, default=None, metavar="RATE",
              help="Synthesis throughput in raw tokens/s per GPU [default: the figures measured in "
              "BENCHMARKS.md, the paper's A100 with vLLM and our H200 with the hf engine].")  # fmt: skip
@click.option("--generated-share", type=float, default=None, metavar="F",
              help="Expected generated tokens per generation as a share of max_new_tokens "
              "[default: 0.5, an assumption; a finished run's summary has the real figure].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@user_errors
def plan(config_path: str, overrides: tuple[str, ...], sample: int | None, tok_per_s: float | None,
         generated_share: float | None, as_json: bool) -> None:  # fmt: skip
    """Count the corpus of CONFIG with the synthesizer's tokenizer and print the expected
    generations, generated tokens, training tokens after templify and mix, and GPU-hours.

    The tokenizer is synthesize.tokenizer (or synthesize.model): a local folder when offline.
    Documents too long for the context are split exactly as synthesis splits them; with
    synthesize.fraction only the documents it converts are counted (chosen by id). The mix
    totals are in tokens of mix.tokenizer (the trained model's), as `instructpt mix` counts them:
    the scratch raw share less the converted documents, mix.ft_data rendered and repeated.
    """
    from ..config import load_config
    from ..planning import DEFAULT_GENERATED_SHARE, format_plan
    from ..planning import plan as make_plan

    config = load_config(config_path, list(overrides))
    share = DEFAULT_GENERATED_SHARE if generated_share is None else generated_share
    result = make_plan(config, sample=sample, tok_per_s=tok_per_s, generated_share=share)
    click.echo(json.dumps(result, indent=2) if as_json else format_plan(result))
