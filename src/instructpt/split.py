"""The paper's corpus split (docs/method.md §5): which documents `synthesize --fraction F` converts.

A document is selected when the first 8 bytes of sha256(its id), read as a big-endian integer,
are below F * 2**64. The choice depends on the id alone, never on sharding, order or workers, and
the selections are nested (F = 0.2 selects a subset of what F = 0.3 selects). `mix --recipe
scratch` takes the complement of the same raw files with the same rule (mixing/split.py).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator

from .errors import UsageError
from .records import Document, Reject

_SPACE = 1 << 64
# An entry id (records.entry_id): part k of a split document is `<doc id>#<k>`; a whole document
# whose id looks like a part's got one `#` appended.
_PART = re.compile(r"#[0-9]+\Z")
_PART_LIKE = re.compile(r"#[0-9]+#+\Z")


def id_hash(doc_id: str) -> int:
    """The first 8 bytes of sha256(`doc_id`) as an integer in [0, 2**64)."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big")


def threshold(fraction: float) -> int:
    """Ids whose `id_hash` is below this are selected by `fraction`."""
    return _SPACE if fraction >= 1 else int(fraction * _SPACE)


def in_fraction(doc_id: str, fraction: float) -> bool:
    """Whether `synthesize --fraction fraction` converts the document `doc_id`."""
    return fraction >= 1 or id_hash(doc_id) < threshold(fraction)


def check_fraction(fraction: float, flag: str = "--fraction") -> float:
    """`fraction` if 0 < fraction <= 1, else a UsageError naming `flag`."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
            or not 0 < fraction <= 1:  # fmt: skip
        raise UsageError(f"{flag} must be a number in (0, 1] (the share of documents to convert), "
                         f"got {fraction!r}")  # fmt: skip
    return float(fraction)


def doc_id_of(entry_id: str) -> str:
    """The document id behind a synthesize entry id (the inverse of records.entry_id)."""
    if _PART.search(entry_id):
        return entry_id[: entry_id.rindex("#")]
    if _PART_LIKE.search(entry_id):
        return entry_id[:-1]
    return entry_id


class NotSelected:
    """A picklable filter: true for the ids that `fraction` does NOT select (the raw share)."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.limit = threshold(fraction)

    def __call__(self, doc_id: str) -> bool:
        return id_hash(doc_id) >= self.limit


def select(items: Iterable[Document | Reject], fraction: float, left_out: list[int]
           ) -> Iterator[Document | Reject]:  # fmt: skip
    """`items` less the documents `fraction` does not select, counted in left_out[0] (synthesize)."""
    for item in items:
        if isinstance(item, Document) and not in_fraction(item.id, fraction):
            left_out[0] += 1
            continue
        yield item
