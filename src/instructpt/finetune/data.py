"""Fine-tuning records for a synthesizer, converted from context-based task datasets.

A record is one document with the pairs a good synthesizer should write about it:
`{"context": str, "pairs": [{"instruction", "response"}], "dataset": str, "kind": str}`.
Converters map the common dataset shapes onto the docs/method.md §2 conventions, driven by column
names: extractive and abstractive QA (answer as written), multiple choice (options listed
after "\\nOptions:\\n- ", the gold option's text as the response), chain of thought
(instruction ends "\\nLet's think step by step.", response "rationale\\nTherefore, the answer
is X"), yes/no/maybe and NLI (as multiple choice). Rows that share a context become one
record with several pairs, in row order. Bad rows are counted by reason, never fatal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..synthesis.format import COT_ANSWER_MARKER, COT_MARKER, OPTIONS_MARKER, Pair

KINDS = ("extractive", "abstractive", "multiple-choice", "cot", "yes-no", "nli", "collection")
NLI_OPTIONS = ("yes", "it is not possible to tell", "no")
_NLI_LABELS = {
    "entailment": "yes", "neutral": "it is not possible to tell", "contradiction": "no",
    "0": "yes", "1": "it is not possible to tell", "2": "no",
}  # fmt: skip
YES_NO_MAYBE = ("yes", "no", "maybe")


@dataclass
class FtRecord:
    context: str
    pairs: list[Pair]
    dataset: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "pairs": [{"instruction": p.instruction, "response": p.response} for p in self.pairs],
            "dataset": self.dataset,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> FtRecord:
        pairs = [Pair(p["instruction"], p["response"]) for p in row["pairs"]]
        return cls(row["context"], pairs, row.get("dataset", ""), row.get("kind", ""))


@dataclass
class Fields:
    """Column names of the source dataset."""

    context: str = "context"
    question: str = "question"
    answer: str = "answer"
    options: str = "options"
    label: str = "label"
    rationale: str = "rationale"
    hypothesis: str = "hypothesis"


@dataclass
class ConvertStats:
    rows: int = 0
    pairs: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _first_answer(value: Any) -> str | None:
    """SQuAD-style answers: a string, a list of strings, or {"text": [...]}."""
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if _text(v)), None)
    return _text(value)


def _option_index(label: Any, options: Sequence[str]) -> int | None:
    """The gold option from an index (0-based), a letter (A/B/...), or the option's text."""
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return label if 0 <= label < len(options) else None
    text = _text(label)
    if text is None:
        return None
    if text in options:
        return options.index(text)
    if len(text) == 1 and text.isalpha() and ord(text.upper()) - 65 < len(options):
        return ord(text.upper()) - 65
    if text.isdigit() and int(text) < len(options):
        return int(text)
    folded = [o.casefold() for o in options]
    return folded.index(text.casefold()) if text.casefold() in folded else None


def options_instruction(question: str, options: Sequence[str]) -> str:
    return question + OPTIONS_MARKER + "\n- ".join(options)


