"""Evaluation sets to decontaminate against: their texts, by benchmark name.

An eval set is given as `[NAME=]PATH[:FIELD1,FIELD2]`:

* PATH: a JSONL file (optionally .gz/.zst), a Parquet file, a folder of such files, or a
  `datasets` dataset saved with `save_to_disk` (a Dataset or a DatasetDict: every split is read);
* FIELDS: the fields holding text (default: every string field, and strings inside lists, such as
  a list of answer choices);
* NAME: the benchmark's name in counts and `contamination.jsonl` (default: the file's stem or the
  folder's name).

Each chosen field of a record is indexed as one text, and so are all of them joined in order
(so a question followed by its answer is caught as it stands in a document).

lm-evaluation-harness tasks are given by name (`lm_eval_tasks`), optionally with a folder of
task YAMLs (`lm_eval_include`); their data must already be on this machine (the `datasets`
cache or local files named by the YAML): loading runs with HF_DATASETS_OFFLINE/HF_HUB_OFFLINE
set. A task's text is what lm-eval itself decontaminates against (`doc_to_decontamination_query`,
else `doc_to_text`) with the target appended.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, UsageError, first_line

DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


@dataclass(frozen=True)
class EvalSetSpec:
    name: str
    path: str
    fields: tuple[str, ...] = ()


def parse_eval_set(spec: str) -> EvalSetSpec:
    """`[NAME=]PATH[:FIELD1,FIELD2]` -> EvalSetSpec. A PATH that exists as given is taken whole
    (so a path holding ':' still works); else the text after the last ':' names the fields."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("--eval-set needs NAME=PATH[:FIELDS] or PATH[:FIELDS], got an empty value")
    name, path = "", spec.strip()
    head, sep, rest = path.partition("=")
    if sep and head and "/" not in head and ":" not in head:
        name, path = head.strip(), rest.strip()
    fields: tuple[str, ...] = ()
    if not Path(path).exists() and ":" in path:
        base, _, listed = path.rpartition(":")
        if not base:
            raise UsageError(f"--eval-set {spec!r}: no path before ':'")
        if "/" not in listed:
            path = base
            fields = tuple(f.strip() for f in listed.split(",") if f.strip())
            if not fields:
                raise UsageError(f"--eval-set {spec!r}: no field names after ':'")
    if not path:
        raise UsageError(f"--eval-set {spec!r}: no path")
    if not name:
        p = Path(path)
        name = p.name.split(".")[0] if p.is_file() or p.suffix else p.name or path
    return EvalSetSpec(name, path, fields)


def _record_texts(record: dict[str, Any], fields: Sequence[str], where: str) -> list[str]:
    if fields:
        missing = [f for f in fields if f not in record]
        if missing:
            present = ", ".join(sorted(map(str, record))[:20])
            raise UsageError(f"{where} has no field {missing[0]!r} (fields: {present})")
        values = [record[f] for f in fields]
    else:
        values = list(record.values())
    texts: list[str] = []
    for value in values:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (list, tuple)):
            texts.extend(v for v in value if isinstance(v, str))
    texts = [t for t in texts if t.strip()]
    return texts + ([" ".join(texts)] if len(texts) > 1 else [])


def _rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, where) of a JSONL or Parquet file, a folder of them, or a saved dataset."""
    if path.is_dir():
        if any((path / m).exists() for m in DATASET_MARKERS):
            yield from _dataset_rows(path)
            return
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p))
        if not files:
            raise UsageError(f"eval set {path}: no JSONL or Parquet files in the folder")
        for f in files:
            yield from _rows(f)
        return
    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        for row, record in enumerate(pq.read_table(path).to_pylist()):
            yield record, f"{path}#row{row}"
        return
    from ..io.corpus import _open_binary

    with _open_binary(path) as handle:
        for lineno, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise UsageError(f"eval set {path}:{lineno} is not a JSON line ({first_line(exc)})") from None
            if isinstance(record, dict):
                yield record, f"{path}:{lineno}"


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return None


def _dataset_rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    try:
        import datasets
    except ImportError:
        raise MissingExtraError(
            f"the eval set {path} (a saved `datasets` dataset)", "hf", "datasets"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's folder
        raise UsageError(f"eval set {path} is not a loadable `datasets` folder: {first_line(exc)}") from None
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    for split, data in splits:
        for row, record in enumerate(data):
            yield record, f"{path}[{split}]#row{row}" if split else f"{path}#row{row}"


def eval_set_texts(spec: EvalSetSpec) -> Iterator[tuple[str, str]]:
    """(benchmark, text) for every text of the eval set."""
    path = Path(spec.path)
    if not path.exists():
        raise UsageError(f"eval set {spec.name}: {spec.path} does not exist")
    if path.is_file() and _kind(path) is None:
        raise UsageError(f"eval set {spec.path}: use a .jsonl, .json, .parquet file or a folder")
    for record, where in _rows(path):
        for text in _record_texts(record, spec.fields, where):
            yield spec.name, text


def lm_eval_texts(tasks: Sequence[str], include: str | None = None) -> Iterator[tuple[str, str]]:
    """(task name, text) for every evaluation document of lm-evaluation-harness `tasks`."""
    if not tasks:
        return
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # never download: the data must be here
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UsageError("--lm-eval-task needs lm-evaluation-harness: pip install lm-eval") from None
    if include is not None and not Path(include).is_dir():
        raise UsageError(f"--lm-eval-include {include}: not a folder of task YAML files")
    manager = TaskManager(include_path=include) if include else TaskManager()
    for name in tasks:
        try:
            if hasattr(manager, "load"):  # lm-eval >= 0.4.10: {"tasks": {name: Task}, ...}
                loaded = manager.load([name])["tasks"]
            else:
                loaded = manager.load_task_or_group([name])
        except Exception as exc:  # noqa: BLE001 - unknown task, data not in the cache, bad YAML
            raise UsageError(
                f"lm-eval task {name!r} could not be loaded (its data must be in the local "
                f"`datasets` cache; nothing is downloaded): {first_line(exc)}"
            ) from None
        for task_name, task in _leaf_tasks(loaded):
            yield from _task_texts(task_name, task)


def _leaf_tasks(loaded: Any, name: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(loaded, dict):
        for key, value in loaded.items():
            yield from _leaf_tasks(value, getattr(key, "group_name", None) or str(key))
    elif isinstance(loaded, (list, tuple)):
        for value in loaded:
            yield from _leaf_tasks(value, name)
    elif hasattr(loaded, "eval_docs"):
        yield getattr(getattr(loaded, "config", None), "task", None) or name, loaded


def _task_texts(name: str, task: Any) -> Iterator[tuple[str, str]]:
    for doc in task.eval_docs:
        query = task.doc_to_decontamination_query(doc) if task.should_decontaminate() else None
        text = query if isinstance(query, str) else task.doc_to_text(doc)
        target = task.doc_to_target(doc)
        if isinstance(target, int) and not isinstance(target, bool):  # multiple choice: the answer's text
            has_choices = getattr(task.config, "doc_to_choice", None) is not None
            choices = task.doc_to_choice(doc) if has_choices else None
            target = choices[target] if isinstance(choices, list) and 0 <= target < len(choices) else ""
        parts = [t for t in (text, target) if isinstance(t, str) and t.strip()]
        for part in parts:
            yield name, part
        if len(parts) > 1:
            yield name, " ".join(parts)
