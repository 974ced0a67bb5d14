"""The typed records that flow through synthesis: document in, entry out.

A `Document` is one text read from the corpus (or one part of a long one). An
`Entry` is that document after synthesis: its pairs plus the chain state templify
needs to rebuild M-shot texts (docs/method.md §3). A `Reject` is an input that could not be
used, with the reason; rejects are written, never silently dropped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from .synthesis.format import Pair


def content_id(text: str) -> str:
    """A stable id for a document without one: the first 16 hex digits of its SHA-1."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


# A document id that ends like a part id (`#` and ASCII digits, then any number of `#`).
_PART_LIKE = re.compile(r"#[0-9]+#*\Z")


def entry_id(doc_id: str, part: int | None = None) -> str:
    """The id of an output entry: unique whenever the document ids are.

    Part k of a split document is `<doc_id>#<k>`, so it always ends in `#` and digits. A whole
    document keeps its id unless that id could be mistaken for a part's (it matches
    `#[0-9]+#*$`, e.g. `x#0` or `x#0#`): then one `#` is appended (`x#0#`, `x#0##`). Whole
    documents' entry ids therefore never end in `#<digits>`, and two different ids never map
    to the same entry id.
    """
    if part is not None:
        return f"{doc_id}#{part}"
    return doc_id + "#" if _PART_LIKE.search(doc_id) else doc_id


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str
    source: str = ""
    # For a long document split to fit the context: which part this is, of how many.
    doc_id: str = ""
    part: int = 0
    n_parts: int = 1
    truncated: bool = False

    def __post_init__(self) -> None:
        if not self.doc_id:
            object.__setattr__(self, "doc_id", self.id)


@dataclass(slots=True)
class Entry:
    """One document after synthesis, with its place in a chain."""

    id: str
    doc_id: str
    part: int
    n_parts: int
    text: str
    pairs: list[Pair]
    chain_id: str
    round: int  # the round that produced it, which is also its position in the chain
    inherits: bool  # its prompt included its predecessor and it produced >= 1 pair
    n_context: int  # earlier entries of the chain that its prompt included
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str  # "stop" (EOS) or "length" (hit max_new_tokens)
    truncated: bool = False
    source: str = ""
    generation: str | None = None

    @property
    def position(self) -> int:
        return self.round


@dataclass(frozen=True, slots=True)
class Reject:
    """An input record that was not synthesized, and why."""

    source: str
    reason: str
    detail: str = ""
    id: str | None = None

    def to_dict(self) -> dict:
        out = {"source": self.source, "reason": self.reason, "detail": self.detail}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass
class Counts:
    """Named counters that add up across shards (like datatrove's stats)."""

    values: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n

    def update(self, other: Counts | dict[str, int]) -> None:
        items = other.values if isinstance(other, Counts) else other
        for key, n in items.items():
            self.add(key, n)

    def __getitem__(self, key: str) -> int:
        return self.values.get(key, 0)

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.values.items()))
