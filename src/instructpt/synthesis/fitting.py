"""Long documents: fit each document into the prompt budget by splitting it at paragraph, line,
sentence or space boundaries (linear in its length), truncating or skipping it (`--long-docs`)."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..records import Document, Reject, entry_id
from ..tokenization import Tokenizer
from .format import CON_CLOSE, reading_material

if TYPE_CHECKING:
    from .rounds import BatchResult


# Boundaries to cut long documents at, best first.
_PARAGRAPH = re.compile(r"\n\s*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")
_BOUNDARIES = (_PARAGRAPH, _LINE, _SENTENCE, _SPACE)


# Long documents are handled in bounded character windows, never tokenized whole (a 50 MB line
# would otherwise cost minutes and gigabytes per piece). A window starts at this many characters
# per token of budget (real text averages 3-5) and doubles until it holds clearly more than a
# budget of tokens; "clearly" is this margin of tokens, far more than a window's cut can change
# the tokens before it.
_WINDOW_CHARS_PER_TOKEN = 8
_MARGIN_TOKENS = 64
# Documents longer than this many window sizes are first measured by a prefix window alone.
_PROBE_WINDOWS = 4
# Pieces of one long document tokenized at a time (memory is bounded by this, not the document).
_PIECE_BATCH = 64
# With token offsets, a long document is tokenized once as a stream of chunks of this many
# characters (tokenizers slow down on much longer strings), overlapping by this many; a piece's
# first characters (a probe, less its last few, which the closing tag may change) align it.
_CHUNK_CHARS = 32_768
_CHUNK_OVERLAP = 1024
_PROBE_CHARS = 64
_PROBE_MAX_CHARS = 4096
_PROBE_TAIL_TOKENS = 8


def _window_chars(budget: int) -> int:
    return max(1024, _WINDOW_CHARS_PER_TOKEN * budget)


def _over_budget(text: str, tokenizer: Tokenizer, budget: int) -> int | None:
    """For a very long `text`: the prompt tokens of a prefix window when they already prove the
    document does not fit (more than budget + margin), else None (the caller tokenizes it all)."""
    probe = _PROBE_WINDOWS * _window_chars(budget)
    if len(text) <= probe:
        return None
    n = len(tokenizer.encode(reading_material(text[:probe])))
    return n if n > budget + _MARGIN_TOKENS else None


def fit_documents(
    docs: Sequence[Document],
    tokenizer: Tokenizer,
    budget: int,
    mode: str,
    result: BatchResult,
) -> list[tuple[Document, list[int]]]:
    """Each document with its reading-material ids, long ones split/truncated/skipped.

    Entries get ids by `records.entry_id`: a whole document keeps its id (unless it ends like a
    part's), part k of a split one is `<id>#<k>`. Work and memory for a long document are linear
    in its length and bounded by a window, whatever `mode`."""
    proven = {i: n for i, d in enumerate(docs) if (n := _over_budget(d.text, tokenizer, budget)) is not None}
    measured = [i for i in range(len(docs)) if i not in proven]
    encoded = dict(zip(measured, tokenizer.encode_batch([reading_material(docs[i].text) for i in measured])))
    fitted: list[tuple[Document, list[int]]] = []
    counts = result.counts
    for i, doc in enumerate(docs):
        ids = encoded.get(i)
        if ids is not None and len(ids) <= budget:
            fitted.append((_replace(doc, doc.text, doc.truncated, entry_id(doc.id)), ids))
            continue
        if mode == "skip":
            counts.add("long_docs_skipped")
            n = f"{len(ids)}" if ids is not None else f"more than {proven[i]}"
            detail = f"{n} prompt tokens > budget {budget}"
            result.rejects.append(Reject(doc.source, "too_long", detail, doc.id))
            continue
        pieces = _split(doc.text, tokenizer, budget, first_only=mode == "truncate")
        if mode == "truncate":
            counts.add("long_docs_truncated")
            piece, p_ids = pieces[0]
            p_ids = p_ids if p_ids is not None else tokenizer.encode(reading_material(piece))
            fitted.append((_replace(doc, piece, True, entry_id(doc.id)), p_ids))
            continue
        counts.add("long_docs_split")
        counts.add("long_doc_parts", len(pieces))
        for start in range(0, len(pieces), _PIECE_BATCH):  # pieces the split did not tokenize as such
            batch = pieces[start : start + _PIECE_BATCH]
            missing = iter(tokenizer.encode_batch([reading_material(p) for p, ids in batch if ids is None]))
            batch_ids = [ids if ids is not None else _shared(next(missing)) for _, ids in batch]
            for k, ((piece, _), p_ids) in enumerate(zip(batch, batch_ids), start):
                part = Document(entry_id(doc.id, k), piece, doc.source, doc_id=doc.doc_id, part=k,
                                n_parts=len(pieces))  # fmt: skip
                fitted.append((part, p_ids))
    return fitted


_INTS: list[int] = []  # one int object per token id, shared by every list of ids made here


def _shared(ids: list[int]) -> list[int]:
    """`ids` with shared int objects: a long document's parts hold millions of ids at once, and a
    fresh int per id costs 36 bytes where a shared one costs the list's 8."""
    if ids and (top := max(ids)) >= len(_INTS):
        _INTS.extend(range(len(_INTS), top + 1))
    return list(map(_INTS.__getitem__, ids))


def _replace(doc: Document, text: str, truncated: bool, new_id: str | None = None) -> Document:
    if text is doc.text and truncated == doc.truncated and new_id in (None, doc.id):
        return doc
    return Document(new_id or doc.id, text, doc.source, doc.doc_id, doc.part, doc.n_parts, truncated)


def _longest_fitting_prefix(rest: str, fits, known_too_long: int | None = None) -> int:
    """The binary search for the longest prefix of `rest` that fits. Prefixes of at least
    `known_too_long` characters are taken not to fit without tokenizing them: the search visits
    exactly the lengths it would visit over the whole of `rest`, but tokenizes only short ones."""
    lo, hi = 0, len(rest)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if (known_too_long is None or mid < known_too_long) and fits(rest[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


_NON_SPACE = re.compile(r"\S")


def split_to_fit(text: str, tokenizer: Tokenizer, budget: int, first_only: bool = False) -> list[str]:
    """Cut `text` into pieces whose reading material fits `budget` tokens (see `_split`)."""
    return [piece for piece, _ in _split(text, tokenizer, budget, first_only)]


def _split(text: str, tokenizer: Tokenizer, budget: int, first_only: bool = False
           ) -> list[tuple[str, list[int] | None]]:  # fmt: skip
    """Cut `text` into pieces whose reading material fits `budget` tokens.

    Each piece is the longest prefix that fits, pulled back to the last paragraph
    break, else line break, else sentence end, else whitespace in its second half.

    With token offsets, the text is tokenized once, in chunks, as a stream of token starts
    (`_OffsetStream`); where the budget runs out in a piece's own tokens is read off that
    stream (aligned with a short probe of the piece), the boundary cut is taken from there and
    only the piece to emit is tokenized on its own, to check it fits (stepping back when it
    does not) and to give its ids. About two characters are tokenized per character of text.
    Without offsets, a window that holds more than budget + margin tokens bounds a binary
    search, exactly as tokenizing the whole rest would. Work is linear in `len(text)`; memory
    is a chunk plus the pieces. Each piece comes with its reading-material ids when they were
    computed on the way.
    """
    last: list = [None, None]  # the last text measured and its ids

    def n_tokens(piece: str) -> int:
        if piece != last[0]:
            last[:] = piece, _shared(tokenizer.encode(reading_material(piece)))
        return len(last[1])

    def add(piece: str) -> None:
        pieces.append((piece, last[1] if piece == last[0] else None))

    def fits(piece: str) -> bool:
        return n_tokens(piece) <= budget

    pieces: list[tuple[str, list[int] | None]] = []
    first = _NON_SPACE.search(text)
    start = first.start() if first else len(text)
    end = len(text.rstrip())
    lead = len(reading_material("")) - len(f" {CON_CLOSE}\n\n")  # characters before the text
    overhead = len(tokenizer.encode(reading_material("")))
    target = max(0, budget - overhead - 2)  # the own token where the budget runs out, about
    with_offsets = tokenizer.char_offsets("") is not None
    stream = _OffsetStream(text, end, tokenizer) if with_offsets else None
    size = _window_chars(budget)
    while start < end:
        if stream is not None:
            lo = _estimate_cut(text, start, end, tokenizer, stream, budget, target, lead, fits)
            if lo is None:  # the rest, measured on its own, fits
                add(text[start:end])
                break
            if lo == 0:  # no estimate from the stream: the piece's own window, as before
                while True:  # offsets of a window's tokens, grown until it holds budget + margin
                    stop = min(end, start + size)
                    offsets = tokenizer.char_offsets(reading_material(text[start:stop])) or []
                    if stop == end or len(offsets) > budget + _MARGIN_TOKENS:
                        break
                    size *= 2
                if stop == end and len(offsets) <= budget:
                    add(text[start:end])
                    break
                lo = min(end - start, max(1, offsets[target][0] - lead))
                size = lo + lo // 4 + 512  # the next window: a bit more than a budget of tokens took here
            cut = _boundary_cut(text, start, lo, fits, budget)
        else:  # no offsets: measure, then search
            while start + size < end and n_tokens(text[start : start + size]) <= budget + _MARGIN_TOKENS:
                size *= 2
            if start + size >= end:
                rest = text[start:end]
                if fits(rest):
                    add(rest)
                    break
                lo = _longest_fitting_prefix(rest, fits)
            else:
                lo = _longest_fitting_prefix(_Prefixes(text, start, end), fits, known_too_long=size)
            if lo == 0:
                raise UsageError(f"the prompt budget of {budget} tokens cannot hold any text")
            cut = lo
            for pattern in _BOUNDARIES:
                ends = [m.start() - start for m in pattern.finditer(text, start + lo // 2, start + lo)]
                if ends and text[start : start + ends[-1]].strip() and fits(text[start : start + ends[-1]]):
                    cut = ends[-1]
                    break
            size = lo + lo // 4 + 512  # the next window: a bit more than a budget of tokens took here
        add(text[start : start + cut].strip())
        if first_only:
            break
        following = _NON_SPACE.search(text, start + cut, end)
        start = following.start() if following else end
    return [(p, ids) for p, ids in pieces if p]


def _boundary_cut(text: str, start: int, lo: int, fits, budget: int) -> int:
    """Where to end the piece at `start` given `lo`, an estimate of its longest fitting prefix:
    the last boundary of the best kind in `[lo // 2, lo)`, else `lo`; the piece, stripped as it
    is emitted, is checked to fit. Only when a boundary piece does not fit is `lo` itself
    checked: if it fits, the next kind of boundary is tried, else `lo` steps back by 2% and the
    search starts again (the order of the old code, which checked `lo` first)."""
    while True:
        lo_fits = None
        for pattern in _BOUNDARIES:
            ends = [m.start() - start for m in pattern.finditer(text, start + lo // 2, start + lo)]
            if not ends or not (piece := text[start : start + ends[-1]].strip()):
                continue
            if fits(piece):
                return ends[-1]
            if lo_fits is None:
                lo_fits = fits(text[start : start + lo].strip())
            if not lo_fits:
                break
        else:
            if lo_fits or (lo_fits is None and fits(text[start : start + lo].strip())):
                return lo
        if lo <= 1:
            raise UsageError(f"the prompt budget of {budget} tokens cannot hold any text")
        lo = max(1, lo - max(1, lo // 50))


def _estimate_cut(text: str, start: int, end: int, tokenizer: Tokenizer, stream: _OffsetStream,
                  budget: int, target: int, lead: int, fits) -> int | None:  # fmt: skip
    """The start (relative to `start`) of token `target` of the piece's own reading material,
    read off the token stream: the piece's first characters are tokenized on their own (a
    probe, longer while it finds nothing), and the first token start after its first word that
    the stream shares aligns the two (tokenization is local: away from the piece's start both
    cut the text alike). None when the rest of the text, measured on its own, fits; 0 when
    there is no estimate (the caller then tokenizes the piece's own window)."""
    chars = _PROBE_CHARS
    while True:
        probe_end = min(end, start + chars)
        whole = probe_end == end
        probe = tokenizer.char_offsets(reading_material(text[start:probe_end])) or []
        if whole and len(probe) <= budget:
            return None if fits(text[start:end]) else 0
        reliable = len(probe) if whole else len(probe) - _PROBE_TAIL_TOKENS  # the closing tag may merge
        if target < reliable:
            return min(end - start, max(1, probe[target][0] - lead))
        for k in range(max(0, reliable)):
            q = probe[k][0] - lead  # the probe token's start, relative to `start`
            if q <= 0 or (i := stream.index(start + q)) is None:
                continue
            j = i + target - k  # the stream's token where the budget runs out
            stream.cover(j + _MARGIN_TOKENS)
            if j + _MARGIN_TOKENS >= len(stream.starts) and stream.covered == end:  # the rest may fit
                if fits(text[start:end]):
                    return None
                if j >= len(stream.starts):
                    return 0
            return min(end - start, max(1, stream.starts[j] - start))
        if whole or chars >= _PROBE_MAX_CHARS:
            return 0
        chars *= 4


class _OffsetStream:
    """Start positions in `text` of the tokens of the text, from a position on: the text is
    tokenized in chunks of `_CHUNK_CHARS` characters that overlap by `_CHUNK_OVERLAP`, spliced at
    a token start both chunks share in the second half of the overlap. Tokenization is local,
    so away from its first words these are the token starts of any window of the text."""

    def __init__(self, text: str, end: int, tokenizer: Tokenizer) -> None:
        self.text, self.end, self.tokenizer = text, end, tokenizer
        self.starts: list[int] = []
        self.covered = 0  # characters tokenized so far (the end of the last chunk)

    def index(self, pos: int) -> int | None:
        """The index in `starts` of the first token starting at `pos`; None if none does."""
        if not self.starts or pos < self.starts[0] or pos > self.covered:  # (re)start before `pos`
            self.starts, self.covered = [], max(0, pos - _CHUNK_OVERLAP)
        while self.covered < self.end and (not self.starts or self.starts[-1] < pos + _CHUNK_OVERLAP):
            self._extend()
        passed = bisect_left(self.starts, pos - _CHUNK_OVERLAP)
        if passed > 4096:  # forget the tokens the pieces have passed
            del self.starts[:passed]
        i = bisect_left(self.starts, pos)
        return i if i < len(self.starts) and self.starts[i] == pos else None

    def cover(self, n: int) -> None:
        """Tokenize on until the stream holds `n` tokens or reaches the end."""
        while len(self.starts) < n and self.covered < self.end:
            self._extend()

    def _extend(self) -> None:
        b0 = max(0, self.covered - _CHUNK_OVERLAP) if self.starts else self.covered
        b1 = min(self.end, b0 + _CHUNK_CHARS)
        new = [b0 + a for a, _ in self.tokenizer.char_offsets(self.text[b0:b1]) or []]
        self.covered = b1
        if not self.starts:
            self.starts = new
            return
        splice = b0 + _CHUNK_OVERLAP // 2
        k = bisect_left(new, splice)
        for m in range(k, len(new)):
            i = bisect_left(self.starts, new[m])
            if i < len(self.starts) and self.starts[i] == new[m]:
                k = m
                break
        self.starts[bisect_left(self.starts, new[k] if k < len(new) else b1) :] = new[k:]


class _Prefixes:
    """`text[start:end]` for `_longest_fitting_prefix` without copying it: only its length and
    its (short) prefixes are ever taken."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text, self.start, self.end = text, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, key: slice) -> str:
        assert key.start is None and key.step is None
        return self.text[self.start : self.start + min(key.stop, self.end - self.start)]
