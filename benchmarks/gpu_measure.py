"""The measuring pieces of benchmarks/synthesize_gpu.py: the model, the documents, one synthesize
mode through our `hf` engine, and one mode run alone in its own process (`--child KEY`).

A mode in its own process is what makes a per-mode time limit real: a mode that hangs (a compile
that never ends, a continuous-batching worker thread stuck on the GPU) is killed with its whole
process group by the parent, and the next mode starts on a clean GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from instructpt.io.files import write_json

MISTRAL_7B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
                  rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=32000, max_position_embeddings=4096)  # fmt: skip
# The modes `--small` runs, each in its own process: key -> (label, engine settings).
SMALL_MODES: dict[str, tuple[str, dict[str, Any]]] = {
    "eager": ("hf budget=auto (eager)", {}),
    "static_cache": ("hf static_cache (compiled decoding)", {"static_cache": True}),
    "continuous": ("hf continuous batching", {"continuous_batching": True}),
}
WARMUP_DOCS = 16  # eager and continuous: a short warm-up (CUDA context, cuBLAS, kernels)
STATIC_NOTE = ("measured pass after a warm-up pass on the same documents, which compiles every "
               "shape; compile_seconds = warm-up pass - measured pass")  # fmt: skip
SHORT_NOTE = f"measured pass after a warm-up on {WARMUP_DOCS} documents"


class Sampler:
    """NVML GPU utilization every 50 ms in a thread (the share of time a kernel ran)."""

    def __init__(self, torch: Any, on: bool) -> None:
        self.torch, self.on, self.samples, self.stop = torch, on, [], threading.Event()

    def __enter__(self) -> Sampler:
        if self.on:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.samples.append(self.torch.cuda.utilization())
            except Exception:  # noqa: BLE001 - no NVML: no figure
                return

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    def busy(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def build(args: Any) -> tuple[Any, Any, Any]:
    """A Mistral-7B-shaped model (TINY with --tiny) with random weights, and its tokenizer."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    from common import mistral_v01_tokenizer, synthetic_documents
    from instructpt.testing import train_tokenizer

    rust = mistral_v01_tokenizer() or train_tokenizer(
        [d["text"] for d in synthetic_documents(200, 300)], 8000
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=rust, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    shape = TINY if args.tiny else MISTRAL_7B
    config = MistralConfig(**{**shape, "vocab_size": max(shape["vocab_size"], rust.get_vocab_size())},
                           bos_token_id=1, eos_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    torch.set_default_dtype(dtype)
    with torch.device(args.device):
        model = MistralForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    return model.eval(), hf_tok, rust


def documents(rust: Any, n: int, doc_tokens: int) -> list[Any]:
    from common import synthetic_documents
    from instructpt.records import Document

    calibration = synthetic_documents(20, 400, seed=1)
    per_word = sum(len(rust.encode(d["text"]).ids) for d in calibration) / (20 * 400)
    return [Document(d["id"], d["text"]) for d in synthetic_documents(n, int(doc_tokens / per_word))]


def matmul(torch: Any, tiny: bool) -> dict:
    n = 512 if tiny else 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda" if not tiny else "cpu")
    b = torch.randn_like(a)
    sync = torch.cuda.synchronize if not tiny else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    seconds = (time.perf_counter() - started) / 10
    return {"part": "matmul", "n": n, "tflops": round(2 * n**3 / seconds / 1e12, 1)}


def env_info(torch: Any, transformers: Any, device: str) -> dict:
    """Versions and the device, as the measuring process sees them."""
    info = {"torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda, "python": sys.version.split()[0], "device": "cpu"}  # fmt: skip
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=torch.cuda.get_device_name(), device_memory_gib=round(props.total_memory / 2**30, 1)
        )
    return info


def run_mode(
    name: str, settings: dict, docs: list, model: Any, hf_tok: Any, args: Any, flops: float | None
) -> dict:
    """One pass of `synthesize_batch` (2 rounds) over `docs` through our engine: speed and where time goes."""
    import torch

    from instructpt.engines.hf import HFEngine
    from instructpt.synthesis.rounds import RoundSettings, synthesize_batch
    from instructpt.tokenization import Tokenizer

    on_gpu = args.device == "cuda"
    budget = settings.get("max_batch_tokens")
    engine = HFEngine(model, Tokenizer(hf_tok), 4096, max_batch_tokens=budget, model_name="mistral-7b-shape")
    engine.ignore_eos = True
    engine.continuous_batching = settings.get("continuous_batching", False)
    engine.max_batch_size = settings.get("max_batch_size", engine.max_batch_size)
    engine.static_cache = settings.get("static_cache", False)
    clock = {"engine": 0.0, "model_generate": 0.0, "prompt_tokens": 0, "cells": 0, "real": 0}
    inner_generate, inner_model_generate = engine.generate, model.generate

    def timed_generate(requests):
        clock["prompt_tokens"] += sum(len(r.prompt_ids) for r in requests)
        started = time.perf_counter()
        try:
            return inner_generate(requests)
        finally:
            clock["engine"] += time.perf_counter() - started

    def timed_model_generate(*a, **kw):
        mask = kw.get("attention_mask")
        if mask is not None:
            clock["cells"] += mask.numel()
            clock["real"] += int(mask.sum())
        started = time.perf_counter()
        try:
            return inner_model_generate(*a, **kw)
        finally:
            if on_gpu:
                torch.cuda.synchronize()
            clock["model_generate"] += time.perf_counter() - started

    engine.generate = timed_generate
    model.generate = timed_model_generate
    settings_r = RoundSettings(rounds=2, max_new_tokens=args.gen_tokens)
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    try:
        with Sampler(torch, on_gpu) as sampler:
            started = time.perf_counter()
            result = synthesize_batch(docs, engine, settings_r)
            if on_gpu:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
    finally:
        del model.generate  # the class's method again
        engine.close()  # stops a continuous-batching manager; the model stays (it is not the engine's)
    c = result.counts
    processed = clock["prompt_tokens"] + c["generated_tokens"]
    bound = c["raw_tokens"] / (processed * 2 * model.num_parameters() / (flops * 1e12)) if flops else None
    static = not engine.continuous_batching
    return {
        "part": "synthesize", "mode": name, "documents": c["documents"], "seconds": round(seconds, 2),
        "max_batch_tokens": engine.max_batch_tokens, "max_batch_size": engine.max_batch_size,
        "raw_tokens": c["raw_tokens"], "generated_tokens": c["generated_tokens"],
        "raw_tokens_per_s": round(c["raw_tokens"] / seconds),
        "generated_tokens_per_s": round(c["generated_tokens"] / seconds),
        "documents_per_s": round(c["documents"] / seconds, 2),
        "processed_tokens_per_doc": round(processed / max(c["documents"], 1)),
        "compute_bound_raw_tokens_per_s": round(bound) if bound else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if on_gpu else None,
        "gpu_busy_pct": sampler.busy(),
        "share_model_generate_pct": round(100 * clock["model_generate"] / seconds, 1) if static else None,
        "share_engine_other_pct": round(100 * (clock["engine"] - clock["model_generate"]) / seconds, 1)
        if static else None,
        "share_outside_engine_pct": round(100 * (seconds - clock["engine"]) / seconds, 1),
        "padding_pct": round(100 * (1 - clock["real"] / clock["cells"]), 1) if clock["cells"] else None,
    }  # fmt: skip


def compiled_graphs() -> int | None:
    """How many graphs torch.compile (dynamo) has built in this process so far (None: unknown)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - a private counter: no figure rather than no run
        return None


def use_compile_backend(model: Any, backend: str, device: str) -> None:
    """Compile the static-cache decoding step with `backend` (on CPU too: transformers only
    compiles on accelerators by itself). `eager` traces with dynamo without generating code."""
    from transformers import CompileConfig

    mode = ("reduce-overhead" if device == "cuda" else "default") if backend == "inductor" else None
    config = CompileConfig(backend=backend, mode=mode)
    config._compile_all_devices = True  # transformers' own switch for compiling off-GPU
    model.generation_config.compile_config = config


class Progress:
    """The child's phase and figures so far, in a file the parent reads if it has to kill it."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {"pid": os.getpid()}

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        write_json(self.path, self.data)


def child(args: Any) -> None:
    """Run one mode of SMALL_MODES alone: build, warm up, measure; write modes/KEY.json."""
    key = args.child
    label, settings = SMALL_MODES[key]
    folder = args.out / "modes"
    progress = Progress(folder / f"{key}.progress.json")
    progress.set(phase="importing torch and transformers")
    import torch
    import transformers

    progress.set(phase="building the model")
    started = time.perf_counter()
    model, hf_tok, rust = build(args)
    progress.set(build_seconds=round(time.perf_counter() - started, 1), phase="warm-up")
    env = env_info(torch, transformers, args.device)
    vocab = rust.get_vocab_size()  # Mistral-7B-v0.1's own, else one trained here (no sentencepiece)
    env["tokenizer"] = "Mistral-7B-v0.1" if vocab == 32000 else f"BPE trained on synthetic prose ({vocab})"
    docs = documents(rust, args.small, args.doc_tokens)
    static = bool(settings.get("static_cache"))
    if static and args.compile_backend:
        use_compile_backend(model, args.compile_backend, args.device)
    started = time.perf_counter()
    if static:  # every shape the measured pass meets is compiled here
        run_mode("warm-up", settings, docs, model, hf_tok, args, None)
    else:
        run_mode("warm-up", settings, docs[:WARMUP_DOCS], model, hf_tok, args, None)
    warmup = time.perf_counter() - started
    graphs = compiled_graphs()
    progress.set(warmup_seconds=round(warmup, 2), compiled_graphs=graphs, phase="measured pass")
    row = run_mode(label, settings, docs, model, hf_tok, args, args.flops)
    after = compiled_graphs()
    row.update(mode_key=key, **env, build_seconds=progress.data["build_seconds"],
               warmup_seconds=round(warmup, 2), timing=STATIC_NOTE if static else SHORT_NOTE)  # fmt: skip
    if static:
        row.update(
            compiled_graphs=graphs,
            graphs_compiled_in_measured_pass=None if after is None or graphs is None else after - graphs,
            compile_seconds=round(max(warmup - row["seconds"], 0.0), 2),
            compile_backend=args.compile_backend
            or "transformers' default (inductor, reduce-overhead; GPU only)",
        )
    if args.device == "cuda":
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 1)
    write_json(folder / f"{key}.json", row)
    progress.set(phase="done")
    print(json.dumps(row), flush=True)
