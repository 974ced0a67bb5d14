"""Synthesizer commands: `ft-data convert`, `train-synthesizer`, `eval-synthesizer` (docs/method.md §6-§7)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..engines.options import DEFAULT_MAX_MODEL_LEN
from .common import user_errors


@click.group("ft-data")
def ft_data() -> None:
    """Fine-tuning data for synthesizers: context-based task datasets in the wire format."""


@ft_data.command("convert")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["extractive", "abstractive", "multiple-choice", "cot", "yes-no", "nli", "collection"]),
    help="Dataset shape; 'collection' reads the published collection ({context, QA_list: [{Q, A}]}).",
)
@click.option(
    "--dataset", default=None, help="Dataset name (groups few-shot sequences) [default: file stem]."
)
@click.option("--context-field", default="context", show_default=True, help="Column with the document.")
@click.option("--question-field", default="question", show_default=True, help="Column with the question.")
@click.option(
    "--answer-field",
    default="answer",
    show_default=True,
    help="Column with the answer (a string, a list, or SQuAD's {text: [...]}).",
)
@click.option(
    "--options-field", default="options", show_default=True, help="Multiple choice: list of options."
)
@click.option(
    "--label-field",
    default="label",
    show_default=True,
    help="Gold option (index, letter or text), yes/no/maybe, or NLI label.",
)
@click.option(
    "--rationale-field", default="rationale", show_default=True, help="Chain of thought: rationale."
)
@click.option("--hypothesis-field", default="hypothesis", show_default=True, help="NLI: hypothesis.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of records; writes <dataset>.jsonl there.",
)
@user_errors
def convert(source: str, kind: str, dataset: str | None, context_field: str, question_field: str,
            answer_field: str, options_field: str, label_field: str, rationale_field: str,
            hypothesis_field: str, output: str) -> None:  # fmt: skip
    """Convert SOURCE (JSONL, JSON list or Parquet) into synthesizer fine-tuning records:
    {context, pairs: [{instruction, response}], dataset, kind}, in the docs/method.md §2 conventions."""
    from ..finetune.data import ConvertStats, Fields, convert_rows, read_rows
    from ..io.files import inside, write_atomic

    name = dataset or Path(source).name.split(".")[0]
    target = inside(Path(output), f"{name}.jsonl")  # --dataset is user text: never a path
    fields = Fields(context_field, question_field, answer_field, options_field, label_field, rationale_field,
                    hypothesis_field)  # fmt: skip
    stats = ConvertStats()
    records = list(convert_rows(read_rows(source), kind, name, fields, stats))
    write_atomic(
        target, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records).encode()
    )
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(stats.skipped.items())) or "none"
    click.echo(f"{stats.rows} rows -> {len(records)} records, {stats.pairs} pairs -> {target} "
               f"(skipped: {skipped})", err=True)  # fmt: skip


@click.command("train-synthesizer")
@click.option("--base", required=True, help="Base model: Hub id or folder (e.g. mistralai/Mistral-7B-v0.1).")
@click.option(
    "--data", required=True, type=click.Path(), help="Folder of fine-tuning records (ft-data convert)."
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder; rerunning resumes from its last checkpoint.",
)
@click.option("--lora", is_flag=True, help="Train LoRA adapters (PEFT) instead of all weights.")
@click.option("--merge", is_flag=True, help="With --lora: save the merged model (loadable by vLLM).")
@click.option("--max-len", default=4096, show_default=True, type=int, help="Tokens per few-shot sequence.")
@click.option("--epochs", default=1.0, show_default=True, type=float, help="Passes over the data.")
@click.option(
    "--max-steps", default=-1, show_default=True, type=int, help="Stop after this many steps (-1: epochs)."
)
@click.option(
    "--lr", default=1e-5, show_default=True, type=float, help="Peak learning rate (cosine schedule)."
)
@click.option("--batch-size", default=1, show_default=True, type=int, help="Sequences per device per step.")
@click.option("--grad-accum", default=8, show_default=True, type=int, help="Gradient accumulation steps.")
@click.option("--seed", default=0, show_default=True, type=int, help="Example order and training seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the training figures as JSON.")
@user_errors
def train_synthesizer(base: str, data: str, output: str, lora: bool, merge: bool, max_len: int, epochs: float,
                      max_steps: int, lr: float, batch_size: int, grad_accum: int, seed: int,
                      as_json: bool) -> None:  # fmt: skip
    """Fine-tune BASE into a synthesizer (docs/method.md §6): few-shot sequences of same-dataset examples in
    the wire format, loss only on the pair tokens and the closing EOS. Multi-GPU: run it under
    `accelerate launch`. bf16 and gradient checkpointing on GPU."""
    from ..errors import UsageError
    from ..finetune.train import TrainConfig
    from ..finetune.train import train_synthesizer as train

    if merge and not lora:
        raise UsageError("--merge applies to --lora training")
    config = TrainConfig(base=base, data=data, output=output, lora=lora, merge=merge, max_len=max_len,
                         epochs=epochs, max_steps=max_steps, learning_rate=lr, batch_size=batch_size,
                         grad_accum=grad_accum, seed=seed)  # fmt: skip
    result = train(config, log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        summary = f"trained {result['steps']} steps, {loss_line(result)}; saved to {result['output']}"
        click.echo(summary, err=True)


def loss_line(result: dict) -> str:
    """The losses `train-synthesizer` reports: the run's mean and the per-step losses it logged."""
    parts = []
    if result.get("train_loss") is not None:
        parts.append(f"mean loss {result['train_loss']:.4f}")
    first, last = result.get("first_loss"), result.get("last_loss")
    if first is not None and last is not None and result["first_loss_step"] != result["last_loss_step"]:
        parts.append(f"loss {first:.4f} (step {result['first_loss_step']}) -> {last:.4f} "
                     f"(step {result['last_loss_step']})")  # fmt: skip
    elif first is not None:
        parts.append(f"loss {first:.4f} at step {result['first_loss_step']}")
    return ", ".join(parts) or "no loss logged"


