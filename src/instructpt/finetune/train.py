"""Training a synthesizer: few-shot sequences in the wire format, loss on pairs only.

Sequences (docs/method.md §6): records of one dataset, in a seeded order, are serialized as finished
examples (`<s> <CON> context </CON>\\n\\n` + pairs joined by "\\n\\n" + `</s>`) and concatenated
until the next would pass `max_len` tokens, the way the synthesizer is prompted with earlier
examples at inference. A record longer than `max_len` alone is skipped (counted).

Labels: the whole sequence is tokenized once, without adding special tokens, with character
offsets; a token is trained on (label = its id) iff it starts inside a pairs span or is the
`</s>` that closes an example; every other token (the reading material, the BOS) gets -100.
Tokens are whatever the tokenizer makes of the full text, so training sees the ids that
inference prompts contain. A token that straddles the boundary (possible only in a
vocabulary that merges "\n\n" with "<QUE"; Mistral's byte-level newlines never merge) starts
in the reading material and is therefore not trained on. This part imports no torch; `train_synthesizer` does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import make_folder
from ..synthesis.format import EOS, reading_material, serialize_pairs
from .data import FtRecord

IGNORE = -100


@dataclass
class TrainSequence:
    input_ids: list[int]
    labels: list[int]
    n_examples: int


@dataclass
class SequenceStats:
    sequences: int = 0
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def encode_with_labels(
    text: str, spans: Sequence[tuple[int, int]], tokenizer: Any
) -> tuple[list[int], list[int]]:
    """Token ids of `text` and labels that keep only tokens starting inside `spans`."""
    rust = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not hasattr(rust, "encode") or not hasattr(rust, "to_str"):
        raise UsageError("training needs a fast (Hugging Face `tokenizers`-based) tokenizer")
    encoding = rust.encode(text, add_special_tokens=False)
    labels = []
    span_index = 0
    for token_id, (start, end) in zip(encoding.ids, encoding.offsets):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        inside = (
            span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1] and end > start
        )
        labels.append(token_id if inside else IGNORE)
    return list(encoding.ids), labels


def example_text(record: FtRecord) -> tuple[str, tuple[int, int]]:
    """A record as a finished example, and the character span trained on (pairs + `</s>`)."""
    head = reading_material(record.context)
    body = serialize_pairs(record.pairs) + EOS
    return head + body, (len(head), len(head) + len(body))


def build_sequences(records: Sequence[FtRecord], tokenizer: Any, max_len: int, seed: int = 0,
                    stats: SequenceStats | None = None) -> list[TrainSequence]:  # fmt: skip
    """Few-shot training sequences of up to `max_len` tokens (see the module docstring)."""
    stats = stats if stats is not None else SequenceStats()
    by_dataset: dict[str, list[FtRecord]] = {}
    for record in records:
        if record.pairs:
            by_dataset.setdefault(record.dataset, []).append(record)
        else:
            stats.skipped["no_pairs"] += 1
    rng = random.Random(seed)
    sequences: list[TrainSequence] = []
    rust = getattr(tokenizer, "backend_tokenizer", tokenizer)

    def flush(texts: list[str], spans: list[tuple[int, int]]) -> None:
        ids, labels = encode_with_labels("".join(texts), spans, tokenizer)
        sequences.append(TrainSequence(ids, labels, len(texts)))
        stats.sequences += 1
        stats.examples += len(texts)
        stats.tokens += len(ids)
        stats.trained_tokens += sum(label != IGNORE for label in labels)

    for dataset in sorted(by_dataset):
        group = by_dataset[dataset][:]
        rng.shuffle(group)
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        length = offset = 0
        for record in group:
            text, (start, end) = example_text(record)
            # Examples are whole segments between <s>/</s>, so their lengths add up exactly.
            n = len(rust.encode(text, add_special_tokens=False).ids)
            if n > max_len:
                stats.skipped["longer_than_max_len"] += 1
                continue
            if length + n > max_len and texts:
                flush(texts, spans)
                texts, spans, length, offset = [], [], 0, 0
            texts.append(text)
            spans.append((offset + start, offset + end))
            offset += len(text)
            length += n
        if texts:
            flush(texts, spans)
    return sequences


@dataclass
class TrainConfig:
    base: str
    data: str
    output: str
    lora: bool = False
    merge: bool = False
    max_len: int = 4096
    epochs: float = 1.0
    learning_rate: float = 1e-5
    batch_size: int = 1
    grad_accum: int = 8
    seed: int = 0
    gradient_checkpointing: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    max_steps: int = -1
    logging_steps: int = 10
    save_steps: int = 500
    dtype: str = "auto"


def check_config(config: TrainConfig) -> None:
    """A bad number or output folder is one UsageError, before any model loads."""
    at_least_1 = {"--max-len": config.max_len, "--batch-size": config.batch_size,
                  "--grad-accum": config.grad_accum, "lora_r": config.lora_r}  # fmt: skip
    for flag, value in at_least_1.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if config.max_steps == 0 or config.max_steps < -1:
        raise UsageError(f"--max-steps must be at least 1 (or -1: train --epochs), got {config.max_steps}")
    if config.max_steps == -1 and not config.epochs > 0:
        raise UsageError(f"--epochs must be greater than 0, got {config.epochs}")
    if not config.learning_rate > 0:
        raise UsageError(f"--lr must be greater than 0, got {config.learning_rate}")
    out = Path(config.output)
    if out.exists() and Path(config.base).exists() and out.resolve() == Path(config.base).resolve():
        raise UsageError(f"--output {config.output} is the base model's folder; choose a new folder")
    if out.is_dir() and any(out.iterdir()) and not any(out.glob("checkpoint-*")):
        raise UsageError(f"--output {config.output} already holds files and no checkpoint-* to resume from; "
                         "choose a new or empty folder")  # fmt: skip
    make_folder(out)  # a file in the way is refused now, not after loading the model


def train_synthesizer(config: TrainConfig, log: Any = print) -> dict[str, Any]:
    """Fine-tune `config.base` on the records in `config.data`; returns training figures."""
    check_config(config)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    except ImportError:
        raise UsageError(
            "train-synthesizer needs torch and transformers: pip install 'instructpt[train]'"
        ) from None
    from .data import load_records

    records = load_records(config.data)
    from ..hub import locate

    base = locate(config.base, hint="pass --base <folder>")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.name, local_files_only=base.local_only)
    except Exception as exc:  # noqa: BLE001 - a user-facing load error
        raise UsageError(f"cannot load the tokenizer of {config.base}: {str(exc).splitlines()[0]}") from None
    stats = SequenceStats()
    sequences = build_sequences(records, tokenizer, config.max_len, config.seed, stats)
    if not sequences:
        hint = "; raise --max-len" if stats.skipped["longer_than_max_len"] else ""
        raise UsageError(f"no training sequence could be built from {config.data} ({dict(stats.skipped)})"
                         f"{hint}")  # fmt: skip
    log(f"{stats.sequences} sequences, {stats.examples} examples, {stats.tokens:,} tokens "
        f"({stats.trained_tokens:,} trained on)")  # fmt: skip
    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and torch.cuda.is_bf16_supported() and config.dtype in ("auto", "bf16")
    dtype = torch.bfloat16 if bf16 else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(base.name, dtype=dtype, local_files_only=base.local_only)
    except (OSError, ValueError) as exc:  # no weights, an unknown architecture
        raise UsageError(f"cannot load the model {config.base}: {str(exc).splitlines()[0]}") from None
    if config.lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise UsageError("--lora needs peft: pip install 'instructpt[train]'") from None
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.05,
                          target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
        model = get_peft_model(model, lora)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def collate(batch: list[TrainSequence]) -> dict[str, Any]:
        width = max(len(s.input_ids) for s in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, s in enumerate(batch):
            n = len(s.input_ids)
            ids[row, :n] = torch.tensor(s.input_ids)
            labels[row, :n] = torch.tensor(s.labels)
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    args = TrainingArguments(
        output_dir=config.output, num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, seed=config.seed, bf16=bf16,
        gradient_checkpointing=config.gradient_checkpointing and on_gpu, logging_steps=config.logging_steps,
        logging_first_step=True,  # a run shorter than logging_steps still logs one step's loss
        save_steps=config.save_steps, save_total_limit=2, report_to=[], remove_unused_columns=False,
        lr_scheduler_type="cosine", warmup_steps=0.03, use_cpu=not on_gpu,  # a float: a ratio
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=sequences, data_collator=collate)
    resume = any(Path(config.output).glob("checkpoint-*"))
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs; stdout stays for --json
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    final = Path(config.output)
    if config.lora and config.merge:
        model = model.merge_and_unload()
        model.save_pretrained(final)
    else:
        trainer.save_model(str(final))
    tokenizer.save_pretrained(final)
    (first_step, first_loss), (last_step, last_loss) = first_and_last_loss(trainer.state.log_history)
    return {
        "sequences": stats.sequences, "examples": stats.examples, "tokens": stats.tokens,
        "trained_tokens": stats.trained_tokens, "skipped": dict(stats.skipped), "steps": result.global_step,
        "train_loss": training_loss(result, trainer.state.log_history),
        "first_loss": first_loss, "first_loss_step": first_step,
        "last_loss": last_loss, "last_loss_step": last_step,
        "resumed": resume, "output": str(final), "lora": config.lora, "merged": config.lora and config.merge,
    }  # fmt: skip


Logged = tuple[int | None, float | None]


def first_and_last_loss(log_history: Sequence[dict[str, Any]]) -> tuple[Logged, Logged]:
    """(step, loss) of the first and the last per-step loss the Trainer logged; (None, None) for none."""
    logged = [(int(e.get("step", 0)), float(e["loss"])) for e in log_history if _number(e.get("loss"))]
    if not logged:
        return (None, None), (None, None)
    return logged[0], logged[-1]


def training_loss(result: Any, log_history: Sequence[dict[str, Any]]) -> float | None:
    """The mean training loss of this run: the TrainOutput's, else the last `train_loss` logged."""
    value = getattr(result, "training_loss", None)
    if not _number(value):
        value = next((e["train_loss"] for e in reversed(log_history) if _number(e.get("train_loss"))), None)
    return float(value) if _number(value) else None


def _number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)
