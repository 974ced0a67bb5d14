"""GPU throughput of the synthesize stage and of `train-synthesizer` on a Mistral-7B-shaped model.

The model is built from Mistral-7B-v0.1's config values (hidden 4096, 32 layers, 32 heads, 8 KV
heads, MLP 14336, vocab 32000) with random bf16 weights: speed depends on the shape, not on the
weights. Documents are prose of ~600 tokens; generations are forced to `--gen-tokens` (EOS
ignored) so every engine does the same work; 2 rounds, as the method prescribes (docs/method.md).
Each part appends its figures to OUT/gpu.json as soon as it ends, so a run cut short keeps them:

* `matmul`: the GPU's measured bf16 matrix rate (8192^3, mean of 10 after 3 warm-ups): the
  physical bound is that rate / (2 x parameters) FLOP per processed (prompt or generated) token.
* `hf` modes: our transformers engine through `synthesize_batch` (length-sorted static batches,
  left padding, sdpa) at the old fixed budget (65,536 tokens), the memory-derived default, a
  larger batch cap, transformers' continuous batching, and a static KV cache (compiled decoding,
  in a subprocess with its own time limit). For each: raw / generated tokens/s, documents/s,
  peak memory, the GPU's busy share (NVML utilization sampled every 50 ms) and where the wall
  time goes (inside `model.generate`, the engine's own work around it, the rounds' Python
  outside the engine: prompt building, tokenization, parsing), and the padding share.
* `train`: `train_synthesizer` (full fine-tuning and LoRA) on 4,096-token sequences: step time,
  trained tokens/s and peak memory (the in-memory model is handed to it; saving is skipped).

    python benchmarks/synthesize_gpu.py --out DIR [--deadline 480]   # on a GPU
    python benchmarks/synthesize_gpu.py --tiny --out /tmp/gpu-smoke   # CPU smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MISTRAL_7B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
                  rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=32000, max_position_embeddings=4096)  # fmt: skip
# name, engine settings, documents (GPU); the tiny run uses few documents for each
MODES = [
    ("hf budget=65536 (old default)", dict(max_batch_tokens=65536), 256),
    ("hf budget=auto (new default)", dict(), 512),
    ("hf budget=auto max_batch_size=512", dict(max_batch_size=512), 1024),
    ("hf continuous batching", dict(continuous_batching=True), 512),
]
COMPILED = ("hf static_cache (compiled decoding)", dict(static_cache=True), 256)


class Results:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path, self.data = out / "gpu.json", {"parts": []}

    def add(self, row: dict) -> None:
        print(json.dumps(row), flush=True)
        self.data["parts"].append(row)
        self.path.write_text(json.dumps(self.data, indent=1))


class Sampler:
    """NVML GPU utilization every 50 ms in a thread (the share of time a kernel ran)."""

    def __init__(self, torch, on: bool) -> None:
        self.torch, self.on, self.samples, self.stop = torch, on, [], threading.Event()

    def __enter__(self):
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

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def busy(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def build(args):
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


def documents(rust, n: int, doc_tokens: int):
    from common import synthetic_documents
    from instructpt.records import Document

    calibration = synthetic_documents(20, 400, seed=1)
    per_word = sum(len(rust.encode(d["text"]).ids) for d in calibration) / (20 * 400)
    return [Document(d["id"], d["text"]) for d in synthetic_documents(n, int(doc_tokens / per_word))]


def matmul(torch, tiny: bool) -> dict:
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


def run_mode(name, settings, n_docs, model, hf_tok, rust, args, flops_rate) -> dict:
    import torch

    from instructpt.engines.hf import HFEngine
    from instructpt.synthesis.rounds import RoundSettings, synthesize_batch
    from instructpt.tokenization import Tokenizer

    on_gpu = args.device == "cuda"
    docs = documents(rust, n_docs if not args.tiny else 8, args.doc_tokens)
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
    settings_r = RoundSettings(rounds=2, max_new_tokens=args.gen_tokens if not args.tiny else 16)
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
    c = result.counts
    processed = clock["prompt_tokens"] + c["generated_tokens"]
    bound = (
        c["raw_tokens"] / (processed * 2 * model.num_parameters() / (flops_rate * 1e12))
        if flops_rate
        else None
    )
    static = not engine.continuous_batching
    return {
        "part": "synthesize", "mode": name, "documents": c["documents"], "seconds": round(seconds, 2),
        "max_batch_tokens": engine.max_batch_tokens, "max_batch_size": engine.max_batch_size,
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


def train_part(lora: bool, model, hf_tok, rust, args, work: Path) -> dict:
    """`train_synthesizer` on the in-memory model: step times from a callback, saving skipped."""
    import torch
    import transformers

    from common import realistic_generation, synthetic_documents
    from instructpt.finetune.train import TrainConfig, train_synthesizer
    from instructpt.synthesis.format import parse_pairs

    pairs = [
        {"instruction": p.instruction, "response": p.response} for p in parse_pairs(realistic_generation())
    ]
    data = work / "ft.jsonl"
    with open(data, "w") as handle:
        for i, d in enumerate(synthetic_documents(200, 450 if not args.tiny else 40, seed=2)):
            handle.write(json.dumps({"context": d["text"], "pairs": pairs, "dataset": f"set{i % 2}"}) + "\n")
    hf_tok.save_pretrained(work / "tok")
    steps: list[float] = []

    class Timer(transformers.TrainerCallback):
        def on_step_end(self, *a, **kw):
            if args.device == "cuda":
                torch.cuda.synchronize()
            steps.append(time.perf_counter())

    original_init, original_load = (
        transformers.Trainer.__init__,
        transformers.AutoModelForCausalLM.from_pretrained,
    )
    original_save, original_checkpoint = (
        transformers.Trainer.save_model,
        transformers.Trainer._save_checkpoint,
    )

    def init(self, *a, **kw):
        original_init(self, *a, **kw)
        self.add_callback(Timer())

    transformers.Trainer.__init__ = init
    transformers.AutoModelForCausalLM.from_pretrained = lambda *a, **kw: model
    transformers.Trainer.save_model = lambda *a, **kw: None  # 14.5 GB of random weights: not written
    transformers.Trainer._save_checkpoint = lambda *a, **kw: None
    max_len = 4096 if not args.tiny else 1024
    accum = 2
    output = str(work / ("lora" if lora else "full"))
    config = TrainConfig(base=str(work / "tok"), data=str(data), output=output,
                         lora=lora, max_len=max_len, grad_accum=accum, max_steps=6 if not args.tiny else 3,
                         logging_steps=1, learning_rate=1e-5)  # fmt: skip
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        figures = train_synthesizer(config, log=lambda *_: None)
    finally:
        transformers.Trainer.__init__ = original_init
        transformers.AutoModelForCausalLM.from_pretrained = original_load
        transformers.Trainer.save_model = original_save
        transformers.Trainer._save_checkpoint = original_checkpoint
    gaps = [b - a for a, b in zip(steps, steps[1:])]  # the first step (warm-up) is left out
    step = statistics.median(gaps) if gaps else None
    tokens_per_step = accum * figures["tokens"] / max(figures["sequences"], 1)
    return {
        "part": "train", "mode": "LoRA r=16 all-linear" if lora else "full fine-tuning", "max_len": max_len,
        "grad_accum": accum, "steps_timed": len(gaps), "seconds_per_step": round(step, 2) if step else None,
        "tokens_per_s": round(tokens_per_step / step) if step else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
        if args.device == "cuda" else None,
        "last_loss": figures.get("last_loss"),
    }  # fmt: skip


def unwrap_lora(model) -> None:
    """Put the base layers back where LoRA wrapped them (peft injects in place)."""
    for name, module in list(model.named_modules()):
        if "." in name and hasattr(module, "base_layer") and hasattr(module, "lora_A"):
            parent, child = name.rsplit(".", 1)
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
    disable()
    model.eval()


class ModeTimeout(Exception):
    pass


def small(args, results: Results) -> None:
    """Eager static batches, compiled decoding and continuous batching on the same N documents."""
    import signal

    def alarm(*_):
        raise ModeTimeout(f"not done within {args.mode_timeout} s")

    signal.signal(signal.SIGALRM, alarm)
    results.path = args.out / "gpu-small.json"
    model, hf_tok, rust = build(args)
    run_mode("warm-up", dict(max_batch_tokens=65536), 16, model, hf_tok, rust, args, None)
    for name, settings in [
        ("hf budget=auto (eager)", {}),
        (COMPILED[0], COMPILED[1]),
        (MODES[3][0], MODES[3][1]),
    ]:
        signal.alarm(args.mode_timeout)
        try:
            results.add(run_mode(name, settings, args.small, model, hf_tok, rust, args, args.flops))
        except Exception as exc:  # noqa: BLE001 - a timeout or a mode this machine cannot run
            results.add({"part": "synthesize", "mode": name, "documents": args.small,
                         "error": f"{type(exc).__name__}: {str(exc)[:300]}"})  # fmt: skip
        finally:
            signal.alarm(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--doc-tokens", type=int, default=600)
    parser.add_argument("--gen-tokens", type=int, default=300)
    parser.add_argument(
        "--deadline", type=float, default=480, help="seconds: parts that would not fit are skipped"
    )
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the script runs")
    parser.add_argument("--only", choices=["compiled"], help="run one mode alone (used for the subprocess)")
    parser.add_argument("--flops", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--small", type=int, default=0, help="N documents: eager, compiled and continuous "
                        "batching side by side, each under --mode-timeout seconds")  # fmt: skip
    parser.add_argument("--mode-timeout", type=int, default=90)
    args = parser.parse_args()
    t0 = time.perf_counter()
    left = lambda: args.deadline - (time.perf_counter() - t0)  # noqa: E731

    import torch
    import transformers

    args.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    results = Results(args.out)
    if args.small:
        small(args, results)
        return
    if args.only:
        model, hf_tok, rust = build(args)
        results.path = args.out / "gpu-compiled.json"
        results.add(run_mode(*COMPILED, model, hf_tok, rust, args, args.flops))
        return
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    results.add({"part": "env", "device": gpu, "torch": torch.__version__,
                 "transformers": transformers.__version__,
                 "cuda": torch.version.cuda, "python": sys.version.split()[0]})  # fmt: skip
    rate = matmul(torch, args.tiny)
    results.add(rate)
    started = time.perf_counter()
    model, hf_tok, rust = build(args)
    results.add(
        {
            "part": "model",
            "parameters": model.num_parameters(),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    run_mode("warm-up", dict(max_batch_tokens=65536), 16, model, hf_tok, rust, args, None)
    for name, settings, n in MODES[:3]:
        if left() < 60:
            results.add({"part": "synthesize", "mode": name, "skipped": "deadline"})
            continue
        try:
            results.add(run_mode(name, settings, n, model, hf_tok, rust, args, rate["tflops"]))
        except Exception as exc:  # noqa: BLE001 - report a mode this machine cannot run, go on
            results.add(
                {"part": "synthesize", "mode": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            )
            gc.collect()
            torch.cuda.empty_cache() if args.device == "cuda" else None
    work = Path(tempfile.mkdtemp(prefix="instructpt-train-"))  # data and tokenizer for train-synthesizer
    for lora in (False, True):
        if left() < 70:
            results.add({"part": "train", "lora": lora, "skipped": "deadline"})
            continue
        try:
            results.add(train_part(lora, model, hf_tok, rust, args, work))
        except Exception as exc:  # noqa: BLE001
            results.add({"part": "train", "lora": lora, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        gc.collect()
        torch.cuda.empty_cache() if args.device == "cuda" else None
    unwrap_lora(model)
    name, settings, n = MODES[3]
    if left() > 60:
        try:
            results.add(run_mode(name, settings, n, model, hf_tok, rust, args, rate["tflops"]))
        except Exception as exc:  # noqa: BLE001
            results.add(
                {"part": "synthesize", "mode": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            )
    del model
    gc.collect()
    torch.cuda.empty_cache() if args.device == "cuda" else None
    budget = int(left())
    if budget < 90:
        results.add({"part": "synthesize", "mode": COMPILED[0], "skipped": "deadline"})
        return
    command = [sys.executable, __file__, "--only", "compiled", "--out", str(args.out),
               "--flops", str(rate["tflops"]), "--doc-tokens", str(args.doc_tokens),
               "--gen-tokens", str(args.gen_tokens)] + (["--tiny"] if args.tiny else [])  # fmt: skip
    try:
        done = subprocess.run(command, timeout=budget, capture_output=True, text=True)
        tail = (done.stdout + done.stderr)[-600:]
        results.add(
            {"part": "synthesize", "mode": COMPILED[0], "subprocess_rc": done.returncode, "tail": tail}
        )
    except subprocess.TimeoutExpired:
        results.add(
            {"part": "synthesize", "mode": COMPILED[0], "error": f"not done within {budget} s (compiling)"}
        )


if __name__ == "__main__":
    main()
