"""`instructpt report`: figures on hand-checkable outputs, alerts, input detection, the charts'
axes and labels, a page that is self-contained and escapes its data (a real run and the page in
Chromium: test_report_run.py)."""

from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from instructpt.cli.report import report as report_command
from instructpt.errors import UsageError
from instructpt.report import (
    PARSE_RATE_MIN,
    DuplicateCounter,
    analyze,
    build_report,
    find_stages,
)

# ---------------------------------------------------------------------------------------------
# Crafted outputs: a synthesize folder written by hand, so every figure can be checked by hand


def row(doc_id: str, pairs: list[tuple[str, str]], finish: str = "stop", text: str | None = None) -> dict:
    return {
        "id": doc_id, "doc_id": doc_id, "part": 0, "n_parts": 1,
        "text": text if text is not None else f"The text of {doc_id}.",
        "pairs": [{"instruction": q, "response": a} for q, a in pairs],
        "chain_id": "00000-0", "position": 0, "round": 0, "inherits": False, "n_context": 0,
        "prompt_tokens": 10, "generated_tokens": 5, "finish_reason": finish, "truncated": False,
        "source": f"corpus.jsonl:{doc_id}",
    }  # fmt: skip


def write_synthesize(folder: Path, rows: list[dict], fmt: str = "jsonl", complete: bool = True,
                     parse_dropped: dict | None = None, rejected: dict | None = None) -> Path:  # fmt: skip
    (folder / "data").mkdir(parents=True)
    shard = folder / "data" / f"part-00000.{fmt}"
    if fmt == "jsonl":
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from instructpt.io.output import arrow_schema

        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(False)), shard)
    rejected = rejected or {}
    manifest = {
        "format_version": 1, "fingerprint": "synth00000000000",
        "settings": {"rounds": 2, "max_new_tokens": 400, "engine": "scripted", "format": fmt},
        "complete": complete,
        "shards": {"0": {"file": f"data/part-00000.{fmt}", "rejects_file": None, "counts": {},
                         "seconds": 2.0}},
    }  # fmt: skip
    summary = {
        "documents": len(rows), "entries": len(rows), "pairs": sum(len(r["pairs"]) for r in rows),
        "rejected_inputs": sum(rejected.values()), "rejected_by_reason": rejected,
        "parse_dropped": parse_dropped or {},
        "long_docs": {"split": 0, "parts": 0, "truncated": 0, "skipped": 0},
        "this_run": {"seconds": 2.0, "documents_per_s": len(rows) / 2, "raw_tokens_per_s": 100.0,
                     "generated_tokens_per_s": 50.0, "documents": len(rows)},
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_mix(folder: Path, achieved: float, rejected: int = 0) -> Path:
    folder.mkdir(parents=True)
    sources = [
        {"name": "aug", "weight": 1.0, "documents_available": 10, "tokens_available": 1000, "rejected": {},
         "documents_selected": 10, "tokens_selected": 1000, "sampling": "all",
         "ratio_to_anchor_requested": 1.0, "ratio_to_anchor_achieved": 1.0},
        {"name": "web", "weight": 1.0, "documents_available": 99, "tokens_available": 5000,
         "rejected": {"invalid_json": rejected} if rejected else {}, "documents_selected": 20,
         "tokens_selected": round(1000 * achieved), "sampling": "downsampled to 20.0%",
         "ratio_to_anchor_requested": 1.0, "ratio_to_anchor_achieved": achieved},
    ]  # fmt: skip
    total = sum(s["tokens_selected"] for s in sources)
    manifest = {"settings": {"sources": [], "recipe": "custom", "format": "jsonl"}, "complete": True,
                "sources": sources, "tokens_total": total, "documents_total": 30,
                "token_share": {s["name"]: s["tokens_selected"] / total for s in sources}}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


BAD_ROWS = [
    row(
        "d0",
        [("What is the capital of France?", "Paris"), ("Which river?\nOptions:\n- Seine\n- Loire", "Seine")],
    ),
    row("d1", [], finish="length"),
    row("d2", [("what is the capital of France?", "Paris.")]),
    row("d3", [("Why?\nLet's think step by step.", "Because.\nTherefore, the answer is yes")]),
]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_figures_by_hand(tmp_path, fmt):
    dropped = {"missing_ans": 1, "duplicate_instruction": 7}
    out = write_synthesize(
        tmp_path / "syn", BAD_ROWS, fmt, parse_dropped=dropped, rejected={"invalid_json": 1}
    )
    syn = analyze([out])["figures"]["synthesize"]
    assert (syn["documents"], syn["entries"], syn["pairs"]) == (4, 4, 4)
    # 4 pairs, 1 malformed fragment; the 7 repeated instructions are not format failures
    assert syn["parse_rate"] == pytest.approx(4 / 5)
    assert syn["zero_pair_share"] == pytest.approx(1 / 4)
    assert syn["pairs_per_entry_histogram"] == {"0": 1, "1": 2, "2": 1}
    assert syn["kinds"] == {"free": 2, "options": 1, "cot": 1}
    # "what is the capital of france?" twice among 4 pairs: 1 repeat
    assert syn["duplicate_instruction_share"] == pytest.approx(1 / 4) and syn["duplicate_instruction_exact"]
    assert syn["hit_max_new_tokens_share"] == pytest.approx(1 / 4)
    assert syn["rejected_share"] == pytest.approx(1 / 5)
    assert tuple(syn["top_openings"][0]) == ("what is the", 2)
    # words: "What is the capital of France?" 6, the options question 7 (options included), the CoT one 6
    assert syn["instruction_words_histogram"] == {"6": 3, "7": 1}
    assert syn["response_words_histogram"] == {"1": 3, "6": 1}
    assert syn["instruction_words"]["median"] == 6 and syn["response_words"]["p90"] == 6
    assert syn["throughput"]["last_run"]["documents_per_s"] == 2.0


def test_alerts_fire_on_a_bad_run_and_not_on_a_good_one(tmp_path):
    bad = write_synthesize(tmp_path / "bad", BAD_ROWS, parse_dropped={"missing_ans": 1}, rejected={"x": 1})
    ids = {a["id"] for a in analyze([bad])["alerts"]}
    assert ids == {
        "parse_rate",
        "zero_pairs",
        "duplicate_instructions",
        "hit_max_new_tokens",
        "rejected_inputs",
    }
    assert all(a["explanation"].endswith(".") and a["message"] for a in analyze([bad])["alerts"])

    # Every figure exactly at its threshold: 9 pairs / (9 + 1) = 90% parse rate, 1 of 5 entries
    # without pairs (20%); many duplicates dropped inside generations do not count.
    pairs = [
        [(f"Question {i}-{j} about it?", "Yes.") for j in range(n)] for i, n in enumerate([3, 2, 2, 2, 0])
    ]
    good_rows = [row(f"g{i}", p) for i, p in enumerate(pairs)]
    dropped = {"unfinished_last_pair": 1, "duplicate_instruction": 40}
    good = write_synthesize(tmp_path / "good", good_rows, parse_dropped=dropped)
    result = analyze([good])
    assert result["figures"]["synthesize"]["parse_rate"] == PARSE_RATE_MIN
    assert result["alerts"] == []


def test_mix_ratio_and_reject_alerts(tmp_path):
    off = analyze([write_mix(tmp_path / "off", achieved=1.01, rejected=10)])
    assert {a["id"] for a in off["alerts"]} == {"mix_ratio:web", "mix_rejected:web"}
    close = analyze([write_mix(tmp_path / "close", achieved=1.004, rejected=1)])
    assert close["alerts"] == []
    web = close["figures"]["mix"]["sources"][1]
    assert (web["ratio_requested"], web["ratio_achieved"], web["rejected_share"]) == (1.0, 1.004, 0.01)


def test_unfinished_and_mismatched_stages_are_flagged(tmp_path):
    syn = write_synthesize(tmp_path / "syn", BAD_ROWS[:1], complete=False)
    tem = tmp_path / "tem"
    (tem / "data").mkdir(parents=True)
    (tem / "data" / "part-00000.jsonl").write_text("")
    (tem / "manifest.json").write_text(json.dumps({
        "fingerprint": "tem", "complete": True, "shards": {"0": {"file": "data/part-00000.jsonl"}},
        "settings": {"templates": "x", "source_fingerprint": "another-run", "seed": 0},
    }))  # fmt: skip
    (tem / "summary.json").write_text(json.dumps({"texts": 0, "documents": 0, "modes": {}, "families": {}}))
    ids = {a["id"] for a in analyze([syn, tem])["alerts"]}
    assert {"synthesize_incomplete", "templify_source"} <= ids


def test_paths_that_are_no_output_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "some other tool"}')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for path, message in [(empty, "is not an instructpt output"), (foreign, "is not an instructpt output"),
                          (broken, "cannot read"), (a_file, "is not a folder"),
                          (tmp_path / "missing", "is not a folder")]:  # fmt: skip
        with pytest.raises(UsageError, match=message) as info:
            find_stages([path])
        assert "\n" not in str(info.value)
    one = write_synthesize(tmp_path / "one", BAD_ROWS)
    two = write_synthesize(tmp_path / "two", BAD_ROWS)
    with pytest.raises(UsageError, match="two synthesize outputs"):
        find_stages([one, two])
    with pytest.raises(UsageError, match="no output folder"):
        find_stages([])


