"""The report's HTML page: headline figure cards, and `templates/page.html.j2` rendered by Jinja2.

Every text from the data goes through Jinja2's autoescaping; the data for the charts and the
sample browser is embedded as JSON in a <script type="application/json"> element, escaped so
no text can end the element, and the page's script puts it into the page only as text (never
as markup). The page fetches nothing: a Content-Security-Policy forbids any request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..errors import MissingExtraError
from .alerts import (
    DUPLICATE_INSTRUCTION_SHARE_MAX,
    HIT_MAX_NEW_TOKENS_SHARE_MAX,
    PARSE_RATE_MIN,
    RATIO_TOLERANCE,
    REJECTED_INPUT_SHARE_MAX,
    ZERO_PAIR_SHARE_MAX,
)
from .discover import STAGES


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def num(x: float | None, fmt: str = ",") -> str:
    return "–" if x is None else format(x, fmt)


def headline(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The figure cards at the top of the page: [{label, value, detail, alert}], alert an id prefix."""
    cards = []
    card = lambda label, value, detail="", alert="": cards.append(  # noqa: E731
        {"label": label, "value": value, "detail": detail, "alert": alert}
    )
    syn, tem, mix = figures.get("synthesize"), figures.get("templify"), figures.get("mix")
    if syn:
        split = syn["long_docs"].get("split") or 0
        card(
            "Documents",
            num(syn["documents"]),
            f"{syn['entries']:,} entries"
            + (f"; {split:,} split into {syn['long_docs'].get('parts', 0):,} parts" if split else ""),
        )
        card("Pairs", num(syn["pairs"]), f"{num(syn['pairs_per_entry'], ',.2f')} per entry")
        drops = syn["parse_dropped"]
        dup = drops.get("duplicate_instruction", 0)
        card(
            "Parse rate",
            pct(syn["parse_rate"]),
            f"{sum(drops.values()) - dup:,} malformed fragments dropped"
            + (f" (and {dup:,} repeated instructions, not counted)" if dup else ""),
            "parse_rate",
        )
        card(
            "Entries with no pair",
            pct(syn["zero_pair_share"]),
            f"{syn['entries_without_pairs']:,} of {syn['entries']:,}",
            "zero_pairs",
        )
        card(
            "Duplicate instructions",
            pct(syn["duplicate_instruction_share"]),
            "pairs repeating an earlier instruction, ignoring case"
            + ("" if syn["duplicate_instruction_exact"] else " (estimated on a hash sample)"),
            "duplicate_instructions",
        )
        card(
            "Hit max_new_tokens",
            pct(syn["hit_max_new_tokens_share"]),
            f"{syn['generations_hit_max_new_tokens']:,} of {syn['entries']:,} generations "
            f"(limit {num(syn['max_new_tokens'])})",
            "hit_max_new_tokens",
        )
        card(
            "Rejected inputs",
            num(syn["rejected_inputs"]),
            f"{pct(syn['rejected_share'])} of input records",
            "rejected_inputs",
        )
        _synthesize_split_cards(syn, card)
        last = syn["throughput"]["last_run"]
        if last.get("documents"):
            card(
                "Throughput",
                f"{last['documents_per_s']:,.1f} docs/s",
                f"{last.get('raw_tokens_per_s', 0):,.0f} raw, {last.get('generated_tokens_per_s', 0):,.0f} "
                f"generated tokens/s; last invocation: {last['documents']:,} documents in "
                f"{last.get('seconds', 0):,.1f} s ({syn['engine']})",
            )
        elif syn["throughput"]["documents_per_shard_second"]:
            card(
                "Throughput",
                f"{syn['throughput']['documents_per_shard_second']:,.1f} docs/s",
                f"over all shards' compute time, engine {syn['engine']}",
            )
    if figures.get("decontaminate"):
        _decontaminate_cards(figures["decontaminate"], card)
    if tem:
        card(
            "Augmented texts",
            num(tem.get("texts")),
            f"from {num(tem.get('documents'))} documents; {num(tem.get('pairs_rendered'))} pairs rendered, "
            f"{sum((tem.get('pairs_dropped') or {}).values()):,} dropped",
        )
    if mix:
        card(
            "Training tokens",
            num(mix["tokens_total"]),
            f"{num(mix['documents_total'])} documents, format {mix['format']}",
        )
        if mix["sources"]:
            card(
                "Token share per source",
                " : ".join(pct(s["token_share"]) for s in mix["sources"]),
                "; ".join(
                    f"{s['name']} {num(s['tokens_selected'])} tokens ({s['sampling']})"
                    for s in mix["sources"]
                ),
            )
            rejected = sum(s["rejected"] for s in mix["sources"])
            card(
                "Rejected in mix",
                num(rejected),
                "; ".join(
                    f"{s['name']} {s['rejected']:,} ({pct(s['rejected_share'])})" for s in mix["sources"]
                ),
                "mix_rejected",
            )
        weighted = [s for s in mix["sources"] if s["ratio_achieved"] is not None]
        if len(weighted) > 1:
            fmt = lambda key: " : ".join(f"{s[key]:.4g}" for s in weighted)  # noqa: E731
            card(
                "Mix ratio",
                fmt("ratio_achieved"),
                f"achieved, {' : '.join(s['name'] for s in weighted)}; requested {fmt('ratio_requested')}",
                "mix_ratio",
            )
        elif mix["sources"]:
            card("Mix ratio", "every source whole", f"recipe {mix['recipe']}: no token ratio requested")
        _mix_trust_cards(mix, card)
    return cards


