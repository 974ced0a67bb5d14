"""Templify (docs/method.md §4): chains to texts, modes, pair kinds, reproducibility, diversity."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructpt.synthesis.classify import PairView, classify
from instructpt.synthesis.format import Pair, parse_pairs
from instructpt.templating.render import MODES_MANY_PAIRS, templify
from instructpt.templating.stats import TemplifyStats
from instructpt.templating.templates import FAMILIES, TemplateError, validate

from .conftest import load_fixture_generations

KIND_NAMES = {"cot-unparseable": "cot_without_final_answer"}


@pytest.mark.parametrize("case", load_fixture_generations(), ids=lambda c: c["id"])
def test_fixture_pair_kinds(case):
    kinds = []
    for pair in parse_pairs(case["prediction"]):
        view = classify(pair)
        kinds.append(view if isinstance(view, str) else view.kind)
    assert kinds == [KIND_NAMES.get(k, k) for k in case["kinds"]]


@pytest.mark.parametrize(
    "instruction, response, expected",
    [
        ("Q?", "A", ("free", "Q?", "A")),
        ("Q?\nOptions:\n- x\n- y", "y", ("options", "Q?", "y")),
        ("Q?\nOptions:\n- x\n- y", "Y", ("options", "Q?", "Y")),
        ("Q?\nOptions:\n- x\n- y", "z", "answer_not_an_option"),
        ("Q?\nOptions:\n- x\n- y", "None of the above", ("options", "Q?", "None of the above")),
        ("Q?\nOptions:\n- x\ny", "x", "malformed_options"),
        ("Q?\nOptions:\n- x", "x", ("free", "Q?", "x")),  # one option is no choice: the question alone
        ("Q?\nOptions:\n- x", "z", "answer_not_an_option"),
        ("Q?\nOptions:\n- x\n- y", "Not enough information", ("free", "Q?", "Not enough information")),
        ("Q?\nOptions:\n- x\n- not mentioned", "Not mentioned", ("options", "Q?", "Not mentioned")),
        ("Q?", "R\nTherefore, the answer is 4", ("free", "Q?", "R\nTherefore, the answer is 4")),
        (
            "Q?\nLet's think step by step.",
            "A.\nTherefore, the answer is 3\nTherefore, the answer is 4",
            ("cot", "Q?", "4"),
        ),  # fmt: skip
        (
            "Q?\nOptions:\n- x\n- y\nLet's think step by step.",
            "R\nTherefore, the answer is y",
            ("options_cot", "Q?", "y"),
        ),  # fmt: skip
        ("Q?\nLet's think step by step.", "Because.\nTherefore, the answer is 4", ("cot", "Q?", "4")),
        ("Q?\nLet's think step by step.", "Just 4", "cot_without_final_answer"),
        ("Q?\nLet's think step by step.", "\nTherefore, the answer is 4", "cot_without_final_answer"),
        ("\nLet's think step by step.", "R\nTherefore, the answer is 4", "empty_question"),
    ],
)
def test_classify_table(instruction, response, expected):
    view = classify(Pair(instruction, response))
    if isinstance(expected, str):
        assert view == expected
    else:
        assert (view.kind, view.question, view.answer) == expected


def test_unanswerable_answers_and_options():
    # "None of the above" for a list without it: listed as the last option, under a sampled phrasing
    view = classify(Pair("Q?\nOptions:\n- x\n- y", "None of the above"))
    assert view.options == ["x", "y", "None of the above"] and view.answer_index == view.none_index == 2
    assert view.rename_none and view.needs_options
    # an option that says the text does not tell keeps its words; the answer matches it
    view = classify(Pair("Q?\nOptions:\n- not mentioned\n- y", "Not mentioned"))
    assert view.none_index == view.answer_index == 0 and not view.rename_none and not view.needs_options
    # "not enough information" with no such option is never rendered next to options
    view = classify(Pair("Q?\nOptions:\n- x\n- y", "Not enough information"))
    assert view.kind == "free" and view.options is None


def fixture_records(chain_of: int = 2) -> list[dict]:
    rows = []
    for i, case in enumerate(load_fixture_generations()):
        pairs = parse_pairs(case["prediction"])
        rows.append({
            "id": case["id"], "text": case["text"], "chain_id": f"c{i // chain_of}", "round": i % chain_of,
            "inherits": i % chain_of > 0 and bool(pairs),
            "pairs": [{"instruction": p.instruction, "response": p.response} for p in pairs],
        })  # fmt: skip
    return rows


def test_chains_become_texts_and_nothing_is_lost():
    rows = fixture_records()
    texts = list(templify(rows, seed=0))
    by_source = {i: t for t in texts for i in t.source_ids}
    assert sorted(by_source) == sorted(r["id"] for r in rows)  # each document in exactly one text
    assert sum(len(t.source_ids) for t in texts) == len(rows)
    for row in rows:
        assert row["text"] in by_source[row["id"]].text
    garbage = by_source["garbage"]
    assert garbage.mode == "raw" and garbage.text == "A short note." and garbage.n_pairs == 0
    fishing = by_source["fishing"]  # chain c0: fishing + truncated-tail (inherits) -> one 2-shot text
    assert fishing.source_ids == ("fishing", "truncated-tail") and fishing.n_shots == 2
    assert fishing.n_pairs == 5 and fishing.id == "fishing"
    bad = by_source["bad-cot"]  # its CoT pair is dropped from templating, the other is rendered
    assert bad.n_pairs == 1 and "Where does this freezing point hold?" in bad.text
    assert "It is stated in the text." not in bad.text


def test_entry_that_does_not_inherit_starts_a_new_text():
    rows = fixture_records()
    for row in rows:
        row["inherits"] = False
    texts = list(templify(rows))
    assert all(t.n_shots == 1 for t in texts) and len(texts) == len(rows)


def test_every_mode_kind_and_inversion_appears_on_the_fixtures():
    stats = TemplifyStats()
    for seed in range(300):
        list(templify(fixture_records(chain_of=1), seed=seed, stats=stats))
    assert set(stats.modes) == set(MODES_MANY_PAIRS) | {"raw"}
    assert stats.inversions > 0
    assert {
        "qa",
        "options",
        "cot",
        "options_cot",
        "none_of_the_above",
        "bridge",
        "speakers",
        "numbering",
        "fewshot_intro",
        "next_turn",
        "inversion",
    } <= set(stats.families)
    share = stats.modes["classic"] / (stats.texts - stats.modes["raw"])
    assert 0.75 < share < 0.95


def test_same_seed_same_bytes_and_independent_of_order_and_sharding():
    rows = fixture_records()
    first = [t.to_dict() for t in templify(rows, seed=7)]
    assert first == [t.to_dict() for t in templify(rows, seed=7)]
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    again = sorted((t.to_dict() for t in templify(shuffled, seed=7)), key=lambda d: d["id"])
    assert again == sorted(first, key=lambda d: d["id"])
    split = [t.to_dict() for t in templify(rows[:4], seed=7)] + [
        t.to_dict() for t in templify(rows[4:], seed=7)
    ]
    assert sorted(split, key=lambda d: d["id"]) == sorted(first, key=lambda d: d["id"])
    assert first != [t.to_dict() for t in templify(rows, seed=8)]


def test_diversity_over_1000_documents():
    cases = [c for c in load_fixture_generations() if c["expect_pairs"]]
    rows = []
    for i in range(1000):
        case = cases[i % len(cases)]
        rows.append({"id": f"d{i}", "text": case["text"], "chain_id": f"c{i // 2}", "round": i % 2,
                     "inherits": i % 2 == 1,
                     "pairs": [{"instruction": p.instruction, "response": p.response}
                               for p in parse_pairs(case["prediction"])]})  # fmt: skip
    stats = TemplifyStats()
    list(templify(rows, stats=stats))
    assert len(stats.all_patterns()) >= 40
    assert len({i for f, i in stats.all_patterns() if f == "qa"}) >= 30


_text = (
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(str.strip).filter(bool)
)
_option_lines = st.lists(_text.filter(lambda t: "\n" not in t), min_size=2, max_size=5, unique=True)


@st.composite
def pairs(draw):
    kind = draw(st.sampled_from(["free", "options", "cot", "options_cot", "junk"]))
    q = draw(_text)
    if kind in ("options", "options_cot"):
        opts = draw(_option_lines)
        q = q + "\nOptions:\n" + "\n".join(f"- {o}" for o in opts)
        answer = draw(st.sampled_from(opts + ["None of the above"]))
    else:
        answer = draw(_text)
    if kind in ("cot", "options_cot"):
        q += "\nLet's think step by step."
        answer = draw(_text) + "\nTherefore, the answer is " + answer
    if kind == "junk":
        q += "\nOptions:\n" + draw(_text)
    return Pair(q, answer)


@st.composite
def chains(draw):
    n = draw(st.integers(1, 6))
    rows = []
    for i in range(n):
        ps = draw(st.lists(pairs(), max_size=5))
        rows.append({"id": f"doc{i}", "text": draw(_text), "chain_id": f"c{draw(st.integers(0, 2))}",
                     "round": i, "inherits": draw(st.booleans()),
                     "pairs": [{"instruction": p.instruction, "response": p.response}
                               for p in ps]})  # fmt: skip
    return rows


@settings(max_examples=200, deadline=None)
@given(chains(), st.integers(0, 2**32))
def test_properties_never_raise_lose_nothing_and_show_every_pair(rows, seed):
    texts = list(templify(rows, seed=seed))
    by_source = {i: t for t in texts for i in t.source_ids}
    assert sorted(by_source) == sorted(r["id"] for r in rows)
    assert sum(len(t.source_ids) for t in texts) == len(rows)
    for row in rows:
        text = by_source[row["id"]].text
        assert row["text"] in text
        for p in row["pairs"]:
            view = classify(Pair(p["instruction"], p["response"]))
            if isinstance(view, PairView):
                assert view.question in text
                templates = by_source[row["id"]].templates
                if view.rationale is not None:  # an inline few-shot test item asks only for the answer
                    assert view.rationale in text or any(t.startswith("fewshot_inline/") for t in templates)
                listed = view.options is not None and all(
                    k == view.none_index or option in text for k, option in enumerate(view.options)
                )
                assert listed or view.answer in text  # the options, or the option-free answer
    assert [t.to_dict() for t in texts] == [t.to_dict() for t in templify(rows, seed=seed)]


def test_template_library_is_validated(monkeypatch):
    validate()  # the shipped library is valid
    patterns, needed, minimum = FAMILIES["qa"]
    monkeypatch.setitem(FAMILIES, "qa", (patterns[:-1] + ("Q: {question} {typo}",), needed, minimum))
    with pytest.raises(TemplateError, match="typo"):
        validate()
    monkeypatch.setitem(FAMILIES, "qa", (patterns[:3], needed, minimum))
    with pytest.raises(TemplateError, match="needs 80"):
        validate()


def test_cli_templify_end_to_end_and_resume(tmp_path, tokenizer):
    from click.testing import CliRunner

    from instructpt.cli import main

    from .test_pipeline import make_corpus

    tok = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(tok))
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=30)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a], catch_exceptions=False)  # noqa: E731
    assert run("synthesize", corpus, "-o", tmp_path / "syn", "--engine", "rules", "--model", tok,
               "--shard-size", "8").exit_code == 0  # fmt: skip
    result = run("templify", tmp_path / "syn", "-o", tmp_path / "aug", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 30 and summary["shards"] == 4
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "aug" / "data").to_pylist()
    assert set(rows[0]) == {"id", "text", "source_ids", "n_shots", "n_pairs", "mode", "templates"}
    assert sum(len(r["source_ids"]) for r in rows) == 30
    before = (tmp_path / "aug/data/part-00001.parquet").read_bytes()
    (tmp_path / "aug/data/part-00001.parquet").unlink()
    assert run("templify", tmp_path / "syn", "-o", tmp_path / "aug").exit_code == 0
    assert (tmp_path / "aug/data/part-00001.parquet").read_bytes() == before
    refused = run("templify", tmp_path / "syn", "-o", tmp_path / "aug", "--seed", "1")
    assert refused.exit_code != 0 and "other settings (seed: 0 -> 1)" in refused.output
    missing = run("templify", tmp_path / "nothing", "-o", tmp_path / "x")
    assert missing.exit_code != 0 and "not an `instructpt synthesize` output folder" in missing.output
