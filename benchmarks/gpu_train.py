"""`train-synthesizer` on the benchmark's in-memory model (part of benchmarks/synthesize_gpu.py):
step time, trained tokens/s and peak memory; saving is skipped."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any


def train_part(lora: bool, model: Any, hf_tok: Any, args: Any, work: Path) -> dict:
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


def unwrap_lora(model: Any) -> None:
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
