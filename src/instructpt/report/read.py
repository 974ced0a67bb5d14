"""Reading stage outputs for the report: the recorded shards batch by batch, and JSON side files.

Only reads: nothing here writes into an output folder or runs a stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError, first_line
from ..io.output import MANIFEST
from ..io.shards import parquet_batches, parse_json_line

BATCH_ROWS = 1024
SAMPLE_TEXT_CHARS = 20_000  # longer texts are cut in the page (their length is stated)


def shard_files(folder: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The data files of the shards the manifest records as written, in shard order."""
    shards = manifest.get("shards") or {}
    files = []
    for key in sorted(shards, key=lambda k: int(k)):
        path = folder / shards[key]["file"]
        if not path.is_file():
            raise UsageError(f"{path} is recorded in {folder / MANIFEST} but missing: rerun that stage")
        files.append(path)
    return files


def batches(
    path: Path, light: Iterable[str]
) -> Iterator[tuple[list[dict[str, Any]], Callable[[int, str], Any]]]:
    """Batches of one Parquet/JSONL shard: rows with the `light` columns, and `get(i, column)`
    for any other column of row i, converted only when asked (texts are the bulk of a shard)."""
    light = list(light)
    try:
        if path.suffix == ".parquet":
            for batch in parquet_batches(path, None, BATCH_ROWS):
                rows = batch.select([c for c in light if c in batch.schema.names]).to_pylist()
                yield rows, lambda i, column, batch=batch: batch.column(column)[i].as_py()
            return
        with open(path, "rb") as lines:
            rows = []
            for line in lines:
                if line.strip():
                    rows.append(parse_json_line(line))
                if len(rows) == BATCH_ROWS:
                    yield rows, lambda i, column, rows=rows: rows[i].get(column)
                    rows = []
            if rows:
                yield rows, lambda i, column, rows=rows: rows[i].get(column)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
    except Exception as exc:  # pyarrow's errors: a torn or foreign file is the user's to fix
        if type(exc).__module__.startswith("pyarrow"):
            raise UsageError(f"cannot read {path}: {first_line(exc)}") from None
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when there is no such file."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from None


def cut(text: Any) -> tuple[str, int]:
    """The text as the page shows it, and how many characters were left out."""
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(text) <= SAMPLE_TEXT_CHARS:
        return text, 0
    return text[:SAMPLE_TEXT_CHARS], len(text) - SAMPLE_TEXT_CHARS


def attach_augmented(folder: Path, manifest: dict[str, Any], sample: list[dict[str, Any]]) -> None:
    """Give each sampled entry the templify text whose source_ids contain its id."""
    wanted = {record["id"]: record for record in sample}
    for path in shard_files(folder, manifest):
        for rows, get in batches(path, ("id", "source_ids", "mode", "n_shots", "n_pairs")):
            for i, row in enumerate(rows):
                hits = [wanted.pop(sid) for sid in row.get("source_ids") or [] if sid in wanted]
                if not hits:
                    continue
                text, left_out = cut(get(i, "text"))
                augmented = {
                    "id": row.get("id"),
                    "mode": row.get("mode"),
                    "n_shots": row.get("n_shots"),
                    "n_pairs": row.get("n_pairs"),
                    "source_ids": row.get("source_ids"),
                    "text": text,
                    "text_cut": left_out,
                }
                for record in hits:
                    record["augmented"] = augmented
            if not wanted:  # every document is in exactly one text: nothing left to find
                return
