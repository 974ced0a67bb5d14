"""The synthesizer's wire format (docs/method.md §2): prompts in, pairs out.

This module owns every string the instruction synthesizer was trained on. It knows
nothing about tokenizers, engines or files; it turns documents into prompt text and
generated text into `Pair`s, and it never raises on model output: every fragment it
drops has a counted reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

# Literal strings of the format. `BOS`/`EOS` are written as *text*: prompts are
# tokenized without adding special tokens, so the leading "<s>" is the one BOS.
BOS = "<s>"
EOS = "</s>"
CON_OPEN = "<CON>"
CON_CLOSE = "</CON>"
QUE = "<QUE>"
ANS = "<ANS>"
END = "</END>"
PAIR_SEPARATOR = "\n\n"

# Conventions inside pairs that templating relies on (docs/method.md §2).
OPTIONS_MARKER = "\nOptions:\n- "
COT_MARKER = "\nLet's think step by step."
COT_ANSWER_MARKER = "\nTherefore, the answer is "


class Pair(NamedTuple):
    """One instruction-response pair written by the synthesizer.

    An immutable tuple of two strings: built in C by the parser (a frozen dataclass's Python
    `__init__` cost ~0.3 µs a pair). Still tracked by the garbage collector (CPython untracks
    only exact tuples), which is most of what keeps parsing from outrunning the reference
    parser (BENCHMARKS.md §2b).
    """

    instruction: str
    response: str


# Reasons a fragment of a generation is not kept as a pair (keys of `ParseResult.dropped`).
DROP_UNFINISHED = "unfinished_last_pair"
DROP_NO_ANS = "missing_ans"
DROP_MULTIPLE_ANS = "multiple_ans"
DROP_NO_QUE = "missing_que"
DROP_MULTIPLE_QUE = "multiple_que"
DROP_EMPTY_RESPONSE = "empty_response"
DROP_DUPLICATE = "duplicate_instruction"
DROP_REASONS = (
    DROP_UNFINISHED,
    DROP_NO_ANS,
    DROP_MULTIPLE_ANS,
    DROP_NO_QUE,
    DROP_MULTIPLE_QUE,
    DROP_EMPTY_RESPONSE,
    DROP_DUPLICATE,
)


class ParseResult:
    """Pairs kept from one generation, and why every other fragment was dropped.

    `dropped` (reason -> count) is a `Counter`; most generations drop nothing, and for them it
    is made when first read (one object fewer per generation for the garbage collector).
    """

    __slots__ = ("pairs", "_dropped")

    def __init__(self, pairs: list[Pair], dropped: Counter[str] | None = None) -> None:
        self.pairs = pairs
        self._dropped = dropped

    @property
    def dropped(self) -> Counter[str]:
        if self._dropped is None:
            self._dropped = Counter()
        return self._dropped

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParseResult):
            return NotImplemented
        return self.pairs == other.pairs and self.dropped == other.dropped

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return f"ParseResult(pairs={self.pairs!r}, dropped={self.dropped!r})"


def reading_material(text: str) -> str:
    """One document as the synthesizer reads it: `<s> <CON> text </CON>\\n\\n`."""
    return f"{BOS} {CON_OPEN} {text} {CON_CLOSE}\n\n"


def build_prompt(text: str, context: Iterable[tuple[str, Iterable[Pair]]] = ()) -> str:
    """The prompt for `text`, optionally preceded by finished examples (docs/method.md §3).

    `context` holds earlier (document text, pairs) examples of the same chain, oldest
    first. With no context this is exactly `reading_material(text)`.
    """
    parts = [serialize_example(ctx_text, ctx_pairs) for ctx_text, ctx_pairs in context]
    parts.append(reading_material(text))
    return "".join(parts)


def serialize_pair(pair: Pair) -> str:
    return f"{QUE} {pair.instruction} {ANS} {pair.response} {END}"


def serialize_pairs(pairs: Iterable[Pair]) -> str:
    """Pairs as the synthesizer writes them (its generation, without the final EOS)."""
    return PAIR_SEPARATOR.join(serialize_pair(p) for p in pairs)


def serialize_example(text: str, pairs: Iterable[Pair]) -> str:
    """A finished example used as context: reading material + pairs + `</s>`."""
    return reading_material(text) + serialize_pairs(pairs) + EOS


# A Pair built in C, without the Python-level `Pair.__new__` call.
_new_tuple = tuple.__new__


def _count(dropped: Counter[str] | None, reason: str) -> Counter[str]:
    """`dropped` with one more `reason` (made on the first drop of a generation)."""
    if dropped is None:
        dropped = Counter()
    dropped[reason] += 1
    return dropped


def parse_generation(generation: str) -> ParseResult:
    """Parse generated text into pairs (docs/method.md §2), counting every dropped fragment.

    One `partition` finds the one `<ANS>` of a fragment and another its `<QUE>`; the common
    path allocates nothing beyond the kept pairs (tuples built in C; no `Counter` unless a
    fragment is dropped). BENCHMARKS.md §2b, benchmarks/parse_speed.py.
    """
    dropped: Counter[str] | None = None
    body = generation.rstrip()
    # The generation may still carry the EOS text (engines that don't skip it).
    while body.endswith(EOS):
        body = body[: -len(EOS)].rstrip()
    fragments = body.split(END)
    if fragments.pop().strip():  # text after the last </END>: empty iff the generation is finished
        dropped = _count(dropped, DROP_UNFINISHED)
    pairs: list[Pair] = []
    append = pairs.append
    seen: set[str] = set()
    remember = seen.add
    for fragment in fragments:
        before, has_ans, after = fragment.partition(ANS)
        if not has_ans:
            dropped = _count(dropped, DROP_NO_ANS)
            continue
        if ANS in after:
            dropped = _count(dropped, DROP_MULTIPLE_ANS)
            continue
        # `<QUE>` first (only whitespace before it); the instruction is what follows it
        head, has_que, instruction = before.partition(QUE)
        if not has_que or (head and not head.isspace()):
            dropped = _count(dropped, DROP_NO_QUE)
            continue
        if QUE in instruction:  # an abandoned question followed by another: keep neither
            dropped = _count(dropped, DROP_MULTIPLE_QUE)
            continue
        instruction = instruction.strip()
        response = after.strip()
        if not response:
            dropped = _count(dropped, DROP_EMPTY_RESPONSE)
            continue
        key = instruction.casefold()
        if key in seen:
            dropped = _count(dropped, DROP_DUPLICATE)
            continue
        remember(key)
        append(_new_tuple(Pair, (instruction, response)))
    return ParseResult(pairs, dropped)


def parse_pairs(generation: str) -> list[Pair]:
    """The pairs in a generation (docs/method.md §2); never raises."""
    return parse_generation(generation).pairs
