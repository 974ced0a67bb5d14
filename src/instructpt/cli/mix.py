"""`instructpt mix`: augmented texts (+ raw or general data) -> the corpus a trainer reads."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..config import MixSettings
from ..errors import UsageError
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
@click.option(
    "--verify",
    is_flag=True,
    help="Hash all of every raw input and of a finished mix's files [default: size, mtime, ends].",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="If an input or a setting changed since the output folder was written, start it over "
    "(default: refuse).",
)
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
        _check_augmented(augmented)
        sources = settings.recipe_sources(list(augmented), flag=lambda key: f"--{key.replace('_', '-')}")
    else:
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
    from ..io.output import folder_stage

    loose = [p for p in augmented if folder_stage(p) is None]
    texts = sum(s["documents_available"] for s in manifest["sources"] if s["name"] == "augmented")
    if loose:  # not a templify folder: say that all of it was used, unchecked
        click.echo(f"--augmented {', '.join(loose)}: not a templify output folder; all {texts:,} texts "
                   "of --augmented were mixed, with no completion markers to check them against",
                   err=True)  # fmt: skip
    click.echo(f"{manifest['tokens_total']:,} tokens in {manifest['documents_total']:,} documents: {parts}. "
               f"Output: {output}", err=True)  # fmt: skip


def _check_augmented(paths: Sequence[str]) -> None:
    """Refuse an --augmented path inside a stage's output folder (a shard of a templify folder, its
    data/ folder, a glob of its shards): mix would take a part of that run, unchecked by its
    markers, without a word. Name the folder to pass instead."""
    from ..io.output import NEXT_STEP, folder_stage

    for path in paths:
        if "://" in path:
            continue
        for parent in Path(os.path.normpath(path)).parents:
            stage = folder_stage(parent)
            if stage == "templify":
                raise UsageError(f"--augmented {path} is part of the templify output {parent}: pass "
                                 f"--augmented {parent} (mix reads every shard it finished, checked "
                                 "against their markers)")  # fmt: skip
            if stage is not None:
                raise UsageError(f"--augmented {path} is part of the {stage} output {parent}: "
                                 f"{NEXT_STEP[stage].format(dir=parent)}")  # fmt: skip
