"""What templating sees in a pair of the wire format: its kind (free, options, CoT, options with
CoT) and parts, or the reason it cannot be rendered faithfully (docs/templify.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ..templating.templates import options
from .format import COT_ANSWER_MARKER, COT_MARKER, OPTIONS_MARKER, Pair

_COT_TAIL = COT_MARKER  # "\nLet's think step by step."
_LIST_RELATIVE = frozenset(options.LIST_RELATIVE_MARKERS)
_UNANSWERABLE = frozenset(options.UNANSWERABLE_MARKERS)


# Reasons classify() gives for a pair it cannot render faithfully (docs/templify.md).
DROP_COT = "cot_without_final_answer"
DROP_EMPTY = "empty_question"
DROP_MALFORMED = "malformed_options"
DROP_NOT_AN_OPTION = "answer_not_an_option"


@dataclass(slots=True)
class PairView:
    """A pair as templating sees it (docs/method.md §2 conventions)."""

    kind: str  # "free", "options", "cot", "options_cot"
    question: str
    answer: str  # the response (the final answer for CoT): what an option-free rendering shows
    options: list[str] | None = None
    answer_index: int | None = None  # which option is the answer
    none_index: int | None = None  # an option that is an "unanswerable" phrase (listed last)
    rationale: str | None = None
    rename_none: bool = False  # the unanswerable option refers to the list: sampled phrasing

    @property
    def needs_options(self) -> bool:
        """Its answer only makes sense next to the list ("None of the above")."""
        return self.rename_none and self.answer_index == self.none_index


def _folded(text: str) -> str:
    return text.casefold().strip().rstrip(".")


def _is_unanswerable(text: str) -> bool:
    return _folded(text) in _UNANSWERABLE


def _option_list(rest: str) -> list[str] | None:
    """The options after `OPTIONS_MARKER` (which ends with the first item's "- "), or None when
    a line is not a non-empty "- " item: every newline must begin one, so one split suffices."""
    if rest.count("\n") != rest.count("\n- "):
        return None
    opts = list(map(str.strip, rest.split("\n- ")))
    return None if "" in opts else opts


def classify(pair: Pair) -> PairView | str:
    """The pair's kind and parts, or the reason it cannot be templated (docs/templify.md)."""
    instruction, response = pair.instruction, pair.response
    rationale = None
    is_cot = instruction.endswith(_COT_TAIL)
    if is_cot:
        instruction = instruction[: -len(_COT_TAIL)].rstrip()
        rationale, marker, response = response.rpartition(COT_ANSWER_MARKER)
        rationale, response = rationale.strip(), response.strip()
        if not marker or not rationale or not response:
            return DROP_COT
    if OPTIONS_MARKER not in instruction:
        if not instruction:
            return DROP_EMPTY
        return PairView("cot" if is_cot else "free", instruction, response, None, None, None, rationale)
    question, _, rest = instruction.partition(OPTIONS_MARKER)
    question = question.strip()
    opts = _option_list(rest)
    if not question or opts is None:
        return DROP_MALFORMED
    # Each option folded once: for the case-insensitive answer match and the unanswerable check.
    folded_opts = list(map(str.casefold, opts))
    if response in opts:
        index: int | None = opts.index(response)
    else:
        folded = response.casefold()
        index = folded_opts.index(folded) if folded in folded_opts else None
    none_index = None
    for i, o in enumerate(folded_opts):
        if o.strip().rstrip(".") in _UNANSWERABLE:
            none_index = i
            break
    if index is None and none_index is not None and _is_unanswerable(response):
        index = none_index
    if index is None:
        if not _is_unanswerable(response):
            return DROP_NOT_AN_OPTION
        if _folded(response) in _LIST_RELATIVE and len(opts) >= 2:
            # "None of the above" for a list without it: that option is the list's convention
            opts.append(response)
            index = none_index = len(opts) - 1
        else:
            # "not enough information" for a list without such an option: never list options
            # the answer is not among; ask the question alone, answered in the synthesizer's words
            return PairView("cot" if is_cot else "free", question, response, rationale=rationale)
    if len(opts) < 2:  # a one-option list is no choice: the question alone, answered by it
        return PairView("cot" if is_cot else "free", question, response, rationale=rationale)
    rename = none_index is not None and _folded(opts[none_index]) in _LIST_RELATIVE
    kind = "options_cot" if is_cot else "options"
    return PairView(kind, question, response, opts, index, none_index, rationale, rename)