def _synthesize_split_cards(syn: Mapping[str, Any], card: Any) -> None:
    """The paper's corpus split (`--fraction`) and a clean stop at `--target-tokens`, when used."""
    fraction = syn.get("fraction")
    if (isinstance(fraction, (int, float)) and fraction < 1) or syn.get("not_selected"):
        card(
            "Corpus split",
            f"{num(syn['documents'])} converted",
            f"synthesize --fraction {fraction:g}: {num(syn.get('not_selected') or 0)} documents left "
            "for the raw share (mix --recipe scratch takes them)",
        )
    if syn.get("stopped") == "target_tokens":
        card(
            "Stopped at target tokens",
            f"{num(syn.get('training_tokens_estimate'))} of {num(syn.get('target_tokens'))}",
            "augmented training tokens (estimated) when the run stopped cleanly before the next shard; "
            "rerun with a larger --target-tokens (or none) to continue",
        )


def _mix_trust_cards(mix: Mapping[str, Any], card: Any) -> None:
    """The corpus split on the mix side, repeated sources and the provenance sidecars."""
    split = mix.get("corpus_split")
    if split:
        runs = split.get("runs") or []
        card(
            "Raw share",
            f"{num(split.get('raw_excluded_converted'))} converted documents left out",
            f"source {split.get('source')}: documents that "
            + ", ".join(f"{r.get('synthesize')} (--fraction {r.get('fraction'):g})" for r in runs)
            + " converted are not mixed again as raw, so no document is in the mix twice",
        )
    repeated = [s for s in mix["sources"] if str(s.get("sampling") or "").startswith("repeated")]
    if repeated:
        card(
            "Repeated sources",
            "; ".join(f"{s['name']} {s['sampling']}" for s in repeated),
            "; ".join(
                f"{s['name']}: {num(s['documents_available'])} documents, "
                f"{num(s['documents_selected'])} in the mix"
                for s in repeated
            ),
        )
    prov = mix.get("provenance") or {}
    if prov.get("shards"):
        card(
            "Provenance",
            f"{num(prov['sequences'])} sequences traceable",
            f"{prov['shards']:,} sidecar shard(s) in provenance/; one sequence's documents, pairs and "
            f"templates: {prov['command']}",
        )
    elif mix.get("complete"):
        card("Provenance", "none", "this mix has no provenance sidecars (written before they existed)")