def test_duplicate_counter_stays_bounded_and_estimates_well():
    counter = DuplicateCounter(cap=500)
    for i in range(20_000):  # 10,000 distinct items, each seen twice (with other case)
        counter.add(f"Question number {i % 10_000}?" if i < 10_000 else f"QUESTION NUMBER {i % 10_000}?")
    assert not counter.exact and len(counter.counts) <= 500
    # A hash sample keeps every repeat of the items it keeps, so here it is exact: half are repeats.
    assert counter.share() == pytest.approx(0.5)


@given(st.integers(min_value=0, max_value=10**15))
def test_count_axes_have_whole_ticks_and_headroom(top):
    from instructpt.report.charts import MAX_COUNT_TICKS, count_axis, count_step

    step = count_step(top)
    assert isinstance(step, int) and step >= 1 and top <= step * MAX_COUNT_TICKS
    digits = str(step)
    assert digits[0] in "125" and set(digits[1:]) <= {"0"}  # 1, 2 or 5 times a power of ten
    smaller = step // 2 if digits[0] != "5" else step * 2 // 5  # the next nice step down
    assert smaller < 1 or top > smaller * MAX_COUNT_TICKS  # the smallest one that fits
    axis = count_axis(top)
    assert axis["dtick"] == count_step(max(top, 1)) and axis["tickformat"] == ",d"
    assert axis["range"][0] == 0 and axis["range"][1] > max(top, 1)  # the top bar is not cut


