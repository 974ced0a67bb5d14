"""Templify's distribution (issue 12): one pattern per kind per text, bare documents, option-free
multiple choice, the answer-first and questions-first layouts, template ids, the `<QUE>` drop."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from instructpt.synthesis.classify import classify
from instructpt.synthesis.format import DROP_MULTIPLE_QUE, parse_generation
from instructpt.templating.render import BARE_RATE, AugmentedText, templify
from instructpt.templating.stats import TemplifyStats
from instructpt.templating.templates import PER_TEXT_FAMILIES, resolve
from instructpt.testing import scripted_pairs

CORPUS = Path(__file__).parent.parent / "examples" / "corpus.jsonl"


def corpus_rows(n: int, chain_of: int = 2) -> list[dict]:
    """`n` synthesize rows over the bundled corpus with scripted pairs of all four kinds."""
    texts = [json.loads(line)["text"] for line in CORPUS.open()]
    rows = []
    for i in range(n):
        text = f"{texts[i % len(texts)]} (copy {i})"
        pairs = scripted_pairs(text)
        pairs_ = [{"instruction": p.instruction, "response": p.response} for p in pairs]
        rows.append({"id": f"d{i}", "text": text, "chain_id": f"c{i // chain_of}", "round": i % chain_of,
                     "inherits": i % chain_of > 0, "pairs": pairs_})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def rendered() -> tuple[list[dict], list[AugmentedText], TemplifyStats]:
    rows = corpus_rows(2400)
    stats = TemplifyStats()
    return rows, list(templify(rows, seed=0, stats=stats)), stats


def views_of(row: dict) -> list:
    from instructpt.synthesis.format import Pair

    views = [classify(Pair(p["instruction"], p["response"])) for p in row["pairs"]]
    return [v for v in views if not isinstance(v, str)]


def test_one_pattern_per_kind_per_text(rendered):
    rows, texts, stats = rendered
    by_id = {r["id"]: r for r in rows}
    checked = Counter()
    for t in texts[:1000] if len(texts) >= 1000 else texts:
        families = Counter(tid.rpartition("/")[0] for tid in t.templates)
        for family in PER_TEXT_FAMILIES:
            assert families[family] <= 1, (family, t.templates)
        if t.mode != "classic" or any(tid.startswith("inversion/") for tid in t.templates):
            continue
        qa = next((resolve(tid) for tid in t.templates if tid.startswith("qa/")), None)
        free = [v for i in t.source_ids for v in views_of(by_id[i]) if v.kind == "free"]
        if len(free) >= 2:  # every free-form pair of every shot, through the text's one pattern
            for v in free:
                assert qa.format(question=v.question, answer=v.answer) in t.text
            checked["free"] += 1
    assert checked["free"] >= 100
    consistency = stats.distribution()["pattern_consistency"]
    assert set(consistency) == {"free", "options", "cot", "options_cot"}
    assert all(c["share"] == 1.0 and c["texts"] >= 30 for c in consistency.values()), consistency


def test_bare_document_share(rendered):
    rows, texts, stats = rendered
    by_id = {r["id"]: r for r in rows}
    share = stats.distribution()["bare_document_share"]
    assert abs(share - BARE_RATE) <= 0.05 and BARE_RATE == 0.5
    bare = 0
    inverted = lambda t: any(x.startswith("inversion/") for x in t.templates)  # noqa: E731
    classic = [t for t in texts if t.mode == "classic" and not inverted(t)]
    for t in classic:
        if not any(x.startswith("reading/") for x in t.templates):
            assert t.text.startswith(by_id[t.source_ids[0]]["text"])  # nothing before the document
            bare += 1
    assert abs(bare / len(classic) - 0.5) <= 0.05


def test_multiple_choice_without_options_share(rendered):
    rows, texts, stats = rendered
    by_id = {r["id"]: r for r in rows}
    shown = hidden = 0
    for t in texts:
        views = [v for i in t.source_ids for v in views_of(by_id[i])]
        listed = Counter(o for v in views if v.options for o in v.options)
        for v in views:
            if v.kind != "options" or v.none_index is not None:
                continue
            own = [o for k, o in enumerate(v.options) if k != v.answer_index and listed[o] == 1]
            if own:  # distractors no other pair of the text lists: shown iff the list is
                shown += all(o in t.text for o in own)
                hidden += not any(o in t.text for o in own)
    assert shown + hidden >= 1000
    assert 0.4 <= hidden / (shown + hidden) <= 0.6
    assert 0.45 <= stats.distribution()["mc_without_options_share"] <= 0.55


def test_option_layouts_inline_and_one_per_line(rendered):
    rows, texts, _ = rendered
    by_id = {r["id"]: r for r in rows}
    layouts = Counter()
    for t in texts:
        for i in t.source_ids:
            for v in views_of(by_id[i]):
                if v.options is None or not all(o in t.text for o in v.options if v.none_index is None):
                    continue
                line = next((ln for ln in t.text.split("\n") if v.options[0] in ln), "")
                layouts["inline" if all(o in line for o in v.options) else "per_line"] += 1
    assert layouts["inline"] >= 50 and layouts["per_line"] >= 50


def test_numbered_questions_before_the_document(rendered):
    rows, texts, stats = rendered
    by_id = {r["id"]: r for r in rows}
    found = 0
    for t in texts:
        if t.mode == "numbered" and any(x.startswith("numbered_preview/") for x in t.templates):
            row = by_id[t.source_ids[0]]
            first_question = views_of(row)[0].question
            assert t.text.index(first_question) < t.text.index(row["text"])
            found += 1
    assert found >= 5 and stats.distribution()["layouts"]["numbered_before"] == found


def test_inline_fewshot_answer_first_then_explanation():
    rows = corpus_rows(4000, chain_of=1)
    found = 0
    for t in templify(rows, seed=1):
        if not any(x.startswith("fewshot_inline/") for x in t.templates):
            continue
        row = rows[int(t.id[1:])]
        views = views_of(row)
        for v in views[:-1]:  # worked examples: the answer, then why
            if v.kind == "cot":
                assert t.text.index(v.answer, t.text.index(v.question)) < t.text.index(v.rationale)
                found += 1
        last = views[-1]
        if last.rationale is not None:  # the test item asks only for the answer
            assert last.rationale not in t.text
    assert found >= 5


def test_template_ids_present_and_resolvable(rendered):
    _, texts, stats = rendered
    for t in texts:
        assert bool(t.templates) == (t.mode != "raw")
        for tid in t.templates:
            resolve(tid)
        assert t.to_dict()["templates"] == list(t.templates)
    usage = stats.to_dict()["template_usage"]
    assert sum(1 for tid in usage if tid.startswith("opt_style/")) >= 60
    with pytest.raises((KeyError, IndexError)):
        resolve("qa/100000")


def test_a_fragment_with_two_que_tags_is_dropped():
    result = parse_generation(
        "<QUE> What is abandoned here? <QUE> Which question is real? <ANS> This one. </END>\n\n"
        "<QUE> Second? <ANS> Yes. </END>"
    )
    assert [p.instruction for p in result.pairs] == ["Second?"]
    assert result.dropped == {DROP_MULTIPLE_QUE: 1}