def _decontaminate_cards(dec: Mapping[str, Any], card: Any) -> None:
    """Contamination per benchmark (every indexed one, 0 included) and pairs dropped by reason."""
    contamination = dec.get("contamination") or {}
    names = sorted({*dec["benchmarks"], *contamination})
    per_benchmark = {name: contamination.get(name, {}) for name in names}
    documents = sum(c.get("documents", 0) for c in per_benchmark.values())
    pairs = sum(c.get("pairs", 0) for c in per_benchmark.values())
    card(
        "Contamination",
        f"{documents:,} documents, {pairs:,} pairs",
        "; ".join(
            f"{name}: {c.get('documents', 0):,} documents, {c.get('pairs', 0):,} pairs"
            for name, c in per_benchmark.items()
        )
        or "no evaluation set given: only the pair filters ran",
    )
    dropped = sorted((dec.get("pairs_dropped") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    cut, gone = dec.get("documents_cut") or 0, dec.get("documents_dropped") or 0
    card(
        "Pairs filtered",
        num(sum(n for _, n in dropped)),
        f"of {num(dec.get('pairs_in'))} pairs: "
        + ("; ".join(f"{reason} {n:,}" for reason, n in dropped) or "none dropped")
        + f"; documents: {cut:,} cut, {gone:,} dropped",
    )


_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' left raw, so
    no text in the data can close the element or start markup, and no raw U+2028/U+2029 (line
    terminators to older JavaScript parsers)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.translate(str.maketrans(_SCRIPT_ESCAPES))


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment of the page template, or a MissingExtraError naming the extra."""
    try:
        import jinja2
    except ImportError:
        raise MissingExtraError("instructpt report", "report", "jinja2") from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("instructpt.report", "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped unless marked safe here
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def render(analysis: Mapping[str, Any], charts: list[dict[str, Any]], plotly_js: str, template: Any) -> str:
    """The HTML page for `analysis` (from `analyze`) with `charts` (from `build_charts`)."""
    env = environment()
    from markupsafe import Markup  # installed with jinja2

    from .._version import __version__

    figures, alerts, sample = analysis["figures"], analysis["alerts"], analysis["sample"]
    alert_ids = [a["id"] for a in alerts]
    raised = lambda prefix: bool(prefix) and any(a == prefix or a.startswith(prefix + ":") for a in alert_ids)  # noqa: E731
    cards = [dict(c, bad=raised(c["alert"])) for c in headline(figures)]
    data = {
        "charts": charts,
        "template": template,
        "sample": sample,
        "has_templify": analysis["has_templify"],
        "figures": figures,
        "alerts": alerts,
    }
    return env.get_template("page.html.j2").render(
        folders=[f"{stage}: {figures[stage]['folder']}" for stage in STAGES if stage in figures],
        alerts=alerts,
        cards=cards,
        charts=charts,
        sample=sample,
        entries=f"{figures['synthesize']['entries']:,}" if sample else "",
        thresholds={
            "parse_rate": f"{PARSE_RATE_MIN:.0%}",
            "zero_pairs": f"{ZERO_PAIR_SHARE_MAX:.0%}",
            "duplicates": f"{DUPLICATE_INSTRUCTION_SHARE_MAX:.0%}",
            "hit_max_new_tokens": f"{HIT_MAX_NEW_TOKENS_SHARE_MAX:.0%}",
            "rejected": f"{REJECTED_INPUT_SHARE_MAX:.0%}",
            "ratio": f"{RATIO_TOLERANCE:.1%}",
        },
        version=__version__,
        # Our own files and escaped data, inserted as they are (autoescaping would break them):
        css=Markup(_static("report.css")),
        js=Markup(_static("report.js")),
        data_json=Markup(json_for_script(data)),
        # The bundle has no "</script" in it (checked), but make sure one can never end the element early.
        plotly_js=Markup(plotly_js.replace("</script", "<\\/script")),
    )
