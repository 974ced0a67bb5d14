"""The report's charts: plotly figures built here, drawn by the plotly.js inlined in the page.

One function per chart, each taking the figures of the three stages (any may be None) and
returning a `Chart`, or None when its data is not there; `build_charts` turns them into JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import MissingExtraError
from .figures import OPENING_WORDS
from .page import pct

_BLUE, _ORANGE, _GREEN, _RED, _GREY = "#3366cc", "#ff9900", "#109618", "#dc3912", "#999999"
_KIND_COLORS = {"free": _BLUE, "options": _GREEN, "cot": _ORANGE, "options_cot": "#990099"}

Stage = Mapping[str, Any] | None


class Chart(NamedTuple):
    key: str
    title: str
    caption: str
    figure: Any  # a plotly Figure


def plotly() -> Any:
    """plotly.graph_objects, or a MissingExtraError naming the `report` extra."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingExtraError("instructpt report", "report", "plotly") from None
    return go


# Room above every plot area for plotly's toolbar (the modebar, shown on hover at the top right),
# so it never covers a bar, a title or a legend; charts with titles above the plot add theirs.
TOOLBAR_ROOM = 40
TITLE_ROOM = 24  # a line of subplot titles or legend
MAX_COUNT_TICKS = 8


def _layout(fig: Any, x: str, y: str, **extra: Any) -> Any:
    layout = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": TOOLBAR_ROOM, "b": 50},
              "height": 340, "xaxis_title": x, "yaxis_title": y, "showlegend": False}  # fmt: skip
    fig.update_layout(**{**layout, **extra})
    return fig


def _hbar_layout(fig: Any, x: str, rows: int, left: int, **extra: Any) -> Any:
    """A horizontal bar chart's layout: a row per bar, room for the labels on the left."""
    _layout(fig, x, "", height=max(300, 22 * rows + 90))
    fig.update_layout(margin={"l": left, "r": 20, "t": TOOLBAR_ROOM, "b": 50}, **extra)
    return fig


def count_step(top: float, ticks: int = MAX_COUNT_TICKS) -> int:
    """The tick step of an axis of counts from 0 to `top`: 1, 2 or 5 times a power of ten, the
    smallest that gives at most `ticks` steps, so every tick is a whole number."""
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            if top <= m * magnitude * ticks:
                return m * magnitude
        magnitude *= 10


def count_axis(top: float) -> dict[str, Any]:
    """Settings of an axis of counts whose largest value is `top`: whole-number ticks (never 0.5
    records), and 8% headroom, so the top bar (and a label on it) is never cut by the frame."""
    top = max(top, 1)
    return {"range": [0, top * 1.08], "tick0": 0, "dtick": count_step(top), "tickformat": ",d",
            "automargin": True}  # fmt: skip


def _label(text: Any) -> str:
    """Text for a plotly label: plotly reads a few HTML tags and entities in labels, so text from
    the data (instructions, source names) is entity-escaped to be shown exactly as written."""
    return html.escape(str(text), quote=False)


def opening_label(opening: str) -> str:
    """An instruction opening as a label: as written, with an ellipsis, and no quotes added (the
    openings often hold quotes of their own: `"a cup of` in quotes read as doubled quotes)."""
    return _label(f"{opening} …")


def pairs_per_entry(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (syn and syn["entries"]):
        return None
    go = plotly()
    hist = syn["pairs_per_entry_histogram"]
    xs = [int(k) for k in hist]
    fig = go.Figure(go.Bar(x=xs, y=list(hist.values()), marker_color=[_RED if x == 0 else _BLUE for x in xs],
                           hovertemplate="%{x} pairs: %{y} entries<extra></extra>"))  # fmt: skip
    top = max(hist.values())
    _layout(fig, "pairs", "entries", xaxis_dtick=count_step(max(xs), ticks=16), yaxis=count_axis(top))
    caption = ("Entries (documents, or parts of split documents) by how many pairs they got; "
               "0 (red) becomes raw text.")  # fmt: skip
    return Chart("pairs-per-entry", "Pairs per entry", caption, fig)


def kinds(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (syn and syn["kinds"]):
        return None
    go = plotly()
    counts = syn["kinds"]
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()),
                           marker_color=[_KIND_COLORS.get(k, _GREY) for k in counts],
                           hovertemplate="%{x}: %{y} pairs<extra></extra>"))  # fmt: skip
    caption = ("How templify reads each pair: free-form, multiple-choice, chain-of-thought, both; "
               "grey bars are pairs it cannot template, by reason.")  # fmt: skip
    return Chart("kinds", "Pair kinds", caption,
                 _layout(fig, "", "pairs", yaxis=count_axis(max(counts.values()))))  # fmt: skip


