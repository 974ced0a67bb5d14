"""Evaluating pre-trained models with lm-evaluation-harness (docs/method.md §7), the paper's way.

A thin layer over `lm_eval.simple_evaluate`: named suites of the paper's task lists, local
multiple-choice tasks turned into lm-eval task configs, hf or vllm model loading, scores as
JSON plus a markdown table, and a side-by-side comparison of two models.

Suites (`--suite`): `general` (ARC-e/c, BoolQ, SIQA, WinoGrande, PIQA, OBQA, HellaSwag, MMLU:
lm-eval's own tasks); `biomedicine` (PubMedQA and USMLE/MedQA from lm-eval, plus ChemProt,
RCT and MQP) and `finance` (ConvFinQA, FPB, FiQA SA, Headline, NER). The domain tasks that
lm-eval does not ship are read from local files (`--data-dir`, one `<Task>/test.json` or
`.jsonl` per task, rows `{"input", "options", "gold_index"}` as in the AdaptLLM task
releases) and scored as multiple choice by log-likelihood. A suite can also be a YAML file:
`tasks:` a list of lm-eval task names and/or `{name, path, input_field?, options_field?,
gold_field?}` local tasks.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class LocalTask:
    """A multiple-choice task read from a local JSON/JSONL file."""

    name: str
    path: str
    input_field: str = "input"
    options_field: str = "options"
    gold_field: str = "gold_index"

    def check(self) -> None:
        """The file exists, has rows, and its first row has the task's three fields (else lm-eval
        fails deep inside a template, after loading the model)."""
        from .data import read_rows

        row = next(iter(read_rows(self.path)), None)
        if row is None:
            raise UsageError(f"task {self.name}: {self.path} holds no rows")
        fields = (self.input_field, self.options_field, self.gold_field)
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        if missing:
            found = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise UsageError(f"task {self.name}: the rows of {self.path} lack {', '.join(missing)} "
                             f"(found: {found}); set input_field/options_field/gold_field in the suite "
                             "YAML")  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(Path(self.path).resolve())}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "{{" + self.input_field + "}}",
            "doc_to_choice": "{{" + self.options_field + "}}",
            "doc_to_target": "{{" + self.gold_field + "}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }


GENERAL = [
    "arc_easy",
    "arc_challenge",
    "boolq",
    "siqa",
    "winogrande",
    "piqa",
    "openbookqa",
    "hellaswag",
    "mmlu",
]
SUITES: dict[str, tuple[list[str], list[str]]] = {
    # suite -> (lm-eval task names, local task folder names under --data-dir)
    "general": (GENERAL, []),
    "biomedicine": (["pubmedqa", "medqa_4options"], ["ChemProt", "RCT", "MQP"]),
    "finance": ([], ["ConvFinQA", "FPB", "FiQA_SA", "Headline", "NER"]),
}


def _local_file(data_dir: Path, folder: str) -> Path:
    for name in ("test.json", "test.jsonl"):
        if (data_dir / folder / name).is_file():
            return data_dir / folder / name
    raise UsageError(
        f"the task {folder} needs {data_dir / folder}/test.json (rows: input, options, gold_index)"
    )


def resolve_suite(suite: str, data_dir: str | None = None) -> tuple[list[str], list[LocalTask]]:
    """lm-eval task names and local tasks for a suite name or a suite YAML file."""
    if suite in SUITES:
        names, local = SUITES[suite]
        if local and data_dir is None:
            raise UsageError(
                f"--suite {suite} reads {', '.join(local)} from --data-dir (one folder per task)"
            )
        tasks = [LocalTask(f"instructpt_{t.lower()}", str(_local_file(Path(data_dir), t))) for t in local]
        return list(names), tasks
    path = Path(suite)
    if not path.is_file():
        raise UsageError(f"unknown suite {suite!r}: choose {', '.join(SUITES)} or give a suite YAML file")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; save the suite as UTF-8") from None
    except yaml.YAMLError as exc:
        from ..config import yaml_problem

        raise UsageError(f"{path} is not valid YAML: {yaml_problem(exc)}") from None
    tasks = data.get("tasks", []) if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        raise UsageError(f"{path} must hold `tasks:`, a list of lm-eval task names and {{name, path}} tasks")
    names: list[str] = []
    local: list[LocalTask] = []
    for item in tasks:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and {"name", "path"} <= set(item):
            item = dict(item)
            if not Path(item["path"]).is_absolute():
                item["path"] = str(path.parent / item["path"])
            try:
                local.append(LocalTask(**item))
            except TypeError as exc:
                raise UsageError(f"{path}: bad task {item.get('name')!r}: {exc}") from None
        else:
            raise UsageError(f"{path}: each task is an lm-eval task name or {{name, path, ...}}")
    if not names and not local:
        raise UsageError(f"{path} lists no tasks")
    return names, local


def evaluate_model(model: str, suite: str, backend: str = "hf", data_dir: str | None = None,
                   batch_size: int | str = "auto", limit: int | float | None = None,
                   num_fewshot: int | None = None,
                   device: str | None = None, dtype: str = "auto") -> dict[str, Any]:  # fmt: skip
    """Scores of `model` on `suite`: {task: {metric: value}} plus the lm-eval configuration."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UsageError("evaluate needs lm-evaluation-harness: pip install 'instructpt[eval]'") from None
    if backend not in ("hf", "vllm"):
        raise UsageError(f"--backend must be hf or vllm, got {backend!r}")
    names, local = resolve_suite(suite, data_dir)
    for task in local:  # before the model loads
        task.check()
    with tempfile.TemporaryDirectory() as include:
        import yaml

        for task in local:
            (Path(include) / f"{task.name}.yaml").write_text(yaml.safe_dump(task.config()))
        manager = TaskManager(include_path=include)
        args: dict[str, Any] = {"pretrained": model, "dtype": dtype}
        try:
            results = lm_eval.simple_evaluate(
                model=backend, model_args=args, tasks=names + [t.name for t in local], task_manager=manager,
                batch_size=batch_size, limit=limit, num_fewshot=num_fewshot, device=device, log_samples=False,
            )  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"lm-eval could not run: {str(exc).splitlines()[0]}") from None
    scores = {
        task: {
            k.split(",")[0]: v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and "stderr" not in k
        }
        for task, metrics in results["results"].items()
    }
    return {"model": model, "suite": suite, "backend": backend, "scores": scores,
            "n_samples": results.get("n-samples", {}), "num_fewshot": num_fewshot,
            "limit": limit}  # fmt: skip


