"""`instructpt synthesize`: raw corpus -> documents with instruction-response pairs.

Its settings are `config.SynthesizeSettings` (the `synthesize:` section of a `run` YAML): the
flags below are generated from that model's fields, defaults and help included. Engine options
come from `-O key=value` (any option of the chosen engine; `instructpt engines list` shows them)
and from the shortcut flags of the common ones (--base-url, --concurrency, ...), validated by
the engine's options model: an unknown or mistyped one is an error naming the allowed ones.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import SynthesizeSettings
from ..engines.hf import HFOptions
from ..engines.openai import OpenAIOptions
from ..engines.options import parse_assignments
from ..engines.registry import create_engine
from ..engines.vllm import VLLMOptions
from ..synthesis.stage import run_synthesis
from .common import gpus_per_worker_option, user_errors, worker_options
from .options import settings_from_flags, settings_options

STAGE_FLAGS = ["model", "tokenizer", "engine", "rounds", "max_model_len", "max_new_tokens", "shard_size",
               "text_field", "id_field", "long_docs", "max_doc_chars", "format", "keep_generations", "limit",
               "strict", "fraction", "target_tokens", "min_parse_rate"]  # fmt: skip
ENGINE_FLAGS = ["dtype", "device", "max_batch_tokens", "trust_remote_code"]
# Shortcut flags for the engine options people set most; each is also `-O name=value`.
SHORTCUTS: list[tuple[type, str, str, dict[str, Any]]] = [
    (HFOptions, "continuous_batching", "hf engine: ", {}),
    (VLLMOptions, "tensor_parallel_size", "vllm engine: ", {}),
    (VLLMOptions, "gpu_memory_utilization", "vllm engine: ", {}),
    (VLLMOptions, "quantization", "vllm engine: ", {}),
    (VLLMOptions, "max_num_seqs", "vllm engine: ", {}),
    (OpenAIOptions, "base_urls", "openai engine: ", {"decls": ["--base-url"], "metavar": "URL"}),
    (OpenAIOptions, "concurrency", "openai engine: ", {}),
    (OpenAIOptions, "prompt_format", "openai engine: ", {}),
    (OpenAIOptions, "api_key_env", "openai engine: ", {}),
    (OpenAIOptions, "request_timeout", "openai engine: ", {}),
    (OpenAIOptions, "retry_budget", "openai engine: ", {}),
    (OpenAIOptions, "connect_timeout", "openai engine: ", {}),
]
FLAG_NAMES = {"format": "--format", "engine_options": "-O"}


def _shortcut_options(fn: Any) -> Any:
    for model, name, prefix, custom in reversed(SHORTCUTS):
        fn = settings_options(model, [name], {name: custom}, unset_default=True, prefix=prefix)(fn)
    return fn


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder (created). Rerunning into it resumes an interrupted run.",
)
@settings_options(
    SynthesizeSettings,
    STAGE_FLAGS,
    {
        "model": {"help": "Synthesizer: Hub id or local folder (a tokenizer folder for --engine rules)."},
        "format": {"decls": ["--format"]},
    },
)
@click.option("--overwrite", is_flag=True, help="Discard an earlier run in the output folder.")
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every finished shard and input (default: trust size + mtime) and recompute damaged shards.",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="If an input or a setting changed since the output folder was written, start it over "
    "(default: refuse).",
)
@settings_options(SynthesizeSettings, ENGINE_FLAGS)
@click.option(
    "-O",
    "--engine-option",
    "engine_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the chosen engine, the value read as YAML (e.g. -O concurrency=8, "
    "-O base_urls=[http://h1:8000/v1,http://h2:8000/v1]); `instructpt engines list` shows each engine's.",
)
@_shortcut_options
@worker_options(ray_default="GPUs / --gpus-per-worker, else CPUs")
@gpus_per_worker_option
@click.option(
    "--max-retries",
    type=int,
    default=3,
    show_default=True,
    help="Ray: times a shard is resubmitted after its worker died.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout when done.")
@user_errors
def synthesize(
    inputs: tuple[str, ...],
    output: str,
    overwrite: bool,
    verify: bool,
    rebuild: bool,
    engine_option: tuple[str, ...],
    executor: str,
    num_workers: int | None,
    worker_index: int,
    gpus_per_worker: float,
    max_retries: int,
    progress: bool | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Write instruction-response pairs for every document of INPUT... (docs/method.md §2-§3).

    INPUT is a .jsonl (also .gz/.zst), .parquet or .txt file, a folder of them, or a
    glob. Documents are cut into shards of --shard-size; each shard runs --rounds
    rounds of synthesis and is written atomically to OUTPUT/data/, so rerunning the
    same command after a crash finishes the rest and recomputes nothing written.
    Unusable records go to OUTPUT/rejects.jsonl with their reason.
    """
    specific: dict[str, Any] = {}
    for _, name, _, _ in SHORTCUTS:
        value = values.pop(name)
        if value is not None and value != ():  # given on the command line
            specific[name] = list(value) if isinstance(value, tuple) else value
    specific.update(parse_assignments(engine_option))
    if values.get("max_doc_chars") == 0:
        values["max_doc_chars"] = None  # 0: no limit
    settings = settings_from_flags(
        SynthesizeSettings, {"inputs": inputs, **values, "engine_options": specific}, FLAG_NAMES
    )
    spec = settings.engine_spec()
    options = settings.options_for(spec, origin="engine option")
    engine_name = spec.name
    config = settings.synthesis_config(
        engine_name, output, overwrite=overwrite, verify=verify, rebuild=rebuild
    )
    if executor == "ray":
        from ..synthesis.ray import run_ray

        summary = run_ray(config, engine_name, options, num_workers=num_workers, progress=progress,
                          gpus_per_worker=gpus_per_worker, max_retries=max_retries)  # fmt: skip
    else:
        summary = run_synthesis(config, lambda: create_engine(engine_name, options), progress=progress,
                                num_workers=num_workers or 1, worker_index=worker_index)  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from ..executor.progress import this_run_text

    click.echo(
        f"{summary['documents']} documents -> {summary['entries']} entries, {summary['pairs']} pairs "
        f"({summary['pairs_per_entry']:.2f}/entry); {summary['rejected_inputs']} inputs rejected; "
        + (f"{summary['not_selected']} left raw by --fraction; " if summary.get("not_selected") else "")
        + f"{this_run_text(summary.get('this_run'))}. Output: {output}",
        err=True,
    )
