"""`instructpt report`: one self-contained HTML page about a run's outputs.

Reads what `synthesize`, `decontaminate`, `templify` and `mix` wrote (a `instructpt run` workdir,
or any of the stage output folders, each recognised by its manifest.json) and renders headline figures,
plotly charts, alerts for figures outside their usual range, and a browser over a seeded
random sample of documents with their pairs and the instruction-augmented text each became.

Boundaries: this package only reads finished or partial output folders; it never writes into
them, never runs a stage and never fetches anything. The page it writes embeds the plotly.js
bundle and all its data, so it opens offline (a Content-Security-Policy forbids any request).

Modules: `discover` (which stage outputs are there), `read` (their shards), `figures` (bounded
statistics per stage), `alerts` (one table of rules), `charts` (one function per chart) and
`page` (the cards and `templates/page.html.j2`, with `static/report.css` and `report.js`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import write_atomic
from ..io.integrity import check_run
from .alerts import (
    DUPLICATE_INSTRUCTION_SHARE_MAX,
    HIT_MAX_NEW_TOKENS_SHARE_MAX,
    PARSE_RATE_MIN,
    RATIO_TOLERANCE,
    REJECTED_INPUT_SHARE_MAX,
    RULES,
    ZERO_PAIR_SHARE_MAX,
    Rule,
    alerts_for,
)
from .charts import CHARTS, build_charts, plotly, plotly_template
from .discover import STAGES, find_stages
from .figures import (
    DUPLICATE_SAMPLE_CAP,
    LENGTH_CAP,
    OPENING_WORDS,
    OPENINGS_KEEP,
    OPENINGS_PRUNE_AT,
    TOP_OPENINGS,
    DuplicateCounter,
    decontaminate_figures,
    mix_figures,
    synthesize_figures,
    templify_figures,
)
from .page import environment, headline, render
from .read import BATCH_ROWS, SAMPLE_TEXT_CHARS, attach_augmented

__all__ = [
    "BATCH_ROWS", "CHARTS", "DUPLICATE_INSTRUCTION_SHARE_MAX", "DUPLICATE_SAMPLE_CAP",
    "HIT_MAX_NEW_TOKENS_SHARE_MAX", "LENGTH_CAP", "OPENINGS_KEEP", "OPENINGS_PRUNE_AT", "OPENING_WORDS",
    "PARSE_RATE_MIN", "RATIO_TOLERANCE", "REJECTED_INPUT_SHARE_MAX", "RULES", "SAMPLE_TEXT_CHARS", "STAGES",
    "TOP_OPENINGS", "ZERO_PAIR_SHARE_MAX", "DuplicateCounter", "Rule", "alerts_for", "analyze",
    "build_charts", "build_report", "find_stages", "headline", "render", "write_report",
]  # fmt: skip


def analyze(paths: Iterable[str | Path], sample_size: int = 50, seed: int = 0) -> dict[str, Any]:
    """Figures, alerts and the document sample of the outputs in `paths` (no charts, no HTML)."""
    if sample_size < 0:
        raise UsageError("--samples must be 0 or more")
    stages = find_stages(paths)
    figures: dict[str, Any] = {}
    sample: list[dict[str, Any]] = []
    if "synthesize" in stages:
        folder, manifest = stages["synthesize"]
        figures["synthesize"], sample = synthesize_figures(folder, manifest, sample_size, seed)
    if "decontaminate" in stages:
        figures["decontaminate"] = decontaminate_figures(*stages["decontaminate"])
    if "templify" in stages:
        folder, manifest = stages["templify"]
        figures["templify"] = templify_figures(folder, manifest)
        if sample:
            attach_augmented(folder, manifest, sample)
    if "mix" in stages:
        figures["mix"] = mix_figures(*stages["mix"])
    for stage, (folder, _) in stages.items():  # the files they read, or not (markers only), intact?
        if stage in figures:
            damaged = list(check_run(folder).damaged.values())
            figures[stage]["damaged"] = "; ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else "")
    alerts = alerts_for(figures)
    return {"figures": figures, "alerts": alerts, "sample": sample, "has_templify": "templify" in stages}


def _report(paths: Iterable[str | Path], sample_size: int, seed: int) -> tuple[str, dict[str, Any]]:
    plotly()  # fail on a missing plotly or jinja2 before reading any data
    environment()
    from plotly.offline import get_plotlyjs

    analysis = analyze(paths, sample_size, seed)
    charts = build_charts(analysis["figures"])
    page = render(analysis, charts, get_plotlyjs(), plotly_template())
    result = {
        "figures": analysis["figures"],
        "alerts": analysis["alerts"],
        "charts": [c["title"] for c in charts],
        "samples": [s["id"] for s in analysis["sample"]],
    }
    return page, result


def build_report(paths: Iterable[str | Path], sample_size: int = 50, seed: int = 0) -> str:
    """The self-contained HTML report of the outputs in `paths` (a run workdir or stage folders)."""
    return _report(paths, sample_size, seed)[0]


def write_report(
    paths: Iterable[str | Path], output: str | Path, sample_size: int = 50, seed: int = 0
) -> dict[str, Any]:
    """Write the report to `output` atomically; returns its figures, alerts, chart titles and sample ids."""
    page, result = _report(paths, sample_size, seed)
    output = Path(output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder: give the report's file name, e.g. {output / 'report.html'}")
    write_atomic(output, page.encode("utf-8"))
    result["output"] = str(output)
    result["bytes"] = output.stat().st_size
    return result
