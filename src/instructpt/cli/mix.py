"""`instructpt mix`: augmented texts (+ raw or general data) -> the corpus a trainer reads."""

from __future__ import annotations

import json

import click

from .common import user_errors


@click.command()
@click.option(
    "--recipe",
    default="scratch",
    show_default=True,
    help="scratch (augmented + raw, all of both), domain (augmented + general instructions at "
    "--ratio in target tokens), or a JSON recipe file with weighted sources.",
)
@click.option(
    "--augmented", multiple=True, help="Instruction-augmented texts: a templify output folder or files."
)
@click.option("--raw", multiple=True, help="scratch: the unchanged raw texts (files or folders).")
@click.option("--general", multiple=True, help="domain: general instruction data (e.g. OpenOrca parquet).")
@click.option(
    "--ratio",
    default="1:1",
    show_default=True,
    help="domain: augmented:general, counted in tokens of --tokenizer.",
)
@click.option("--question-field", default="question", show_default=True, help="General data: question field.")
@click.option("--response-field", default="response", show_default=True, help="General data: response field.")
@click.option("--text-field", default="text", show_default=True, help="Raw data: text field.")
@click.option(
    "--tokenizer", required=True, help="The trained model's tokenizer: folder, tokenizer.json or Hub id."
)
@click.option("--bos-text", default=None, help="BOS written before every text [default: the tokenizer's].")
@click.option("--eos-text", default=None, help="EOS written after every text [default: the tokenizer's].")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--format",
    "fmt",
    default="parquet",
    show_default=True,
    help="jsonl or parquet (shuffled text), hf (datasets on disk), megatron (.bin/.idx), "
    "olmo (.npy memmap + .csv.gz).",
)
@click.option("--seq-len", default=4096, show_default=True, type=int, help="Row length for --pack.")
@click.option("--pack", is_flag=True, help="hf/megatron: pack documents into rows of --seq-len tokens.")
@click.option("--seed", default=0, show_default=True, type=int, help="Sampling and shuffling seed.")
@click.option("--no-upsample", is_flag=True, help="Refuse a ratio that needs repeating a source.")
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=int,
    help="Tokenizer processes (0: one per core; 1: in-process, Rust threads).",
)
@click.option(
    "--shard-tokens", default=100_000_000, show_default=True, type=int, help="Tokens per output shard."
)
@click.option("--overwrite", is_flag=True, help="Discard an earlier mix in the output folder.")
@click.option("--verify", is_flag=True, help="Hash all of every raw input [default: size, mtime, ends].")
@click.option("--rebuild", is_flag=True, help="Recompute a finished mix whose inputs changed.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Mix the intact shards of an unfinished or damaged templify folder, printing what is left out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print manifest.json to stdout when done.")
@user_errors
def mix(recipe: str, augmented: tuple[str, ...], raw: tuple[str, ...], general: tuple[str, ...], ratio: str,
        question_field: str, response_field: str, text_field: str, tokenizer: str, bos_text: str | None,
        eos_text: str | None, output: str, fmt: str, seq_len: int, pack: bool, seed: int, no_upsample: bool,
        workers: int, shard_tokens: int, overwrite: bool, verify: bool, rebuild: bool, allow_partial: bool,
        as_json: bool) -> None:  # fmt: skip
    """Mix instruction-augmented texts with raw or general data into a pre-training corpus
    (SPEC §5): every text wrapped in the model's BOS/EOS as text, tokenized without special
    tokens, sampled to the recipe's token ratio, shuffled, and written with a manifest of
    documents and tokens per source and the achieved ratio.
    """
    from ..errors import UsageError
    from ..mix import MixConfig, domain_recipe, load_recipe, run_mix, scratch_recipe

    if recipe == "scratch":
        if not augmented or not raw:
            raise UsageError("--recipe scratch needs --augmented and --raw")
        sources = scratch_recipe(augmented, raw, text_field)
    elif recipe == "domain":
        if not augmented or not general:
            raise UsageError("--recipe domain needs --augmented and --general")
        sources = domain_recipe(augmented, general, ratio, question_field, response_field)
    else:
        sources = load_recipe(recipe)
    config = MixConfig(
        sources=sources, output=output, tokenizer=tokenizer, recipe=recipe if recipe in ("scratch", "domain")
        else "custom", format=fmt, seq_len=seq_len, pack=pack, seed=seed, upsample=not no_upsample,
        workers=workers, shard_tokens=shard_tokens, bos_text=bos_text, eos_text=eos_text, overwrite=overwrite,
        verify=verify, rebuild=rebuild, allow_partial=allow_partial,
    )  # fmt: skip
    manifest = run_mix(config)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    parts = ", ".join(
        f"{s['name']} {s['tokens_selected']:,} tokens ({s['sampling']})" for s in manifest["sources"]
    )
    click.echo(f"{manifest['tokens_total']:,} tokens in {manifest['documents_total']:,} documents: {parts}. "
               f"Output: {output}", err=True)  # fmt: skip
