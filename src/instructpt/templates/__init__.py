"""The template library for templify (SPEC §4), kept as data: one module per family.

Every pattern is a `str.format` string. `validate()` runs at import and refuses a
library in which any pattern uses a placeholder its family does not define, misses
one it must use, or where a family is smaller than the method needs.
"""

from __future__ import annotations

import string

from . import cot, dialog, fewshot, numbering, options, qa, reading, separators

# family name -> (patterns, placeholders each must use exactly once, minimum size)
FAMILIES: dict[str, tuple[tuple[str, ...], frozenset[str], int]] = {
    "qa": (qa.PATTERNS, frozenset({"question", "answer"}), 50),
    "options": (options.PATTERNS, frozenset({"question", "options", "answer"}), 60),
    "cot": (cot.PATTERNS, frozenset({"question", "rationale", "answer"}), 60),
    "options_cot": (cot.OPTIONS_PATTERNS, frozenset({"question", "options", "rationale", "answer"}), 20),
    "reading": (reading.READING_PROMPTS, frozenset({"document"}), 40),
    "bridge": (reading.BRIDGES, frozenset(), 30),
    "inversion": (reading.INVERSIONS, frozenset({"pairs", "document"}), 30),
    "dialog_turn": (dialog.TURN_FORMATS, frozenset({"speaker", "text"}), 5),
    "dialog_intro": (dialog.INTROS, frozenset(), 10),
    "next_turn": (dialog.NEXT_TURN_PROMPTS, frozenset(), 10),
    "numbered_questions_header": (numbering.QUESTION_HEADERS, frozenset(), 10),
    "numbered_answers_header": (numbering.ANSWER_HEADERS, frozenset(), 10),
    "fewshot_intro": (fewshot.INTROS, frozenset(), 10),
    "fewshot_test": (fewshot.TEST_PROMPTS, frozenset(), 10),
    "none_of_the_above": (options.NONE_OF_THE_ABOVE, frozenset(), 10),
    "example_separator": (separators.EXAMPLE_SEPARATORS, frozenset(), 8),
}


class TemplateError(ValueError):
    """The template library is malformed."""


def placeholders(pattern: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]


def validate() -> None:
    for family, (patterns, needed, minimum) in FAMILIES.items():
        if len(patterns) < minimum:
            raise TemplateError(f"family {family!r} has {len(patterns)} patterns, needs {minimum}")
        if len(set(patterns)) != len(patterns):
            raise TemplateError(f"family {family!r} has duplicate patterns")
        for pattern in patterns:
            fields = placeholders(pattern)
            if sorted(fields) != sorted(needed):
                raise TemplateError(
                    f"{family} pattern {pattern!r} uses {sorted(fields)}, "
                    f"expected each of {sorted(needed)} once"
                )
    for q_label, a_label in numbering.STYLES:
        if placeholders(q_label) != ["n"] or placeholders(a_label) != ["n"]:
            raise TemplateError(f"numbering style {(q_label, a_label)!r} must use {{n}} once each")
    if len(numbering.STYLES) < 20:
        raise TemplateError("numbering needs at least 20 styles")
    if len(dialog.SPEAKERS) < 20:
        raise TemplateError("dialog needs at least 20 speaker styles")
    kinds = {"upper", "lower", "number", "roman", "none"}
    for kind, item, answer in options.ITEM_STYLES:
        want = {"option"} if kind == "none" else {"label", "option"}
        if kind not in kinds or set(placeholders(item)) != want or not set(placeholders(answer)) <= want:
            raise TemplateError(f"option item style {(kind, item, answer)!r} is malformed")


validate()
