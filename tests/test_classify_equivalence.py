"""The fast `classify` against a plain, line-by-line reading of the same rules (docs/templify.md).

`classify` is on templify's hot path (benchmarks/templify_speed.py) and checks an option list
with one split and folds every option once; `spec_classify` below is the same rules written
the obvious way (one line at a time, each check on its own). Both must give the same kind,
parts and drop reason on any pair.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from instructpt.synthesis import classify as C
from instructpt.synthesis.classify import PairView, classify
from instructpt.synthesis.format import COT_ANSWER_MARKER, COT_MARKER, OPTIONS_MARKER, Pair
from instructpt.templating.templates import options as O


def _folded(text: str) -> str:
    return text.casefold().strip().rstrip(".")


def _unanswerable(text: str) -> bool:
    return _folded(text) in O.UNANSWERABLE_MARKERS


def spec_classify(pair: Pair) -> PairView | str:
    instruction, response, rationale = pair.instruction, pair.response, None
    is_cot = instruction.endswith(COT_MARKER)
    if is_cot:
        instruction = instruction[: -len(COT_MARKER)].rstrip()
        rationale, marker, response = response.rpartition(COT_ANSWER_MARKER)
        rationale, response = rationale.strip(), response.strip()
        if not marker or not rationale or not response:
            return C.DROP_COT
    alone = "cot" if is_cot else "free"
    if OPTIONS_MARKER not in instruction:
        return PairView(alone, instruction, response, rationale=rationale) if instruction else C.DROP_EMPTY
    question, _, rest = instruction.partition(OPTIONS_MARKER)
    question = question.strip()
    lines = ("- " + rest).split("\n")
    if not question or any(not line.startswith("- ") or not line[2:].strip() for line in lines):
        return C.DROP_MALFORMED
    opts = [line[2:].strip() for line in lines]
    exact = [i for i, o in enumerate(opts) if o == response]
    caseless = [i for i, o in enumerate(opts) if o.casefold() == response.casefold()]
    nones = [i for i, o in enumerate(opts) if _unanswerable(o)]
    index = (exact or caseless or [None])[0]
    none_index = (nones or [None])[0]
    if index is None and _unanswerable(response) and none_index is not None:
        index = none_index
    if index is None:
        if not _unanswerable(response):
            return C.DROP_NOT_AN_OPTION
        if _folded(response) in O.LIST_RELATIVE_MARKERS and len(opts) >= 2:
            opts.append(response)
            index = none_index = len(opts) - 1
        else:
            return PairView(alone, question, response, rationale=rationale)
    if len(opts) < 2:
        return PairView(alone, question, response, rationale=rationale)
    rename = none_index is not None and _folded(opts[none_index]) in O.LIST_RELATIVE_MARKERS
    kind = "options_cot" if is_cot else "options"
    return PairView(kind, question, response, opts, index, none_index, rationale, rename)


_PIECES = [
    OPTIONS_MARKER, COT_MARKER, COT_ANSWER_MARKER, "\n", "\n- ", "- ", " ", "\t", ".", "Yes", "yes",
    "None of the above", "none of the above.", "Not enough information", "ß", "SS", "Q?", "a",
]  # fmt: skip
_text = st.lists(st.sampled_from(_PIECES) | st.text(max_size=4), max_size=12).map("".join)


@settings(max_examples=1500)
@given(_text, _text)
@example("Q?\nOptions:\n- x\n- y", "None of the above")
@example("Q?\nOptions:\n- \n- y", "y")
@example("Q?\nOptions:\n- x\n-y", "x")
@example("Q?\nOptions:\n- x\n- \n- y", "x")
@example("Q?\nOptions:\n- Straße\n- y", "STRASSE")
@example("Q?\nOptions:\n- Yes\n- yes", "yes")  # the exact match wins over an earlier caseless one
@example("Q?\nOptions:\n- not mentioned.\n- y", "Not mentioned")
@example("Q?\nOptions:\n- x", "x")
@example("Q?\nOptions:\n- x\n- y\nLet's think step by step.", "r\nTherefore, the answer is y")
def test_classify_equals_the_rules(instruction, response):
    pair = Pair(instruction, response)
    assert classify(pair) == spec_classify(pair)