QUOTES = "\"'“”‘’«»"


@given(st.text(alphabet=st.sampled_from("ab \"'“”«<&"), max_size=12))
def test_opening_labels_add_no_quotes(opening):
    from instructpt.report.charts import opening_label

    label = html.unescape(opening_label(opening))
    assert label.startswith(opening) and label.count("…") == opening.count("…") + 1
    assert sum(label.count(q) for q in QUOTES) == sum(opening.count(q) for q in QUOTES)


def test_openings_chart_of_quoted_instructions(tmp_path):
    pytest.importorskip("plotly")
    from instructpt.report.charts import build_charts

    rows = [row("q0", [('"A cup of tea" means?', "Tea."), ('Premise: "a cup of tea". True?', "Yes.")])]
    figures = analyze([write_synthesize(tmp_path / "syn", rows)])["figures"]
    (chart,) = [c for c in build_charts(figures) if c["id"] == "chart-openings"]
    labels = [html.unescape(y) for y in chart["figure"]["data"][0]["y"]]
    assert sorted(labels) == ['"a cup of …', 'premise: "a cup …']


def test_page_is_self_contained_deterministic_and_escaped(tmp_path):
    pytest.importorskip("plotly")
    from plotly.offline import get_plotlyjs

    hostile = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & "x"'
    rows = [row("evil</script>", [("<b>What</b> is <i>this</i>?", hostile)], text=hostile), *BAD_ROWS]
    out = write_synthesize(tmp_path / "syn", rows)
    page = build_report([out], sample_size=5)
    assert page == build_report([out], sample_size=5)
    assert page.count(get_plotlyjs()[:300]) == 1  # the bundle inlined once
    outside_scripts = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S)
    assert "http://" not in outside_scripts and "https://" not in outside_scripts
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page)
    assert not re.search(r"<link\b[^>]*\bhref\s*=\s*[\"']?(https?:)?//", page)
    assert "default-src 'none'" in page
    assert hostile not in page and "<img" not in outside_scripts
    assert page.count("</script>") == page.count("<script")  # no data closes a script element


