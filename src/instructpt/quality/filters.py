"""Pair filters applied before templify, each with a counted reason.

Defaults keep the paper's data unchanged except for clearly broken pairs:

=========================== ========== =====================================================
reason                      default    a pair is dropped when
=========================== ========== =====================================================
empty_instruction/response  on         it is empty or only whitespace
instruction_too_long        4096 chars longer than this (a default synthesizer run writes at
response_too_long                      most 400 tokens per document, ~1,600 characters)
instruction_is_document     on         its words contain the whole document's (8+ words)
response_copies_document    on         the response's words contain the whole document's
ungrounded                  off        `min_groundedness` is set and fewer than that share of
                                       the response's words occur in the document
duplicate                   off        `dedupe`: the same normalised instruction + response
                                       is kept earlier in the corpus (by shard, row, pair)
=========================== ========== =====================================================

Normalised means the words of `ngrams.tokens` (lowercase, punctuation stripped). Duplicates are
found by a 64-bit hash per pair: a pass over the input before the shards run collects 16 bytes
per pair that survives every other decision (hash + position: not contaminated, kept by the
other filters, its document not dropped) and keeps only hashes seen twice with their first
position. So the kept copy is the first that survives everything else, and which one it is depends
on the corpus order only, never on sharding or worker count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .ngrams import tokens

MIN_DOCUMENT_WORDS = 8  # shorter documents are never judged copied: an answer may repeat them


@dataclass(frozen=True)
class FilterSettings:
    max_instruction_chars: int | None = 4096
    max_response_chars: int | None = 4096
    drop_copies: bool = True  # instruction_is_document and response_copies_document
    min_groundedness: float | None = None
    dedupe: bool = False


class DocumentView:
    """The normalised words of one document, computed once for all its pairs."""

    def __init__(self, text: str, words: list[str] | None = None) -> None:
        self.words = tokens(text) if words is None else words  # `words`: tokens(text), known already
        self.joined = " ".join(self.words)
        self._set: set[str] | None = None

    @property
    def word_set(self) -> set[str]:
        if self._set is None:
            self._set = set(self.words)
        return self._set


def groundedness(response: str, doc: DocumentView) -> float:
    """The share of the response's words that occur in the document (1.0 for no words)."""
    words = tokens(response)
    if not words:
        return 1.0
    vocab = doc.word_set
    return sum(w in vocab for w in words) / len(words)


def _contains_document(text: str, doc: DocumentView) -> bool:
    if len(doc.words) < MIN_DOCUMENT_WORDS or len(text) < len(doc.joined):
        return False
    return doc.joined in " ".join(tokens(text))


def pair_problem(instruction: str, response: str, doc: DocumentView, settings: FilterSettings) -> str | None:
    """Why the pair is dropped by the per-pair filters, or None if it is kept."""
    if not instruction.strip():
        return "empty_instruction"
    if not response.strip():
        return "empty_response"
    if settings.max_instruction_chars is not None and len(instruction) > settings.max_instruction_chars:
        return "instruction_too_long"
    if settings.max_response_chars is not None and len(response) > settings.max_response_chars:
        return "response_too_long"
    if settings.drop_copies:
        if _contains_document(instruction, doc):
            return "instruction_is_document"
        if _contains_document(response, doc):
            return "response_copies_document"
    if settings.min_groundedness is not None and groundedness(response, doc) < settings.min_groundedness:
        return "ungrounded"
    return None


def pair_key(instruction: str, response: str) -> int:
    """The 64-bit hash of a pair's normalised instruction + response (duplicates share it)."""
    blob = " ".join(tokens(instruction)) + "\x1f" + " ".join(tokens(response))
    return int.from_bytes(hashlib.blake2b(blob.encode("utf-8"), digest_size=8).digest(), "little")


def position(shard: int, row: int, pair: int) -> int:
    """One sortable number for (shard, row, pair): 24, 24 and 16 bits."""
    if not (shard < 1 << 24 and row < 1 << 24 and pair < 1 << 16):
        raise ValueError(f"position out of range: shard {shard}, row {row}, pair {pair}")
    return (shard << 40) | (row << 16) | pair


@dataclass
class DuplicateTable:
    """Hashes seen more than once, sorted, with the position of their first occurrence."""

    keys: np.ndarray
    first: np.ndarray

    @classmethod
    def build(cls, items: Iterable[tuple[int, int]]) -> DuplicateTable:
        """From (position, key) of every kept pair, in any order."""
        chunks_p: list[np.ndarray] = []
        chunks_k: list[np.ndarray] = []
        buf_p: list[int] = []
        buf_k: list[int] = []
        for pos, key in items:
            buf_p.append(pos)
            buf_k.append(key)
            if len(buf_p) >= 1 << 16:  # numpy chunks: 16 bytes per pair, not ~100 as Python ints
                chunks_p.append(np.array(buf_p, dtype=np.uint64))
                chunks_k.append(np.array(buf_k, dtype=np.uint64))
                buf_p, buf_k = [], []
        chunks_p.append(np.array(buf_p, dtype=np.uint64))
        chunks_k.append(np.array(buf_k, dtype=np.uint64))
        positions, keys = np.concatenate(chunks_p), np.concatenate(chunks_k)
        order = np.lexsort((positions, keys))  # by key, then by position: the first copy leads
        keys, positions = keys[order], positions[order]
        if not len(keys):
            return cls(keys, positions)
        lead = np.ones(len(keys), dtype=bool)
        lead[1:] = keys[1:] != keys[:-1]
        repeated = np.zeros(len(keys), dtype=bool)
        repeated[:-1] = keys[1:] == keys[:-1]
        keep = lead & repeated
        return cls(keys[keep], positions[keep])

    def is_duplicate(self, key: int, pos: int) -> bool:
        """Whether the pair at `pos` with `key` repeats one seen earlier."""
        if not len(self.keys):
            return False
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        return i < len(self.keys) and int(self.keys[i]) == key and int(self.first[i]) != pos

    def __len__(self) -> int:
        return len(self.keys)
