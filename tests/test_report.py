"""`instructpt report`: figures on hand-checkable outputs, alerts, input detection, a page that is
self-contained and escapes its data, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.cli.report import report as report_command
from instructpt.errors import UsageError
from instructpt.report import (
    PARSE_RATE_MIN,
    DuplicateCounter,
    analyze,
    build_report,
    find_stages,
    write_report,
)

EXAMPLES = Path(__file__).parent.parent / "examples"
DOCS = Path(__file__).parent.parent / "docs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--headless=new", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


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


# ---------------------------------------------------------------------------------------------
# A real run: `instructpt run` on the example corpus with the rules engine


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A finished run (synthesize -> templify -> custom weighted mix) in a folder of its own."""
    from instructpt.testing import train_tokenizer

    root = tmp_path_factory.mktemp("report-run")
    texts = [json.loads(line)["text"] for line in open(EXAMPLES / "corpus.jsonl")]
    train_tokenizer(texts, vocab_size=1000).save(str(root / "tokenizer.json"))
    for name in ("corpus.jsonl", "corpus-with-errors.jsonl"):
        shutil.copy(EXAMPLES / name, root / name)
    config = {
        "workdir": str(root / "work"),
        "synthesize": {"inputs": [str(root / "corpus.jsonl")], "engine": "rules",
                       "model": str(root / "tokenizer.json"), "shard_size": 16},
        "templify": {"seed": 0},
        "mix": {"recipe": "custom", "augmented_weight": 1.0, "tokenizer": str(root / "tokenizer.json"),
                "sources": [{"name": "web", "weight": 0.5,
                             "paths": [str(root / "corpus.jsonl"), str(root / "corpus-with-errors.jsonl")]}],
                "bos_text": "<s>", "eos_text": "</s>", "workers": 1, "format": "jsonl"},
    }  # fmt: skip
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(root / "run.yaml")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root


def test_figures_of_a_real_run_match_its_outputs(real_run):
    work = real_run / "work"
    result = analyze([work], sample_size=10, seed=3)
    figures = result["figures"]
    summary = json.loads((work / "synthesized" / "summary.json").read_text())
    syn = figures["synthesize"]
    for key in ("documents", "entries", "pairs", "entries_without_pairs", "generations_hit_max_new_tokens"):
        assert syn[key] == summary[key], key
    assert sum(syn["kinds"].values()) == summary["pairs"]
    assert syn["parse_rate"] == 1.0  # the rules engine writes no malformed fragment
    tem_summary = json.loads((work / "augmented" / "summary.json").read_text())
    assert figures["templify"]["modes"] == tem_summary["modes"]
    assert figures["templify"]["families"] == tem_summary["families"]
    mix_manifest = json.loads((work / "train" / "manifest.json").read_text())
    assert figures["mix"]["tokens_total"] == mix_manifest["tokens_total"]
    web = figures["mix"]["sources"][1]
    assert web["ratio_achieved"] == mix_manifest["sources"][1]["ratio_to_anchor_achieved"]
    assert web["rejected"] == 6  # the six bad records of corpus-with-errors.jsonl
    assert "mix_rejected:web" in {a["id"] for a in result["alerts"]}
    # The sample: 10 entries, in corpus order, each with the one text it is verbatim in.
    assert len(result["sample"]) == 10
    for record in result["sample"]:
        assert record["id"] in record["augmented"]["source_ids"]
        assert record["text"] in record["augmented"]["text"]
    # The stage folders given one by one are the same report as the workdir.
    parts = analyze([work / "train", work / "synthesized", work / "augmented"], sample_size=10, seed=3)
    assert parts == result
    assert [s["id"] for s in analyze([work], 10, seed=4)["sample"]] != [s["id"] for s in result["sample"]]


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
# The page in a real browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    """The page at `path`, with every console error, page error, dialog and request recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen: dict[str, list[str]] = {"errors": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.resolve().as_uri())
    return page, seen


RENDERED = (
    "[...document.querySelectorAll('.js-plotly-plot')].filter(e => e.querySelector('svg.main-svg')).length"
)


@pytest.mark.slow
def test_report_in_chromium(real_run, browser, monkeypatch, tmp_path):
    pytest.importorskip("plotly")
    monkeypatch.chdir(real_run)  # relative paths, so the screenshot shows no temporary folder
    result = write_report(["work"], "report.html", sample_size=20)
    charts = len(result["charts"])
    assert charts == 9  # + template usage (issue 12)
    page, seen = open_page(browser, real_run / "report.html")
    page.wait_for_function(f"{RENDERED} === {charts}", timeout=30_000)
    assert page.evaluate("document.querySelectorAll('.js-plotly-plot').length") == charts
    texts = {}
    for shard in sorted((real_run / "work" / "synthesized" / "data").glob("*.parquet")):
        import pyarrow.parquet as pq

        texts.update({r["id"]: r["text"] for r in pq.read_table(shard, columns=["id", "text"]).to_pylist()})
    first, second = result["samples"][0], result["samples"][1]
    assert page.text_content("#doc-text") == texts[first]
    assert first in page.text_content("#doc-meta")
    assert page.text_content("#aug-text mark") == texts[first]  # highlighted in its augmented text
    assert page.locator("#pairs li").count() >= 1
    page.click("#next")
    assert page.text_content("#doc-text") == texts[second] != texts[first]
    page.select_option("#sample-select", index=5)
    assert page.text_content("#doc-text") == texts[result["samples"][5]]
    page.click("#prev")
    assert page.text_content("#doc-text") == texts[result["samples"][4]]
    page.select_option("#sample-select", index=0)
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in seen["requests"]), seen[
        "requests"
    ]
    DOCS.mkdir(exist_ok=True)
    # The committed docs/report.png is refreshed only on request, so a test run leaves the tree clean.
    shot = DOCS / "report.png" if os.environ.get("INSTRUCTPT_UPDATE_SCREENSHOT") else tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()


@pytest.mark.slow
def test_hostile_text_stays_text_in_chromium(tmp_path, browser):
    pytest.importorskip("plotly")
    hostile = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2;alert(1)">'
    rows = [row("d<x>", [(f"<b>{hostile}</b>?", hostile)], text=hostile + "\n & done")]
    out = write_synthesize(tmp_path / "syn", rows, rejected={"<i>bad</i>": 1})
    write_report([out], tmp_path / "r.html")
    page, seen = open_page(browser, tmp_path / "r.html")
    page.wait_for_function(f"{RENDERED} > 0", timeout=30_000)
    assert page.text_content("#doc-text") == hostile + "\n & done"
    assert page.text_content("#pairs li .a") == hostile
    assert page.evaluate("window.__pwned === undefined && document.querySelectorAll('img').length === 0")
    assert seen["errors"] == [] and seen["dialogs"] == []
    page.close()