def test_cli(tmp_path):
    pytest.importorskip("plotly")
    out = write_synthesize(tmp_path / "syn", BAD_ROWS, parse_dropped={"missing_ans": 1})
    runner = CliRunner()
    result = runner.invoke(report_command, [str(out), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").stat().st_size > 1_000_000
    assert "alert: Parse rate 80.0% is below 90%." in result.output
    result = runner.invoke(
        report_command, [str(out), "-o", str(tmp_path / "r.html"), "--json", "--samples", "2"]
    )
    assert len(json.loads(result.output)["samples"]) == 2
    result = runner.invoke(report_command, [str(out / "data"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "not an instructpt output" in result.output


# ---------------------------------------------------------------------------------------------
# A decontaminate folder between synthesize and templify (real stage outputs)


def test_decontaminate_output_is_reported(tmp_path, scripted):
    from instructpt.quality.decontaminate import DecontaminateOptions, run_decontaminate
    from instructpt.quality.filters import FilterSettings
    from instructpt.report.page import headline
    from instructpt.templating.stage import run_templify

    from .test_decontaminate import BENCH_Q, QUIET, make_synthesized, write_jsonl

    synth = make_synthesized(tmp_path, scripted)  # doc3's text and doc5's first pair hold BENCH_Q
    quiz = write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q}])
    other = write_jsonl(tmp_path / "other.jsonl", [{"question": "nothing of this appears in any document"}])
    options = DecontaminateOptions(filters=FilterSettings(max_response_chars=2))  # also drops pairs by length
    summary = run_decontaminate(synth, tmp_path / "clean", [f"quiz={quiz}", f"other={other}"], options,
                                progress=False, log=QUIET)  # fmt: skip
    run_templify(tmp_path / "clean", tmp_path / "aug", progress=False, log=QUIET)

    result = analyze([tmp_path])  # the folder holds every stage's output, as a run workdir does
    dec = result["figures"]["decontaminate"]
    assert dec["contamination"] == {"quiz": {"documents": 1, "pairs": 1}} == summary["contamination"]
    assert set(dec["benchmarks"]) == {"quiz", "other"}
    assert dec["pairs_dropped"] == summary["pairs_dropped"] and dec["pairs_dropped"]["contaminated"] == 1
    assert dec["pairs_dropped"]["response_too_long"] == summary["pairs_in"] - 1  # "Venus" is 5 > 2 chars
    # templify read the decontaminate output, which read the synthesize output: no source mismatch
    assert not [a for a in result["alerts"] if a["id"].endswith("_source")]
    cards = {c["label"]: c for c in headline(result["figures"])}
    assert cards["Contamination"]["value"] == "1 documents, 1 pairs"
    assert cards["Contamination"]["detail"] == "other: 0 documents, 0 pairs; quiz: 1 documents, 1 pairs"
    dropped = sum(summary["pairs_dropped"].values())
    assert cards["Pairs filtered"]["value"] == f"{dropped:,}"
    assert f"response_too_long {dropped - 1:,}; contaminated 1;" in cards["Pairs filtered"]["detail"]
    assert cards["Pairs filtered"]["detail"].endswith("documents: 1 cut, 0 dropped")
    if importlib.util.find_spec("plotly") and importlib.util.find_spec("jinja2"):
        page = build_report([tmp_path], sample_size=3)
        assert "Contamination" in page and "Pairs filtered" in page and "decontaminate: " in page

    # templify made from synthesize directly, reported beside a decontaminate output: flagged
    run_templify(synth, tmp_path / "aug-raw", progress=False, log=QUIET)
    alerts = analyze([synth, tmp_path / "clean", tmp_path / "aug-raw"])["alerts"]
    alerts = [a for a in alerts if a["id"].endswith("_source")]
    assert [a["id"] for a in alerts] == ["templify_source"]
    assert "another decontaminate run" in alerts[0]["explanation"]
