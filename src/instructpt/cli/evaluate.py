"""`instructpt evaluate`: lm-evaluation-harness suites for pre-trained models (docs/method.md §7)."""

from __future__ import annotations

import click

from .common import user_errors


@click.command()
@click.option("--model", required=True, help="Model to evaluate: Hub id or folder.")
@click.option(
    "--compare", default=None, help="A second model (e.g. the vanilla baseline), scored side by side."
)
@click.option(
    "--suite",
    required=True,
    help="general, biomedicine, finance, or a suite YAML file (lm-eval task names and local tasks).",
)
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Domain suites: one folder per task with test.json rows {input, options, gold_index}.",
)
@click.option(
    "--backend",
    default="hf",
    show_default=True,
    type=click.Choice(["hf", "vllm"]),
    help="How lm-eval loads the model.",
)
@click.option(
    "--batch-size", default="auto", show_default=True, help="lm-eval batch size (a number or auto)."
)
@click.option("--limit", default=None, type=float, help="Examples per task (a count, or a fraction < 1).")
@click.option("--num-fewshot", default=None, type=int, help="Few-shot examples [default: each task's].")
@click.option("--device", default=None, help="Device for the hf backend (cuda, cpu, ...).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for scores.json and scores.md (comparison.json with --compare).",
)
@user_errors
def evaluate(model: str, compare: str | None, suite: str, data_dir: str | None, backend: str, batch_size: str,
             limit: float | None, num_fewshot: int | None, device: str | None,
             output: str) -> None:  # fmt: skip
    """Score MODEL on an lm-evaluation-harness suite of the paper's tasks; with --compare, score
    both models and print them side by side."""
    from pathlib import Path

    from ..errors import UsageError
    from ..finetune.model_eval import evaluate_model, markdown_table, write_scores
    from ..io.files import make_folder

    positive = batch_size.isdigit() and int(batch_size) > 0
    if not (positive or batch_size == "auto" or batch_size.startswith("auto:")):
        raise UsageError(f"--batch-size must be a positive number or auto, got {batch_size!r}")
    if limit is not None and not limit > 0:
        raise UsageError(f"--limit must be greater than 0 (a count, or a fraction < 1), got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise UsageError(f"--num-fewshot must be at least 0, got {num_fewshot}")
    make_folder(Path(output))  # a file in the way is refused before the models are scored
    size: int | str = int(batch_size) if batch_size.isdigit() else batch_size
    lim = int(limit) if limit is not None and limit >= 1 else limit
    models = [compare, model] if compare else [model]  # baseline first, so Δ = model - baseline
    reports = [evaluate_model(m, suite, backend, data_dir, size, lim, num_fewshot, device) for m in models]
    write_scores(reports, output)
    click.echo(markdown_table(reports), nl=False)
