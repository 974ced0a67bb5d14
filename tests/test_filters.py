"""Pair filters (quality/filters.py): reasons, defaults, groundedness, corpus-wide duplicates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instructpt.quality.decontaminate import DecontaminateOptions, run_decontaminate
from instructpt.quality.filters import (
    DocumentView,
    DuplicateTable,
    FilterSettings,
    groundedness,
    pair_key,
    pair_problem,
    position,
)
from instructpt.synthesis.format import Pair, parse_pairs, serialize_pairs

from .conftest import load_fixture_generations

DOC = "The kettle boils water in about three minutes when it is full, and it switches itself off."
QUIET = lambda m: None  # noqa: E731


@pytest.mark.parametrize(
    "instruction, response, settings, reason",
    [
        ("How long does the kettle take?", "About three minutes.", FilterSettings(), None),
        ("   ", "About three minutes.", FilterSettings(), "empty_instruction"),
        ("How long?", "\n\t", FilterSettings(), "empty_response"),
        ("Q" * 4097, "A", FilterSettings(), "instruction_too_long"),
        ("Q", "A" * 4097, FilterSettings(), "response_too_long"),
        ("Q" * 4097, "A" * 4097, FilterSettings(max_instruction_chars=None, max_response_chars=None), None),
        ("Q?", "A" * 50, FilterSettings(max_response_chars=10), "response_too_long"),
        (DOC, "Yes.", FilterSettings(), "instruction_is_document"),
        (
            "Read this: " + DOC.upper() + " What happens?",
            "It boils.",
            FilterSettings(),
            "instruction_is_document",
        ),
        ("Repeat the text.", DOC.replace(",", ""), FilterSettings(), "response_copies_document"),
        ("Repeat the text.", DOC, FilterSettings(drop_copies=False), None),
        ("Repeat half.", DOC[: len(DOC) // 2], FilterSettings(), None),  # part of it is fine
        ("What colour is it?", "Bright purple spaceship", FilterSettings(min_groundedness=0.5), "ungrounded"),
        ("What colour is it?", "Bright purple spaceship", FilterSettings(), None),  # only when asked
        ("How long?", "about three minutes", FilterSettings(min_groundedness=1.0), None),
    ],
)
def test_pair_problem_reasons(instruction, response, settings, reason):
    assert pair_problem(instruction, response, DocumentView(DOC), settings) == reason


def test_short_documents_are_never_judged_copied():
    assert (
        pair_problem("Say it.", "Hello there world", DocumentView("Hello there world"), FilterSettings())
        is None
    )


def test_groundedness_is_the_share_of_response_words_in_the_document():
    doc = DocumentView(DOC)
    assert groundedness("Three minutes!", doc) == 1.0
    assert groundedness("three purple minutes spaceships", doc) == 0.5
    assert groundedness("...", doc) == 1.0


@pytest.mark.parametrize("case", load_fixture_generations(), ids=lambda c: c["id"])
def test_defaults_keep_the_synthesizers_pairs(case):
    doc = DocumentView(case["text"])
    pairs = parse_pairs(case["prediction"])
    assert [pair_problem(p.instruction, p.response, doc, FilterSettings()) for p in pairs] == [None] * len(
        pairs
    )


def test_pair_key_normalises_case_punctuation_and_spacing():
    assert pair_key("What is it?", "A kettle.") == pair_key("what  is IT", "a kettle")
    assert pair_key("What is it?", "A kettle.") != pair_key("What is it", "A pot")
    assert pair_key("a b", "c") != pair_key("a", "b c")  # the boundary counts


@given(st.lists(st.integers(0, 6), max_size=60), st.randoms(use_true_random=False))
def test_duplicate_table_keeps_exactly_the_first_copy_in_any_order(keys, rnd):
    items = [(position(i // 10, i % 10, 0), k) for i, k in enumerate(keys)]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    table = DuplicateTable.build(shuffled)
    kept = [k for pos, k in items if not table.is_duplicate(k, pos)]
    assert kept == list(dict.fromkeys(keys))  # one per key, the first, in order
    assert len(table) == sum(keys.count(k) > 1 for k in set(keys))


def test_position_is_ordered_and_bounded():
    assert position(0, 5, 3) < position(0, 6, 0) < position(1, 0, 0)
    with pytest.raises(ValueError):
        position(0, 0, 1 << 16)


def _synthesized(tmp_path, scripted, shard_size: int):
    """A synthesize folder whose 12 documents all carry the same kettle pair (and one of their own)."""
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"Text {i}: " + DOC}) + "\n" for i in range(12))
    )

    def respond(prompt: str) -> str:
        i = int(prompt[prompt.rfind("<CON> Text ") + 11 :].split(":")[0])
        kettle = "How long does the kettle take?" if i % 2 else "how LONG does the kettle take"
        return serialize_pairs([Pair(kettle, "About three minutes."), Pair("Which text is this?", f"{i}")])

    config = SynthesisConfig(
        inputs=[str(corpus)],
        output=str(tmp_path / f"s{shard_size}"),
        model="m",
        engine="s",
        shard_size=shard_size,
    )
    run_synthesis(config, lambda: scripted(respond), progress=False, log=QUIET)
    return tmp_path / f"s{shard_size}"


def test_dedupe_keeps_the_first_copy_whatever_the_workers(tmp_path, scripted):
    from instructpt.io.shards import read_rows

    synth = _synthesized(tmp_path, scripted, shard_size=5)
    options = DecontaminateOptions(filters=FilterSettings(dedupe=True))
    one = run_decontaminate(synth, tmp_path / "one", options=options, progress=False, log=QUIET)
    for worker in (2, 0, 1):
        run_decontaminate(
            synth,
            tmp_path / "three",
            options=options,
            progress=False,
            log=QUIET,
            num_workers=3,
            worker_index=worker,
        )
    assert one["pairs_dropped"] == {"duplicate": 11} and one["pairs_out"] == 13  # the kettle pair, kept once
    rows = [r for p in sorted((tmp_path / "one" / "data").iterdir()) for r in read_rows(p)]
    kettle = [r["doc_id"] for r in rows for p in r["pairs"] if "kettle" in p["instruction"]]
    assert kettle == [rows[0]["doc_id"]]  # the first document in corpus order keeps it
    for name in sorted(p.name for p in (tmp_path / "one" / "data").iterdir()):
        assert (tmp_path / "one" / "data" / name).read_bytes() == (
            tmp_path / "three" / "data" / name
        ).read_bytes()
    assert (
        json.loads((tmp_path / "three" / "summary.json").read_text())["pairs_dropped"] == one["pairs_dropped"]
    )
    plain = run_decontaminate(synth, tmp_path / "plain", progress=False, log=QUIET)
    assert "duplicate" not in plain["pairs_dropped"]  # off by default


def test_dedupe_does_not_depend_on_shard_size_of_the_kept_set(tmp_path, scripted):
    from instructpt.io.shards import read_rows

    kept = []
    for size in (3, 12):
        synth = _synthesized(tmp_path, scripted, shard_size=size)
        out = tmp_path / f"out{size}"
        run_decontaminate(
            synth,
            out,
            options=DecontaminateOptions(filters=FilterSettings(dedupe=True)),
            progress=False,
            log=QUIET,
        )
        rows = [r for p in sorted((out / "data").iterdir()) for r in read_rows(p)]
        kept.append(sorted((r["id"], p["instruction"]) for r in rows for p in r["pairs"]))
    assert kept[0] == kept[1]


@given(
    st.lists(
        st.sampled_from(["Kettle", "boils", "water", "in", "three", "minutes", "it's"]),
        min_size=8,
        max_size=20,
    ),
    st.sampled_from([" ", ", ", "! ", " -- ", "\n"]),
    st.booleans(),
)
def test_a_copied_document_is_found_whatever_its_case_and_punctuation(words, sep, upper):
    doc = DocumentView(" ".join(words))
    copy = sep.join(w.upper() if upper else w for w in words)
    assert (
        pair_problem("Repeat it.", "Sure: " + copy + " (done)", doc, FilterSettings())
        == "response_copies_document"
    )
    assert pair_problem("Repeat it.", "Sure: " + copy, doc, FilterSettings(drop_copies=False)) is None


# -- dedupe keeps the first copy that survives every other decision ----------------------------

GROUP_WORDS = ["red", "blue", "green", "gold"]
GROUNDED = "Notes: " + " ".join(f"item {g} is {w}." for g, w in enumerate(GROUP_WORDS))
UNGROUNDED = "Notes about gardens and tomatoes that grow slowly in the summer sun."


def _group_pair(group: int, broken: bool = False) -> dict:
    """Group `group`'s pair; `broken`: its instruction padded with punctuation past 60 characters
    (instruction_too_long with max_instruction_chars=60), the same pair once normalised."""
    return {
        "instruction": f"What is item {group}?" + (" !" * 40 if broken else ""),
        "response": f"Item {group} is {GROUP_WORDS[group]}.",
    }


def _dedupe_in_memory(rows: list[dict]) -> tuple[list[dict], dict]:
    from instructpt import DecontaminateSettings, decontaminate

    from .test_decontaminate import BENCH_Q

    settings = DecontaminateSettings(
        document_action="drop", dedupe=True, min_groundedness=0.5, max_instruction_chars=60
    )
    summary: dict = {}
    kept = decontaminate(rows, settings, benchmarks={"quiz": [BENCH_Q]}, summary=summary)
    return kept, summary


def _row(i: int, kind: str, pairs: list[dict]) -> dict:
    from .test_decontaminate import BENCH_Q

    text = {"ok": GROUNDED, "ungrounded": UNGROUNDED, "contaminated": GROUNDED + " " + BENCH_Q}[kind]
    return {"id": f"e{i}", "doc_id": f"d{i}", "text": text, "pairs": pairs}


def test_dedupe_keeps_the_copy_after_a_broken_first_copy():
    rows = [
        _row(0, "ok", [_group_pair(0, broken=True)]),
        _row(1, "ok", [_group_pair(0)]),
        _row(2, "ok", [_group_pair(0)]),
    ]
    kept, summary = _dedupe_in_memory(rows)
    assert [r["pairs"] for r in kept] == [[], [_group_pair(0)], []]
    assert summary["pairs_dropped"] == {"instruction_too_long": 1, "duplicate": 1}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ok", "ungrounded", "contaminated"]),
            st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=4),
        ),
        max_size=8,
    )
)
def test_dedupe_keeps_one_copy_of_every_group_with_a_survivor(spec):
    """Random copies of 4 pairs in documents kept, ungrounded (their pairs dropped) or
    contaminated (dropped), some copies broken: each group with a surviving copy keeps exactly
    its first survivor; every pair is counted under one reason."""
    rows = [
        _row(i, kind, [_group_pair(g, broken) for g, broken in pairs]) for i, (kind, pairs) in enumerate(spec)
    ]
    kept, summary = _dedupe_in_memory(rows)
    expected_rows, expected_counts, seen = [], Counter(), set()
    for row, (kind, pairs) in zip(rows, spec):
        mine = []
        for pair, (group, broken) in zip(row["pairs"], pairs):
            if broken:
                expected_counts["instruction_too_long"] += 1
            elif kind == "contaminated":
                expected_counts["document_dropped"] += 1
            elif kind == "ungrounded":
                expected_counts["ungrounded"] += 1
            elif group in seen:
                expected_counts["duplicate"] += 1
            else:
                seen.add(group)
                mine.append(pair)
        if kind != "contaminated":
            expected_rows.append((row["id"], mine))
    assert [(r["id"], r["pairs"]) for r in kept] == expected_rows
    assert summary["pairs_dropped"] == dict(expected_counts)
    assert summary["pairs_in"] == summary["pairs_out"] + sum(expected_counts.values())
    assert summary["documents_dropped"] == sum(kind == "contaminated" for kind, _ in spec)


def _synthesized_with_drops(tmp_path, scripted) -> Path:
    """6 documents in 3 shards, each with the kettle pair and one of its own: d0 holds the
    benchmark question (contaminated), d1 says nothing of kettles (its kettle pair is ungrounded)."""
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    from .test_decontaminate import BENCH_Q

    texts = [f"Text 0: {DOC} {BENCH_Q}", f"Text 1: {UNGROUNDED}"] + [f"Text {i}: {DOC}" for i in range(2, 6)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))

    def respond(prompt: str) -> str:
        i = int(prompt[prompt.rfind("<CON> Text ") + 11 :].split(":")[0])
        return serialize_pairs(
            [
                Pair("How long does the kettle take?", "About three minutes."),
                Pair("Which text is this?", f"{i}"),
            ]
        )

    config = SynthesisConfig(
        inputs=[str(corpus)], output=str(tmp_path / "synth"), model="m", engine="s", shard_size=2
    )
    run_synthesis(config, lambda: scripted(respond), progress=False, log=QUIET)
    return tmp_path / "synth"


@pytest.mark.parametrize(
    "action, window, keeper, dropped",
    [
        ("drop", 200, "d2", {"document_dropped": 2, "ungrounded": 1, "duplicate": 3}),
        ("cut", 200, "d2", {"document_dropped": 2, "ungrounded": 1, "duplicate": 3}),  # nothing left: dropped
        ("cut", 0, "d0", {"ungrounded": 1, "duplicate": 4}),  # cut and kept: its copy is the first
    ],
)
def test_dedupe_skips_copies_dropped_for_another_reason(tmp_path, scripted, action, window, keeper, dropped):
    from instructpt.io.shards import read_rows

    from .test_decontaminate import BENCH_Q

    synth = _synthesized_with_drops(tmp_path, scripted)
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    options = DecontaminateOptions(
        document_action=action, window=window, filters=FilterSettings(dedupe=True, min_groundedness=0.5)
    )
    run = lambda out, **kw: run_decontaminate(  # noqa: E731
        synth, tmp_path / out, [f"quiz={quiz}"], options, progress=False, log=QUIET, **kw
    )
    one = run("one")
    assert one["pairs_dropped"] == dropped and one["pairs_out"] == 12 - sum(dropped.values())
    rows = [r for p in sorted((tmp_path / "one" / "data").iterdir()) for r in read_rows(p)]
    assert [r["doc_id"] for r in rows for p in r["pairs"] if "kettle" in p["instruction"]] == [keeper]
    for worker in (1, 0):  # 2 static workers, the second to finish finalizes
        two = run("two", num_workers=2, worker_index=worker)
    assert two["pairs_dropped"] == dropped
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / "data").iterdir())
    for name in [*files, Path("contamination.jsonl")]:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
