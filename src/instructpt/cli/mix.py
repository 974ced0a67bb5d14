"""`instructpt mix`: augmented texts (+ raw or general data) -> the corpus a trainer reads."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import MixSettings
from .common import user_errors, worker_args, worker_options
from .options import settings_from_flags, settings_options

MIX_FLAGS = (
    "recipe raw general ratio question_field response_field text_field ft_data ft_repeat tokenizer bos_text "
    "eos_text".split()
)
OUTPUT_FLAGS = "format seq_len pack seed upsample workers shard_tokens".split()


@click.command()
@settings_options(
    MixSettings,
    MIX_FLAGS[:1],
    {"recipe": {"type": str, "metavar": "scratch|domain|RECIPE.json"}},
)
@click.option(
    "--augmented", multiple=True, help="Instruction-augmented texts: a templify output folder or files."
)
@settings_options(MixSettings, MIX_FLAGS[1:])
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output folder.")
@settings_options(MixSettings, OUTPUT_FLAGS)
@click.option("--overwrite", is_flag=True, help="Discard an earlier mix in the output folder.")
@click.option("--verify", is_flag=True, help="Hash all of every raw input [default: size, mtime, ends].")
@click.option("--rebuild", is_flag=True, help="Recompute a finished mix whose inputs changed.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Mix the intact shards of an unfinished or damaged templify folder, printing what is left out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print manifest.json to stdout when done.")
@worker_options
@user_errors
def mix(augmented: tuple[str, ...], output: str, overwrite: bool, verify: bool, rebuild: bool,
        allow_partial: bool, as_json: bool, executor: str, num_workers: int | None, worker_index: int,
        **values: Any) -> None:  # fmt: skip
    """Mix instruction-augmented texts with raw or general data into a pre-training corpus
    (docs/method.md §5): every text wrapped in the model's BOS/EOS as text, tokenized without special
    tokens, sampled to the recipe's token ratio, shuffled, and written with a manifest of
    documents and tokens per source and the achieved ratio.
    """
    from ..mixing.mix import run_mix
    from ..mixing.recipes import load_recipe

    recipe = values.pop("recipe")
    builtin = recipe in ("scratch", "domain")
    settings = settings_from_flags(MixSettings, {**values, "recipe": recipe if builtin else "custom"})
    if builtin:
        sources = settings.recipe_sources(list(augmented), flag=lambda key: f"--{key.replace('_', '-')}")
    else:
        from ..errors import UsageError

        sources = load_recipe(recipe)  # a misspelt built-in name or a missing file is told first
        given = {"--augmented": augmented, "--raw": values.get("raw"), "--general": values.get("general"),
                 "--ft-data": values.get("ft_data")}  # fmt: skip
        if any(given.values()):  # a recipe file names every source itself: these would be ignored
            raise UsageError(f"--recipe {recipe} is a recipe file, which names every source itself: give "
                             f"{', '.join(k for k, v in given.items() if v)} there (as sources' paths), not "
                             "on the command line")  # fmt: skip
    config = settings.mix_config(sources, output, overwrite=overwrite, verify=verify, rebuild=rebuild,
                                 allow_partial=allow_partial)  # fmt: skip
    manifest = run_mix(config, **worker_args(executor, num_workers, worker_index))
    if not manifest.get("complete"):
        click.echo(f"{output}: this worker's shards are tokenized; the mix is written when the last "
                   "worker finishes (or by `instructpt merge`)", err=True)  # fmt: skip
        return
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    parts = ", ".join(
        f"{s['name']} {s['tokens_selected']:,} tokens ({s['sampling']})" for s in manifest["sources"]
    )
    click.echo(f"{manifest['tokens_total']:,} tokens in {manifest['documents_total']:,} documents: {parts}. "
               f"Output: {output}", err=True)  # fmt: skip
