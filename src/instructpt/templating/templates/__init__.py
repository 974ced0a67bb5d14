"""The template library for templify (docs/method.md §4), kept as data: one module per family.

Every pattern is a `str.format` string. `validate()` runs at import and refuses a
library in which any pattern uses a placeholder its family does not define, misses
one it must use, or where a family is smaller than the method needs.

`LIBRARY` names every list templify draws from; a template id is `"family/index"` into it
(`resolve("qa/17")`), and each augmented text records the ids it used.
"""

from __future__ import annotations

import string
from typing import Any

from . import cot, dialog, fewshot, numbering, options, qa, reading, separators

_Q_A = frozenset({"question", "answer"})

# family name -> (patterns, placeholders each must use exactly once (or a tuple of allowed
# sets), minimum size). The minimum sizes of the four pair-kind families and of the option
# layouts are the reference implementation's counts (docs/method.md §4).
FAMILIES: dict[str, tuple[tuple[str, ...], Any, int]] = {
    "qa": (qa.PATTERNS, _Q_A, 80),
    "options": (options.PATTERNS, (frozenset({"question", "options", "answer"}), _Q_A), 48),
    "cot": (cot.PATTERNS, frozenset({"question", "rationale", "answer"}), 210),
    "options_cot": (cot.OPTIONS_PATTERNS, frozenset({"question", "options", "rationale", "answer"}), 240),
    "header": (options.HEADERS, frozenset(), 16),
    "reading": (reading.READING_PROMPTS, frozenset({"document"}), 40),
    "bridge": (reading.BRIDGES, frozenset(), 30),
    "inversion": (reading.INVERSIONS, frozenset({"pairs", "document"}), 30),
    "dialog_turn": (dialog.TURN_FORMATS, frozenset({"speaker", "text"}), 5),
    "dialog_intro": (dialog.INTROS, frozenset(), 10),
    "next_turn": (dialog.NEXT_TURN_PROMPTS, frozenset(), 10),
    "numbered_questions_header": (numbering.QUESTION_HEADERS, frozenset(), 10),
    "numbered_answers_header": (numbering.ANSWER_HEADERS, frozenset(), 10),
    "numbered_preview": (numbering.PREVIEW_HEADERS, frozenset(), 10),
    "fewshot_intro": (fewshot.INTROS, frozenset(), 10),
    "fewshot_test": (fewshot.TEST_PROMPTS, frozenset(), 10),
    "none_of_the_above": (options.NONE_OF_THE_ABOVE, frozenset(), 10),
    "example_separator": (separators.EXAMPLE_SEPARATORS, frozenset(), 8),
}

# Every list templify draws from, by the family name used in template ids.
LIBRARY: dict[str, tuple[Any, ...]] = {
    **{name: patterns for name, (patterns, _, _) in FAMILIES.items()},
    "opt_style": options.ITEM_STYLES,
    "speakers": dialog.SPEAKERS,
    "numbering": numbering.STYLES,
    "fewshot_inline": fewshot.INLINE,
}

# The families whose pattern is drawn once per text and shared by all its pairs of that kind.
PER_TEXT_FAMILIES = ("qa", "options", "cot", "options_cot", "opt_style", "header")


class TemplateError(ValueError):
    """The template library is malformed."""


def resolve(template_id: str) -> Any:
    """The template a `"family/index"` id names (KeyError/IndexError if there is none)."""
    family, _, index = template_id.rpartition("/")
    return LIBRARY[family][int(index)]


def placeholders(pattern: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]


def validate() -> None:
    for family, (patterns, needed, minimum) in FAMILIES.items():
        if len(patterns) < minimum:
            raise TemplateError(f"family {family!r} has {len(patterns)} patterns, needs {minimum}")
        if len(set(patterns)) != len(patterns):
            raise TemplateError(f"family {family!r} has duplicate patterns")
        allowed = (needed,) if isinstance(needed, frozenset) else tuple(needed)
        for pattern in patterns:
            fields = placeholders(pattern)
            if not any(sorted(fields) == sorted(option) for option in allowed):
                raise TemplateError(
                    f"{family} pattern {pattern!r} uses {sorted(fields)}, "
                    f"expected each of {' or '.join(str(sorted(o)) for o in allowed)} once"
                )
    if not options.WITH_OPTIONS or any("{options}" not in options.PATTERNS[i] for i in options.WITH_OPTIONS):
        raise TemplateError("options.WITH_OPTIONS must index the patterns that show the option list")
    if sum("{options}" in p for p in options.PATTERNS) != len(options.WITH_OPTIONS):
        raise TemplateError("options.WITH_OPTIONS misses a pattern that shows the option list")
    for q_label, a_label in numbering.STYLES:
        if placeholders(q_label) != ["n"] or placeholders(a_label) != ["n"]:
            raise TemplateError(f"numbering style {(q_label, a_label)!r} must use {{n}} once each")
    if len(numbering.STYLES) < 20:
        raise TemplateError("numbering needs at least 20 styles")
    if len(dialog.SPEAKERS) < 20:
        raise TemplateError("dialog needs at least 20 speaker styles")
    kinds = {"upper", "lower", "number", "roman", "ROMAN", "none"}
    if len(options.ITEM_STYLES) < 87 or len(set(options.ITEM_STYLES)) != len(options.ITEM_STYLES):
        raise TemplateError("option item styles must be at least 87 distinct styles")
    for kind, item, joiner, answer in options.ITEM_STYLES:
        want = {"option"} if kind == "none" else {"label", "option"}
        inline_ok = joiner != "" and joiner.strip(" ;,|/") == ""
        fields = set(placeholders(answer))
        if (
            kind not in kinds
            or set(placeholders(item)) != want
            or not fields
            or not fields <= want
            or not (joiner == "\n" or inline_ok)
        ):
            raise TemplateError(f"option item style {(kind, item, joiner, answer)!r} is malformed")
    if len(fewshot.INLINE) < 10:
        raise TemplateError("fewshot needs at least 10 inline (answer-first) layouts")
    for intro, example, why, test in fewshot.INLINE:
        q_a = ["question", "answer"]
        if (
            placeholders(intro)
            or placeholders(example) != q_a
            or placeholders(test) != q_a
            or (placeholders(why) != ["rationale"])
        ):
            raise TemplateError(f"inline few-shot layout {(intro, example, why, test)!r} is malformed")


validate()