def convert_row(row: dict[str, Any], kind: str, f: Fields) -> tuple[str, Pair] | str:
    """(context, pair) for one dataset row, or the reason it was skipped."""
    context = _text(row.get(f.context))
    if context is None:
        return "missing_context"
    question = _text(row.get(f.question))
    if kind == "nli":
        hypothesis = _text(row.get(f.hypothesis)) or question
        label = _NLI_LABELS.get(str(row.get(f.label)).strip().lower())
        if hypothesis is None or label is None:
            return "bad_nli_row"
        instruction = options_instruction(
            f'Does the passage support this statement: "{hypothesis}"?', NLI_OPTIONS
        )
        return context, Pair(instruction, label)
    if question is None:
        return "missing_question"
    if kind in ("extractive", "abstractive"):
        answer = _first_answer(row.get(f.answer))
        return (context, Pair(question, answer)) if answer else "missing_answer"
    if kind == "yes-no":
        answer = (_text(row.get(f.answer)) or _text(row.get(f.label)) or "").lower()
        if answer in ("true", "false"):
            answer = "yes" if answer == "true" else "no"
        if answer not in YES_NO_MAYBE:
            return "answer_not_yes_no_maybe"
        return context, Pair(options_instruction(question, YES_NO_MAYBE), answer)
    if kind in ("multiple-choice", "cot"):
        raw_options = row.get(f.options)
        options = (
            [o for o in (_text(x) for x in raw_options or []) if o] if isinstance(raw_options, list) else []
        )
        if kind == "multiple-choice" or options:
            if len(options) < 2:
                return "fewer_than_two_options"
            index = _option_index(row.get(f.label, row.get(f.answer)), options)
            if index is None:
                return "label_not_an_option"
            answer = options[index]
            instruction = options_instruction(question, options)
        else:
            answer = _first_answer(row.get(f.answer))
            if answer is None:
                return "missing_answer"
            instruction = question
        if kind == "multiple-choice":
            return context, Pair(instruction, answer)
        rationale = _text(row.get(f.rationale))
        if rationale is None:
            return "missing_rationale"
        return context, Pair(instruction + COT_MARKER, rationale + COT_ANSWER_MARKER + answer)
    raise UsageError(f"unknown --kind {kind!r}; choose one of {', '.join(KINDS)}")


def convert_rows(rows: Iterable[dict[str, Any]], kind: str, dataset: str, f: Fields,
                 stats: ConvertStats) -> Iterator[FtRecord]:  # fmt: skip
    """Records from dataset rows; consecutive rows with the same context share a record."""
    current: FtRecord | None = None
    for row in rows:
        stats.rows += 1
        if kind == "collection":  # the published collection: {context, QA_list: [{Q, A}]}
            context = _text(row.get("context"))
            qa = row.get("QA_list") or []
            pairs = [Pair(q.strip(), a.strip()) for q, a in ((x.get("Q"), x.get("A")) for x in qa)
                     if _text(q) and _text(a)]  # fmt: skip
            if context is None or not pairs:
                stats.skipped["missing_context_or_pairs"] += 1
                continue
            stats.pairs += len(pairs)
            yield FtRecord(context, pairs, dataset, kind)
            continue
        converted = convert_row(row, kind, f)
        if isinstance(converted, str):
            stats.skipped[converted] += 1
            continue
        context, pair = converted
        stats.pairs += 1
        if current is not None and current.context == context:
            current.pairs.append(pair)
            continue
        if current is not None:
            yield current
        current = FtRecord(context, [pair], dataset, kind)
    if current is not None:
        yield current


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL (plain/.gz/.zst), .json list, or Parquet file, streamed."""
    from ..io.corpus import _open_binary

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            yield from batch.to_pylist()
        return
    if path.suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, list):
            raise UsageError(f"{path}: a .json input must hold a list of rows")
        yield from data
        return
    with _open_binary(path) as handle:
        for lineno, raw in enumerate(handle, 1):
            if raw.strip():
                try:
                    yield json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise UsageError(f"{path}:{lineno}: invalid JSON") from None


def load_records(folder: str | Path) -> list[FtRecord]:
    """All records of a converted folder (or one records file)."""
    path = Path(folder)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UsageError(f"no fine-tuning records (*.jsonl) in {folder}")
    records = []
    for f in files:
        for i, row in enumerate(read_rows(f), 1):
            try:
                if not isinstance(row, dict) or not isinstance(row["context"], str):
                    raise TypeError("not a record")
                records.append(FtRecord.from_dict(row))
            except (KeyError, TypeError):
                raise UsageError(
                    f"{f}: row {i} is not a fine-tuning record {{context, pairs: [{{instruction, "
                    f"response}}], dataset}}; make them with `instructpt ft-data convert`"
                ) from None
    if not records:
        raise UsageError(f"{folder} holds no fine-tuning records (empty files)")
    return records
