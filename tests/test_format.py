"""docs/method.md §2: prompt strings and the parsing rules, on tables, fixtures and random input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instructpt.synthesis.format import (
    DROP_DUPLICATE,
    DROP_EMPTY_RESPONSE,
    DROP_MULTIPLE_ANS,
    DROP_NO_ANS,
    DROP_NO_QUE,
    DROP_UNFINISHED,
    Pair,
    build_prompt,
    parse_generation,
    parse_pairs,
    reading_material,
    serialize_example,
    serialize_pairs,
)

from .conftest import load_fixture_generations


def test_reading_material_is_exact():
    assert reading_material("Hello.") == "<s> <CON> Hello. </CON>\n\n"
    assert build_prompt("Hello.") == "<s> <CON> Hello. </CON>\n\n"


def test_pair_and_example_serialization_is_exact():
    pairs = [Pair("Q1?", "A1"), Pair("Q2?", "A2")]
    assert serialize_pairs(pairs) == "<QUE> Q1? <ANS> A1 </END>\n\n<QUE> Q2? <ANS> A2 </END>"
    assert serialize_example("Doc.", pairs) == (
        "<s> <CON> Doc. </CON>\n\n<QUE> Q1? <ANS> A1 </END>\n\n<QUE> Q2? <ANS> A2 </END></s>"
    )


def test_prompt_with_context_is_examples_then_reading_material():
    prompt = build_prompt("Second.", [("First.", [Pair("Q?", "A")])])
    assert prompt == "<s> <CON> First. </CON>\n\n<QUE> Q? <ANS> A </END></s><s> <CON> Second. </CON>\n\n"
    assert prompt.count("<s>") == 2 and prompt.startswith("<s> <CON>")


@pytest.mark.parametrize(
    "generation, pairs, dropped",
    [
        ("<QUE> q <ANS> a </END>", [("q", "a")], {}),
        ("<QUE> q <ANS> a </END></s>", [("q", "a")], {}),
        ("<QUE> q <ANS> a </END>\n\n </s> \n", [("q", "a")], {}),
        ("<QUE> q <ANS> a </END>\n\n<QUE> r <ANS> b", [("q", "a")], {DROP_UNFINISHED: 1}),
        ("<QUE> q <ANS> a", [], {DROP_UNFINISHED: 1}),
        ("q <ANS> a </END>", [], {DROP_NO_QUE: 1}),
        ("<QUE> q a </END>", [], {DROP_NO_ANS: 1}),
        ("<QUE> q <ANS> a <ANS> b </END>", [], {DROP_MULTIPLE_ANS: 1}),
        ("<QUE> q <ANS>   </END>", [], {DROP_EMPTY_RESPONSE: 1}),
        ("<QUE> Q? <ANS> a </END><QUE> q? <ANS> b </END>", [("Q?", "a")], {DROP_DUPLICATE: 1}),
        ("  <QUE>\nmulti\nline? <ANS>\nyes\n </END>", [("multi\nline?", "yes")], {}),
        ("", [], {}),
        ("</END></END>", [], {DROP_NO_ANS: 2}),
    ],
)
def test_parse_table(generation, pairs, dropped):
    result = parse_generation(generation)
    assert [(p.instruction, p.response) for p in result.pairs] == pairs
    assert dict(result.dropped) == dropped


@pytest.mark.parametrize("case", load_fixture_generations(), ids=lambda c: c["id"])
def test_fixture_generations(case):
    pairs = parse_pairs(case["prediction"])
    assert len(pairs) == case["expect_pairs"]
    for p in pairs:
        assert p.instruction and p.response
        assert "<QUE>" not in p.instruction and "<ANS>" not in p.response


def test_fixture_duplicate_keeps_first_spelling():
    case = next(c for c in load_fixture_generations() if c["id"] == "duplicate-question")
    pairs = parse_pairs(case["prediction"])
    assert pairs[0] == Pair("How many mothers took part in the study?", "184")


TAGS = ["<QUE>", "<ANS>", "</END>", "</s>", "<s>", "<CON>", "</CON>", "\n\n", " "]


@given(st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=12)), max_size=40).map("".join))
def test_parser_never_raises(generation):
    result = parse_generation(generation)
    for pair in result.pairs:
        assert pair.response == pair.response.strip() and pair.response
    keys = [p.instruction.casefold() for p in result.pairs]
    assert len(keys) == len(set(keys))


_clean = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@given(st.lists(st.tuples(_clean, _clean), max_size=8, unique_by=lambda t: t[0].casefold()))
def test_round_trip_well_formed_pairs(items):
    pairs = [Pair(q, a) for q, a in items]
    assert parse_pairs(serialize_pairs(pairs)) == pairs
    assert parse_pairs(serialize_pairs(pairs) + "</s>") == pairs
