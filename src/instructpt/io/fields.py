"""One record's fields, checked: the text (a non-empty string with no lone surrogate), JSON
lines parsed into a value or the reason there is none, Parquet cells that cannot become Python
values, and a tally of what a corpus reader saw (to say which --text-field was meant)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..records import Document, Reject


def string_field(record: dict[str, Any], field: str, source: str) -> str | Reject:
    """The non-empty string in `record[field]`, or the reason there is none."""
    if field not in record or record[field] is None:
        return Reject(source, "missing_text", f"no {field!r} field")
    text = record[field]
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject(source, "invalid_utf8", str(exc))
    if not isinstance(text, str):
        return Reject(source, "text_not_string", f"{field!r} is a {type(text).__name__}")
    if bad := surrogate_reject(text, field, source):
        return bad
    if not text.strip():
        return Reject(source, "empty_text", f"{field!r} is empty")
    return text


def parse_line(raw: bytes) -> Any:
    """The JSON value of `raw`, or a Reject (no source yet) saying why there is none."""
    from .shards import parse_json_line

    try:
        return parse_json_line(raw)
    except UnicodeDecodeError as exc:
        return Reject("", "invalid_utf8", str(exc))
    except json.JSONDecodeError as exc:
        return Reject("", "invalid_json", f"{exc.msg} (column {exc.colno})")
    except (ValueError, RecursionError) as exc:  # too deeply nested; an integer too long
        return Reject("", "invalid_json", one_line(exc))


class Tally:
    """What a reader saw: records, documents, rejects by reason, and the string fields shared by
    every record that lacked the text field (to name the right --text-field)."""

    def __init__(self) -> None:
        self.records = self.documents = self.missing = 0
        self.reasons: Counter[str] = Counter()
        self.first: Reject | None = None
        self.shared: set[str] | None = None
        self.lengths: Counter[str] = Counter()  # characters per shared field, to pick the text

    def add(self, item: Document | Reject) -> None:
        self.records += 1
        if isinstance(item, Document):
            self.documents += 1
            return
        self.reasons[item.reason] += 1
        self.first = self.first or item

    def lacks_text(self, record: dict[str, Any]) -> None:
        """`record` has no text field: keep the non-empty string fields it has instead."""
        fields = {k: len(v) for k, v in record.items() if isinstance(v, str) and v.strip()}
        self.missing += 1
        self.shared = set(fields) if self.shared is None else self.shared & set(fields)
        self.lengths.update(fields)


SURROGATES = re.compile("[\ud800-\udfff]")


def surrogate_reject(value: str, field: str, source: str) -> Reject | None:
    """A reject for a string holding a lone surrogate (JSON allows `"\\ud800"`; UTF-8 cannot
    encode it, so every later step would fail on it), else None."""
    found = SURROGATES.search(value)
    if found is None:
        return None
    return Reject(source, "invalid_unicode", f"{field!r} has a lone surrogate U+{ord(found.group()):04X} "
                  f"at character {found.start()}")  # fmt: skip


def one_line(exc: BaseException) -> str:
    """`Type: message`, first line only and at most 300 characters, for a reject's detail."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


@dataclass(frozen=True)
class BadValue:
    """A Parquet cell that cannot become a Python value (e.g. a string that is not UTF-8)."""

    reason: str
    detail: str


def column_values(batch: Any, name: str) -> list[Any]:
    column = batch.column(batch.schema.get_field_index(name))
    try:
        return column.to_pylist()
    except Exception:  # noqa: BLE001 - find the bad cells one by one, keep the rest
        return [cell_value(column, k) for k in range(len(column))]


def cell_value(column: Any, k: int) -> Any:
    try:
        return column[k].as_py()
    except UnicodeDecodeError as exc:
        return BadValue("invalid_utf8", one_line(exc))
    except Exception as exc:  # noqa: BLE001
        return BadValue("bad_record", one_line(exc))