@click.command("eval-synthesizer")
@click.option("--model", required=True, help="Synthesizer to evaluate: Hub id or folder.")
@click.option(
    "--data", required=True, type=click.Path(), help="Held-out fine-tuning records (ft-data convert)."
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for report.json and summary.txt.",
)
@click.option("--engine", default="auto", show_default=True, help="Inference backend (see `engines list`).")
@click.option(
    "--max-model-len", default=DEFAULT_MAX_MODEL_LEN, show_default=True, type=int, help="Context window."
)
@click.option("--max-new-tokens", default=400, show_default=True, type=int, help="For generated pairs.")
@click.option("--limit", default=None, type=int, help="Evaluate only the first N records.")
@user_errors
def eval_synthesizer(model: str, data: str, output: str, engine: str, max_model_len: int,
                     max_new_tokens: int, limit: int | None) -> None:  # fmt: skip
    """Measure a synthesizer on held-out records: response exact match and token F1 given the gold
    instruction, and parse rate, pairs per document, kind mix, groundedness and duplicates of
    the pairs it writes."""
    from ..engines.registry import EngineOptions, create_engine
    from ..finetune.data import load_records
    from ..finetune.evaluate import evaluate_synthesizer, summary_text
    from ..io.files import write_atomic, write_json

    records = load_records(data)[:limit]
    with create_engine(engine, EngineOptions(model=model, max_model_len=max_model_len)) as backend:
        report = evaluate_synthesizer(records, backend, max_new_tokens=max_new_tokens)
    report["model"] = model
    write_json(Path(output) / "report.json", report)
    text = summary_text(report)
    write_atomic(Path(output) / "summary.txt", (text + "\n").encode())
    click.echo(text)
