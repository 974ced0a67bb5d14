"""What templify reads and writes: an entry's fields, a shot, an augmented text, a raw text.

`templating/render.py` turns shots into `AugmentedText`s; this module holds the records it
passes around, so the rendering logic stays in one module of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..records import Entry
from ..synthesis.classify import PairView
from ..synthesis.format import Pair
from .stats import TemplifyStats

RAW = "raw"  # the mode of a text that is its document alone (an entry without usable pairs)


@dataclass(frozen=True, slots=True)
class AugmentedText:
    id: str
    text: str
    source_ids: tuple[str, ...]
    n_shots: int
    n_pairs: int
    mode: str
    templates: tuple[str, ...] = ()  # template ids used ("qa/17"), in order of first use

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "source_ids": list(self.source_ids),
            "n_shots": self.n_shots,
            "n_pairs": self.n_pairs,
            "mode": self.mode,
            "templates": list(self.templates),
        }


@dataclass(slots=True)
class Shot:
    id: str
    text: str
    pairs: list[PairView]


def raw_text(entry_id: str, text: str, stats: TemplifyStats) -> AugmentedText:
    """An entry without usable pairs: its raw document, counted as one text."""
    stats.texts += 1
    stats.documents += 1
    stats.modes[RAW] += 1
    stats.shots[1] += 1
    return AugmentedText(entry_id, text, (entry_id,), 1, 0, RAW)


def entry_fields(record: Entry | Mapping[str, Any]) -> tuple[str, str, list[Pair], str, int, bool]:
    """(id, text, pairs, chain_id, round, inherits) of an `Entry` or its dict row."""
    if isinstance(record, Entry):
        return record.id, record.text, record.pairs, record.chain_id, record.round, record.inherits
    if not isinstance(record, Mapping):
        raise UsageError(f"a synthesize record is an Entry or its dict row, not a {type(record).__name__}")
    try:
        pairs = [p if isinstance(p, Pair) else Pair(p["instruction"], p["response"]) for p in record["pairs"]]
        return (
            record["id"], record["text"], pairs, record["chain_id"], record["round"], record["inherits"]
        )  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise UsageError(
            f"record {record.get('id', '?')!r} is not a synthesize row ({type(exc).__name__}: "
            f"{exc}): it needs {', '.join(ROW_FIELDS)} (pairs: a list of {{instruction, response}})"
        ) from None


ROW_FIELDS = ("id", "text", "pairs", "chain_id", "round", "inherits")
