"""`instructpt synthesize`: raw corpus -> documents with instruction-response pairs."""

from __future__ import annotations

import json

import click

from ..engines.registry import DEFAULT_MODEL, EngineOptions, create_engine, engine_specs, resolve_engine_name
from ..errors import MissingExtraError
from ..output import FORMATS
from ..pipeline import DEFAULT_MAX_DOC_CHARS, SynthesisConfig, run_synthesis
from ..rounds import LONG_DOC_MODES, RoundSettings
from .common import user_errors


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder (created). Rerunning into it resumes an interrupted run.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Synthesizer: Hub id or local folder (a tokenizer folder for --engine rules).",
)
@click.option("--tokenizer", default=None, help="Tokenizer for length budgets [default: the model's].")
@click.option(
    "--engine",
    default="auto",
    show_default=True,
    help="Inference backend: auto (best installed), hf, rules, or a plug-in; see `instructpt engines list`.",
)
@click.option(
    "--rounds",
    default=2,
    show_default=True,
    type=int,
    help="M: documents per chain. 2 for pre-training from scratch, 3 for domain adaptation.",
)
@click.option(
    "--max-model-len",
    default=4096,
    show_default=True,
    type=int,
    help="Context window: prompt + generated tokens never exceed it.",
)
@click.option(
    "--max-new-tokens",
    default=400,
    show_default=True,
    type=int,
    help="Most tokens generated per document (greedy decoding).",
)
@click.option(
    "--shard-size",
    default=1000,
    show_default=True,
    type=int,
    help="K: documents per shard, the unit of chaining, writing and resumption.",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL/Parquet field with the text.")
@click.option(
    "--id-field",
    default="id",
    show_default=True,
    help="Field with the document id; missing ids become a hash of the text.",
)
@click.option(
    "--long-docs",
    type=click.Choice(LONG_DOC_MODES),
    default="split",
    show_default=True,
    help="Documents too long for the context: split at paragraph/sentence boundaries, "
    "truncate, or skip (written to rejects.jsonl).",
)
@click.option(
    "--max-doc-chars",
    type=int,
    default=DEFAULT_MAX_DOC_CHARS,
    show_default=True,
    help="Reject records whose text has more characters than this (reason too_many_chars); 0: no limit.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="parquet",
    show_default=True,
    help="Format of the data shards.",
)
@click.option("--keep-generations", is_flag=True, help="Also store each raw generation.")
@click.option("--limit", type=int, default=None, help="Stop after this many documents.")
@click.option("--strict", is_flag=True, help="Fail on the first bad input record instead of skipping it.")
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
@click.option(
    "--dtype",
    default="auto",
    show_default=True,
    help="hf engine weights: auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, fp32.",
)
@click.option(
    "--device", default="auto", show_default=True, help="hf engine device: auto, cpu, cuda, cuda:1..."
)
@click.option(
    "--max-batch-tokens",
    type=int,
    default=None,
    help="hf engine: most prompt+generated tokens per batch [default: 65536 GPU, 16384 CPU].",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folder.")
@click.option(
    "--continuous-batching",
    is_flag=True,
    help="hf engine: transformers' continuous batching (paged attention) instead of static batches.",
)
@click.option(
    "--tensor-parallel-size",
    type=int,
    default=1,
    show_default=True,
    help="vllm engine: GPUs one model is split across.",
)
@click.option(
    "--gpu-memory-utilization",
    type=float,
    default=0.9,
    show_default=True,
    help="vllm engine: share of GPU memory for weights and KV cache.",
)
@click.option("--quantization", default=None, help="vllm engine: e.g. fp8, awq, gptq.")
@click.option(
    "--max-num-seqs",
    type=int,
    default=256,
    show_default=True,
    help="vllm engine: most sequences batched at once.",
)
@click.option(
    "--base-url",
    "base_urls",
    multiple=True,
    help="openai engine: an OpenAI-compatible server, e.g. http://localhost:8000/v1; repeat the "
    "option to spread requests over several (failing ones are retried elsewhere).",
)
@click.option(
    "--concurrency",
    type=int,
    default=64,
    show_default=True,
    help="openai engine: requests in flight per server.",
)
@click.option(
    "--prompt-format",
    type=click.Choice(["ids", "text"]),
    default="ids",
    show_default=True,
    help="openai engine: send prompts as token ids (one BOS guaranteed) or as text with "
    "add_special_tokens=false.",
)
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="openai engine: environment variable holding the API key (never logged).",
)
@click.option(
    "--request-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="openai engine: seconds one request may take before it is retried (raise it for slow "
    "or queueing servers).",
)
@click.option(
    "--retry-budget",
    type=float,
    default=90.0,
    show_default=True,
    help="openai engine: seconds a request may keep failing (errors, timeouts, malformed answers) "
    "before the run stops; no retry starts after it.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process (or one static worker, see --num-workers); ray: actors on a Ray "
    "cluster (RAY_ADDRESS, or a local one started here).",
)
@click.option(
    "--num-workers",
    type=int,
    default=None,
    help="Static sharding: how many workers split the shards (Slurm arrays, indexed jobs); with "
    "--executor ray: how many actors [default: GPUs / --gpus-per-worker, else CPUs].",
)
@click.option(
    "--worker-index",
    type=int,
    default=0,
    show_default=True,
    help="Static sharding: this worker's index, 0..num-workers-1 (e.g. $SLURM_ARRAY_TASK_ID).",
)
@click.option(
    "--gpus-per-worker",
    type=float,
    default=0.0,
    show_default=True,
    help="Ray: GPUs per actor (1 for a 7B model on one GPU; with tensor parallelism, more).",
)
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
    model: str,
    tokenizer: str | None,
    engine: str,
    rounds: int,
    max_model_len: int,
    max_new_tokens: int,
    shard_size: int,
    text_field: str,
    id_field: str,
    long_docs: str,
    max_doc_chars: int,
    fmt: str,
    keep_generations: bool,
    limit: int | None,
    strict: bool,
    overwrite: bool,
    verify: bool,
    rebuild: bool,
    dtype: str,
    device: str,
    max_batch_tokens: int | None,
    trust_remote_code: bool,
    continuous_batching: bool,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    quantization: str | None,
    max_num_seqs: int,
    base_urls: tuple[str, ...],
    concurrency: int,
    prompt_format: str,
    api_key_env: str,
    request_timeout: float,
    retry_budget: float,
    executor: str,
    num_workers: int | None,
    worker_index: int,
    gpus_per_worker: float,
    max_retries: int,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Write instruction-response pairs for every document of INPUT... (SPEC §2-§3).

    INPUT is a .jsonl (also .gz/.zst), .parquet or .txt file, a folder of them, or a
    glob. Documents are cut into shards of --shard-size; each shard runs --rounds
    rounds of synthesis and is written atomically to OUTPUT/data/, so rerunning the
    same command after a crash finishes the rest and recomputes nothing written.
    Unusable records go to OUTPUT/rejects.jsonl with their reason.
    """
    engine_name = resolve_engine_name(engine)
    spec = engine_specs()[engine_name]
    if missing := spec.missing():
        raise MissingExtraError(f"the {engine_name} engine", spec.extra or engine_name, missing[0])
    config = SynthesisConfig(
        inputs=list(inputs),
        output=output,
        model=model,
        engine=engine_name,
        tokenizer=tokenizer,
        text_field=text_field,
        id_field=id_field,
        shard_size=shard_size,
        limit=limit,
        format=fmt,
        rounds=RoundSettings(rounds, max_new_tokens, long_docs, keep_generations),
        max_model_len=max_model_len,
        strict=strict,
        max_doc_chars=max_doc_chars or None,
        overwrite=overwrite,
        verify=verify,
        rebuild=rebuild,
    )
    options = EngineOptions(
        model=model,
        tokenizer=tokenizer,
        max_model_len=max_model_len,
        dtype=dtype,
        device=device,
        max_batch_tokens=max_batch_tokens,
        trust_remote_code=trust_remote_code,
        extra={
            "continuous_batching": continuous_batching,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "quantization": quantization,
            "max_num_seqs": max_num_seqs,
            "base_urls": list(base_urls),
            "concurrency": concurrency,
            "prompt_format": prompt_format,
            "api_key_env": api_key_env,
            "request_timeout": request_timeout,
            "retry_budget": retry_budget,
        },
    )
    if executor == "ray":
        from ..ray_executor import run_ray

        summary = run_ray(config, engine_name, options, num_workers=num_workers, progress=progress,
                          gpus_per_worker=gpus_per_worker, max_retries=max_retries)  # fmt: skip
    else:
        summary = run_synthesis(config, lambda: create_engine(engine_name, options), progress=progress,
                                num_workers=num_workers or 1, worker_index=worker_index)  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rate = summary.get("this_run") or {
        "documents_per_s": 0,
        "raw_tokens_per_s": 0,
        "generated_tokens_per_s": 0,
    }
    click.echo(
        f"{summary['documents']} documents -> {summary['entries']} entries, {summary['pairs']} pairs "
        f"({summary['pairs_per_entry']:.2f}/entry); {summary['rejected_inputs']} inputs rejected; "
        f"this run: {rate['documents_per_s']:.1f} docs/s, {rate['raw_tokens_per_s']:.0f} raw tok/s, "
        f"{rate['generated_tokens_per_s']:.0f} generated tok/s. Output: {output}",
        err=True,
    )
