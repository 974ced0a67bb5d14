"""The synthesizer's wire format (docs/method.md §2): prompts in, pairs out.

This module owns every string the instruction synthesizer was trained on. It knows
nothing about tokenizers, engines or files; it turns documents into prompt text and
generated text into `Pair`s, and it never raises on model output: every fragment it
drops has a counted reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Pair:
    """One instruction-response pair written by the synthesizer."""

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


@dataclass(slots=True)
class ParseResult:
    """Pairs kept from one generation, and why every other fragment was dropped."""

    pairs: list[Pair]
    dropped: Counter[str] = field(default_factory=Counter)


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


# An empty Counter without running Counter.__init__ (a Python-level call that costs ~1 us,
# a tenth of parsing a 5-pair generation): dict.__new__ already makes it empty and usable.
_empty_counter = Counter.__new__


def parse_generation(generation: str) -> ParseResult:
    """Parse generated text into pairs (docs/method.md §2), counting every dropped fragment.

    One `partition` finds the one `<ANS>` of a fragment and the common path allocates nothing
    beyond the kept pairs: 0.8-0.9x the speed of the reference parser, which counts nothing
    and returns plain dicts (the rest is the garbage collector tracking our typed results;
    BENCHMARKS.md, benchmarks/parse_speed.py).
    """
    dropped: Counter[str] = _empty_counter(Counter)
    body = generation.rstrip()
    # The generation may still carry the EOS text (engines that don't skip it).
    while body.endswith(EOS):
        body = body[: -len(EOS)].rstrip()
    fragments = body.split(END)
    if fragments.pop().strip():  # text after the last </END>: empty iff the generation is finished
        dropped[DROP_UNFINISHED] = 1
    pairs: list[Pair] = []
    seen: set[str] = set()
    for fragment in fragments:
        before, has_ans, after = fragment.partition(ANS)
        if not has_ans:
            dropped[DROP_NO_ANS] += 1
            continue
        if ANS in after:
            dropped[DROP_MULTIPLE_ANS] += 1
            continue
        before = before.strip()
        if not before.startswith(QUE):
            dropped[DROP_NO_QUE] += 1
            continue
        instruction = before[len(QUE) :].strip()
        if QUE in instruction:  # an abandoned question followed by another: keep neither
            dropped[DROP_MULTIPLE_QUE] += 1
            continue
        response = after.strip()
        if not response:
            dropped[DROP_EMPTY_RESPONSE] += 1
            continue
        key = instruction.casefold()
        if key in seen:
            dropped[DROP_DUPLICATE] += 1
            continue
        seen.add(key)
        pairs.append(Pair(instruction, response))
    return ParseResult(pairs, dropped)


def parse_pairs(generation: str) -> list[Pair]:
    """The pairs in a generation (docs/method.md §2); never raises."""
    return parse_generation(generation).pairs
