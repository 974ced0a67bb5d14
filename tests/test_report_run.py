"""`instructpt report` on a real run (`instructpt run` on the example corpus, rules engine): its
figures against the run's outputs, and the page in a real headless Chromium: the sample browser,
hostile text, and the charts' layout (issue 17: toolbar, headroom, ticks, labels, card fill)."""

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
from instructpt.report import analyze, write_report

from .test_report import QUOTES, row, write_synthesize

EXAMPLES = Path(__file__).parent.parent / "examples"
DOCS = Path(__file__).parent.parent / "docs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--headless=new", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


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


# Where each chart's parts are drawn: its card, its drawing, the toolbar (plotly's modebar, shown on
# hover), each plot area, the titles and legend above them, every bar and every tick label.
LAYOUT = """() => [...document.querySelectorAll('.chart')].map(card => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const all = sel => [...card.querySelectorAll(sel)];
  const modebar = card.querySelector('.modebar');
  return {
    id: card.querySelector('.plot').id, card: box(card), svg: box(card.querySelector('svg.main-svg')),
    modebar: modebar && modebar.children.length ? box(modebar) : null,
    plots: all('.nsewdrag').map(box),
    titles: all('.annotation, .legend, .gtitle').map(box),
    bars: all('.trace.bars .point path').map(box),
    horizontal: card.querySelector('.js-plotly-plot')._fullData.some(t => t.orientation === 'h'),
    ticks: all('.xaxislayer-above text, .yaxislayer-above text').map(e => e.textContent),
    yticks: all('.yaxislayer-above text').map(e => e.textContent),
  };
})"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


NUMBER = re.compile(r"^[−-]?[\d,]*\.?\d+[kMGTB]?$")


@pytest.mark.slow
def test_charts_layout_in_chromium(real_run, browser, tmp_path):
    """Issue 17: the toolbar covers no title, legend or bar; no bar is cut at the top; count axes
    have whole-number ticks; openings show no doubled quotes; every chart fills its card."""
    pytest.importorskip("plotly")
    result = write_report([real_run / "work"], tmp_path / "report.html", sample_size=5)
    page, seen = open_page(browser, tmp_path / "report.html")
    page.wait_for_function(f"{RENDERED} === {len(result['charts'])}", timeout=30_000)
    charts = {c["id"]: c for c in page.evaluate(LAYOUT)}
    assert len(charts) == len(result["charts"]) == 9
    for key, c in charts.items():
        assert c["plots"] and c["ticks"], key
        if c["modebar"]:  # above every plot area (so above every bar), beside every title
            for other in c["plots"] + c["titles"]:
                assert not overlap(c["modebar"], other), (key, c["modebar"], other)
        bars = [b for b in c["bars"] if b[2] > b[0] and b[3] > b[1]]  # a bar of 0 is not drawn
        assert bars, key
        for bar in bars:  # room left between each bar's end and its plot area's edge
            (area,) = [p for p in c["plots"] if overlap(p, bar)]
            assert (area[2] - bar[2] if c["horizontal"] else bar[1] - area[1]) >= 4, (key, bar, area)
        numbers = [t.replace(",", "") for t in c["ticks"] if NUMBER.match(t)]
        assert len(numbers) >= 2, (key, c["ticks"])
        assert not [t for t in numbers if "." in t], (key, c["ticks"])  # no 0.5 records
        # the drawing takes the card's height, less its title and caption
        assert c["card"][3] - c["svg"][3] <= 16, (key, c["card"], c["svg"])
    lengths = charts["chart-lengths"]
    assert lengths["svg"][3] - lengths["svg"][1] >= 0.75 * (lengths["card"][3] - lengths["card"][1])
    labels = charts["chart-openings"]["yticks"]
    assert len(labels) == 20
    for label in labels:
        assert '""' not in label and not (label[0] in QUOTES and label[1] in QUOTES), label
    page.hover("#chart-lengths")  # the toolbar shows on hover, where the check above placed it
    page.wait_for_function(
        "getComputedStyle(document.querySelector('#chart-lengths .modebar')).opacity === '1'"
    )
    assert seen["errors"] == []
    page.close()