def word_bins(hist: Mapping[str, int], end: int) -> tuple[list[float], list[int], list[str], int]:
    """A word-count histogram in about 40 bins from 0 to `end`: (bin centres, counts, "a–b words"
    labels, bin width). Lengths past the last bin are left out."""
    size = max(1, -(-end // 40))
    counts = [0] * (end // size + 1)
    for words, n in hist.items():
        if int(words) < len(counts) * size:
            counts[int(words) // size] += n
    centres = [i * size + (size - 1) / 2 for i in range(len(counts))]
    labels = [f"{i * size} words" if size == 1 else f"{i * size}–{i * size + size - 1} words"
              for i in range(len(counts))]  # fmt: skip
    return centres, counts, labels, size


def lengths(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (syn and syn["pairs"]):
        return None
    go = plotly()
    from plotly.subplots import make_subplots

    # One above the other, each the card's full width: the card stands beside the openings chart,
    # whose twenty rows make it tall, and two histograms side by side left half of it empty.
    names = ("words per instruction", "words per response")
    fig = make_subplots(rows=2, cols=1, subplot_titles=names, vertical_spacing=0.2)
    for row, (name, color) in enumerate((("instruction", _BLUE), ("response", _ORANGE)), start=1):
        end = max(syn[f"{name}_words"]["p99"] or 1, 1)
        centres, counts, labels, size = word_bins(syn[f"{name}_words_histogram"], end)
        trace = go.Bar(x=centres, y=counts, width=size * 0.95, customdata=labels, marker_color=color,
                       name=name, hovertemplate="%{customdata}: %{y} pairs<extra></extra>")  # fmt: skip
        fig.add_trace(trace, row=row, col=1)
        fig.update_xaxes(range=[-0.5, len(counts) * size - 0.5], tick0=0, dtick=count_step(end),
                         row=row, col=1)  # fmt: skip
        fig.update_yaxes(title_text="pairs", row=row, col=1, **count_axis(max(counts)))
    fig.update_xaxes(title_text="words", row=2, col=1)
    for title in fig.layout.annotations:  # subplot titles on the left, clear of the toolbar
        title.update(x=0, xanchor="left", font={"size": 13})
    fig.update_layout(template="plotly_white", height=480, showlegend=False,
                      margin={"l": 60, "r": 20, "t": TOOLBAR_ROOM + TITLE_ROOM, "b": 50})  # fmt: skip
    caption = "Words per instruction and per response, up to the 99th percentile."
    return Chart("lengths", "Instruction and response lengths", caption, fig)


def openings(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (syn and syn["top_openings"]):
        return None
    go = plotly()
    top = list(reversed(syn["top_openings"]))
    fig = go.Figure(go.Bar(y=[opening_label(o) for o, _ in top], x=[c for _, c in top], orientation="h",
                           marker_color=_BLUE, hovertemplate="%{y}: %{x} pairs<extra></extra>"))  # fmt: skip
    title = f"Most frequent instruction openings (first {OPENING_WORDS} words)"
    caption = "A few openings dominating means templated, repetitive questions."
    layout = _hbar_layout(fig, "pairs", len(top), 220, xaxis=count_axis(max(c for _, c in top)))
    return Chart("openings", title, caption, layout)


def modes(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (tem and tem.get("modes")):
        return None
    go = plotly()
    counts = dict(sorted(tem["modes"].items(), key=lambda kv: -kv[1]))
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()),
                           marker_color=[_GREY if m == "raw" else _GREEN for m in counts],
                           hovertemplate="%{x}: %{y} texts<extra></extra>"))  # fmt: skip
    caption = (f"Texts by rendering mode ({tem.get('inversions') or 0} inversions); raw: documents "
               "without usable pairs.")  # fmt: skip
    return Chart("modes", "Templify modes", caption,
                 _layout(fig, "", "texts", yaxis=count_axis(max(counts.values()))))  # fmt: skip


def families(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (tem and tem.get("families")):
        return None
    go = plotly()
    drawn = sorted(tem["families"].items(), key=lambda kv: kv[1])
    distinct = tem.get("distinct_patterns") or {}
    fig = go.Figure(go.Bar(y=[f for f, _ in drawn], x=[c for _, c in drawn], orientation="h",
                           customdata=[distinct.get(f, 0) for f, _ in drawn], marker_color=_GREEN,
                           hovertemplate="%{y}: drawn %{x} times, %{customdata} distinct patterns"
                                         "<extra></extra>"))  # fmt: skip
    caption = (f"How often each family of the template library was drawn; "
               f"{tem.get('distinct_patterns_total') or 0} distinct patterns in all.")  # fmt: skip
    layout = _hbar_layout(fig, "times drawn", len(drawn), 200, xaxis=count_axis(drawn[-1][1]))
    return Chart("families", "Template pattern families", caption, layout)


def template_usage(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (tem and tem.get("library_sizes") and tem.get("distinct_patterns")):
        return None
    go = plotly()
    sizes, used = tem["library_sizes"], tem["distinct_patterns"]
    names = sorted(sizes, key=lambda f: (used.get(f, 0), f))
    fig = go.Figure(
        [
            go.Bar(y=names, x=[sizes[f] for f in names], orientation="h", name="in the library",
                   marker_color=_GREY, hovertemplate="%{y}: %{x} templates<extra></extra>"),
            go.Bar(y=names, x=[used.get(f, 0) for f in names], orientation="h", name="used",
                   marker_color=_GREEN, hovertemplate="%{y}: %{x} used<extra></extra>"),
        ]
    )  # fmt: skip
    top = max(max(sizes.values()), max(used.values()))
    _hbar_layout(fig, "distinct templates", len(names), 200, barmode="overlay", xaxis=count_axis(top))
    bare, free = tem.get("bare_document_share"), tem.get("mc_without_options_share")
    caption = ("Distinct templates each text recorded (its `templates` ids), per family, against the "
               f"library's size; bare documents {pct(bare)} of Classic shots, multiple choice "
               f"without options {pct(free)}.")  # fmt: skip
    return Chart("template-usage", "Template usage", caption, fig)


def tokens(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    if not (mix and mix["sources"]):
        return None
    go = plotly()
    sources = mix["sources"]
    fig = go.Figure(go.Bar(x=[_label(s["name"]) for s in sources], y=[s["tokens_selected"] for s in sources],
                           text=[f"{(s['token_share'] or 0):.1%}" for s in sources], textposition="auto",
                           marker_color=_BLUE, customdata=[_label(s["sampling"]) for s in sources],
                           hovertemplate="%{x}: %{y:,} tokens (%{text}), %{customdata}"
                                         "<extra></extra>"))  # fmt: skip
    caption = (f"Tokens of the trained model's tokenizer selected from each source "
               f"({mix['tokens_total'] or 0:,} in all).")  # fmt: skip
    top = max(s["tokens_selected"] or 0 for s in sources)
    return Chart("tokens", "Tokens per source", caption, _layout(fig, "", "tokens", yaxis=count_axis(top)))


def rejects(syn: Stage, tem: Stage, mix: Stage) -> Chart | None:
    by_stage: dict[str, dict[str, int]] = {}
    if syn and syn["rejected_by_reason"]:
        by_stage["synthesize inputs"] = syn["rejected_by_reason"]
    for s in (mix or {}).get("sources", []):
        if s["rejected_by_reason"]:
            by_stage[f"mix source {s['name']}"] = s["rejected_by_reason"]
    if not by_stage:
        return None
    go = plotly()
    reasons = sorted({r for by in by_stage.values() for r in by})
    fig = go.Figure([go.Bar(name=_label(stage), x=[_label(r) for r in reasons],
                            y=[by.get(r, 0) for r in reasons],
                            hovertemplate="%{fullData.name}: %{x} %{y}<extra></extra>")
                     for stage, by in by_stage.items()])  # fmt: skip
    top = max(sum(by.get(r, 0) for by in by_stage.values()) for r in reasons)
    # The legend on a line of its own between the toolbar and the plot (a line per ~4 stages).
    lines = -(-len(by_stage) // 4)
    _layout(fig, "", "records", barmode="stack", showlegend=True, yaxis=count_axis(top),
            legend={"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
            margin={"l": 60, "r": 20, "t": TOOLBAR_ROOM + TITLE_ROOM * lines, "b": 50})  # fmt: skip
    caption = "Input records left out, by stage and reason (each listed in that stage's rejects.jsonl)."
    return Chart("rejects", "Rejected records by reason", caption, fig)


# The page's charts, in page order.
CHARTS: tuple[Callable[[Stage, Stage, Stage], Chart | None], ...] = (
    pairs_per_entry, kinds, lengths, openings, modes, families, template_usage, tokens, rejects,
)  # fmt: skip


def build_charts(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{id, title, caption, figure}] for the figures present: each figure a plotly JSON dict."""
    plotly()
    stages = figures.get("synthesize"), figures.get("templify"), figures.get("mix")
    out = []
    for make in CHARTS:
        chart = make(*stages)
        if chart is None:
            continue
        spec = json.loads(chart.figure.to_json())
        spec["layout"].pop("template", None)  # one shared copy in the page instead of one per chart
        out.append({"id": f"chart-{chart.key}", "title": chart.title, "caption": chart.caption,
                    "figure": spec})  # fmt: skip
    return out


def plotly_template() -> dict[str, Any]:
    """The plotly_white template, embedded once and applied to every chart in the page."""
    go = plotly()
    return json.loads(go.Figure(layout={"template": "plotly_white"}).to_json())["layout"]["template"]