def _headline(metrics: dict[str, float]) -> tuple[str, float | None]:
    for key in ("acc_norm", "acc", "exact_match", "f1"):
        if key in metrics:
            return key, metrics[key]
    return next(iter(metrics.items()), ("", None))


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Tasks as rows, models as columns (and the difference when there are two)."""
    tasks = sorted({t for r in reports for t in r["scores"]})
    header = ["task", "metric"] + [Path(r["model"]).name or r["model"] for r in reports]
    if len(reports) == 2:
        header.append("Δ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        metric, _ = _headline(reports[0]["scores"].get(task, {}) or reports[-1]["scores"].get(task, {}))
        values = [r["scores"].get(task, {}).get(metric) for r in reports]
        cells = [f"{v:.4f}" if isinstance(v, (int, float)) else "–" for v in values]
        if len(reports) == 2:
            a, b = values
            cells.append(
                f"{b - a:+.4f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "–"
            )
        lines.append("| " + " | ".join([task, metric] + cells) + " |")
    return "\n".join(lines) + "\n"


def write_scores(reports: list[dict[str, Any]], output: str | Path) -> Path:
    from ..io.files import write_atomic, write_json

    out = Path(output)
    for i, report in enumerate(reports):
        write_json(out / ("scores.json" if len(reports) == 1 else f"scores-{i}.json"), report)
    table = markdown_table(reports)
    write_atomic(out / "scores.md", table.encode())
    if len(reports) == 2:
        write_json(out / "comparison.json", {"models": [r["model"] for r in reports],
                                             "table_markdown": table})  # fmt: skip
    return out


def dump(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
