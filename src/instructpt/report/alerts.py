"""Alerts: figures outside their usual range, and stage outputs that do not belong together.

Every alert is one row of `RULES`, checked by the one loop in `alerts_for`. A rule looks at each
subject of its scope (each stage output, the synthesize figures, each mix source, ...), measures
one value there and fires when the value is beyond its threshold; a rule without a threshold
fires when the value is true (a yes/no check, such as an unfinished run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .discover import STAGES

# Alert thresholds: a figure beyond one of these is shown in red with an explanation.
PARSE_RATE_MIN = 0.90  # share of the synthesizer's fragments that parse as pairs
ZERO_PAIR_SHARE_MAX = 0.20  # share of entries without any pair
DUPLICATE_INSTRUCTION_SHARE_MAX = 0.10  # share of pairs repeating an earlier instruction
HIT_MAX_NEW_TOKENS_SHARE_MAX = 0.10  # share of generations cut by max_new_tokens
REJECTED_INPUT_SHARE_MAX = 0.05  # share of input records rejected (synthesize, each mix source)
RATIO_TOLERANCE = 0.005  # achieved mix ratio vs requested, relative

Subject = Mapping[str, Any]


def _scopes(figures: Mapping[str, Any]) -> dict[str, Iterator[Subject]]:
    """Each scope's subjects in `figures`: the mappings its rules measure (and format from)."""
    syn, tem, mix = figures.get("synthesize"), figures.get("templify"), figures.get("mix")
    dec = figures.get("decontaminate")
    # each stage's source: the stage before it among those given (templify reads decontaminate's)
    made_from = [
        (dec, syn, "decontaminate", "synthesize"),
        (tem, dec or syn, "templify", "decontaminate" if dec else "synthesize"),
    ]
    return {
        "stage": (dict(figures[stage], stage=stage) for stage in STAGES if stage in figures),
        "synthesize": iter([syn] if syn else []),
        "source": iter(
            [
                {"out": out, "src": src, "stage": stage, "source": source}
                for out, src, stage, source in made_from
                if out and src
            ]
        ),
        "mix": iter([{"mix": mix, "tem": tem}] if mix and tem else []),
        "mix_source": iter(mix["sources"] if mix else []),
    }


def _source_mismatch(s: Subject) -> bool:
    """A stage's output was made from another output than the one given for the stage before."""
    source, given = s["out"].get("source_fingerprint"), s["src"].get("fingerprint")
    return bool(source and given and source != given)


def _input_mismatch(s: Subject) -> bool:
    """The mix was made from other inputs than the templify output given."""
    inputs = s["mix"]["input_fingerprints"]
    return bool(inputs) and s["tem"].get("fingerprint") not in inputs


def _ratio_off(s: Subject) -> float | None:
    requested, achieved = s["ratio_requested"], s["ratio_achieved"]
    return achieved / requested - 1 if requested and achieved is not None else None


@dataclass(frozen=True)
class Rule:
    """One alert: `value` of each subject in `scope` against `threshold`.

    `check` is "min" (fires below the threshold), "max" (above it), "tolerance" (its absolute
    value above it) or "yes" (fires when the value is true; no threshold). `id`, `message` and
    `explanation` are format strings over the subject's fields plus `value`, `off` (the absolute
    value) and `threshold`.
    """

    id: str
    scope: str
    value: Callable[[Subject], Any]
    check: str
    threshold: float | None
    message: str
    explanation: str


_FIRES: dict[str, Callable[[Any, Any], bool]] = {
    "min": lambda value, threshold: value < threshold,
    "max": lambda value, threshold: value > threshold,
    "tolerance": lambda value, threshold: abs(value) > threshold,
    "yes": lambda value, threshold: bool(value),
}

RULES: tuple[Rule, ...] = (
    Rule("{stage}_incomplete", "stage", lambda s: not s["complete"], "yes", None,
         "The {stage} run in {folder} is not finished.",
         "Its figures cover only the shards written so far; rerun its command to finish it."),
    Rule("{stage}_damaged", "stage", lambda s: s.get("damaged"), "yes", None,
         "The {stage} run in {folder} has damaged files: {damaged}.",
         "They changed since they were written (truncated, replaced or deleted), so they no longer "
         "hold what these figures describe; rerun its command to recompute them."),
    Rule("parse_rate", "synthesize", lambda s: s["parse_rate"], "min", PARSE_RATE_MIN,
         "Parse rate {value:.1%} is below {threshold:.0%}.",
         "Many of the synthesizer's fragments were malformed (see parse_dropped), which usually "
         "means a wrong model or tokenizer, or generations cut short by max_new_tokens."),
    Rule("zero_pairs", "synthesize", lambda s: s["zero_pair_share"], "max", ZERO_PAIR_SHARE_MAX,
         "{value:.1%} of entries have no pair (more than {threshold:.0%}).",
         "Entries without pairs reach the training corpus as plain raw text, so a high share "
         "means the synthesizer found little to ask about these documents or failed on them."),
    Rule("duplicate_instructions", "synthesize", lambda s: s["duplicate_instruction_share"], "max",
         DUPLICATE_INSTRUCTION_SHARE_MAX,
         "{value:.1%} of pairs repeat an instruction seen before in the corpus (more than {threshold:.0%}).",
         "Instructions that recur across documents are generic (like the rules engine's "
         "templated questions) and teach less than questions specific to each text."),
    Rule("hit_max_new_tokens", "synthesize", lambda s: s["hit_max_new_tokens_share"], "max",
         HIT_MAX_NEW_TOKENS_SHARE_MAX,
         "{value:.1%} of generations stopped at max_new_tokens (more than {threshold:.0%}).",
         "A generation cut at the token limit loses its unfinished last pair; raising "
         "--max-new-tokens keeps more pairs at the cost of longer generation."),
    Rule("rejected_inputs", "synthesize", lambda s: s["rejected_share"], "max", REJECTED_INPUT_SHARE_MAX,
         "{rejected_inputs:,} input records ({value:.1%}) were rejected by synthesize "
         "(more than {threshold:.0%}).",
         "Rejected records are not in the output; rejects.jsonl lists each with its reason "
         "(often a wrong --text-field, bad JSON or non-UTF-8 bytes)."),
    Rule("{stage}_source", "source", _source_mismatch, "yes", None,
         "The {stage} output was not made from the {source} output given.",
         "Its manifest names another {source} run, so the sample's augmented texts and the "
         "two stages' figures do not describe the same documents."),
    Rule("mix_source", "mix", _input_mismatch, "yes", None,
         "The mix was not made from the templify output given.",
         "Its manifest's inputs name other output folders, so its token counts describe "
         "other augmented texts than the ones shown here."),
    Rule("mix_rejected:{name}", "mix_source", lambda s: s["rejected_share"], "max", REJECTED_INPUT_SHARE_MAX,
         "Mix source {name!r}: {rejected:,} records ({value:.1%}) rejected (more than {threshold:.0%}).",
         "Rejected records are left out of the training corpus; the mix's rejects.jsonl "
         "lists each with its reason."),
    Rule("mix_ratio:{name}", "mix_source", _ratio_off, "tolerance", RATIO_TOLERANCE,
         "Mix source {name!r}: achieved ratio {ratio_achieved:.4g} vs requested {ratio_requested:.4g} "
         "(off by {off:.2%}, more than {threshold:.1%}).",
         "The corpus does not have the token proportions the recipe asked for, usually "
         "because a source is too small or too coarse (few, long documents) to sample finely."),
)  # fmt: skip


def alerts_for(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The alerts raised by `figures` (as `analyze` returns them), each with an explanation.

    In scope order, then subject order (a mix source's alerts together), then table order.
    """
    out = []
    for scope, subjects in _scopes(figures).items():
        for subject in subjects:
            for rule in RULES:
                if rule.scope != scope:
                    continue
                value = rule.value(subject)
                if value is None or not _FIRES[rule.check](value, rule.threshold):
                    continue
                measured = rule.check != "yes"
                fields = {**subject, "value": value, "threshold": rule.threshold}
                if measured:
                    fields["off"] = abs(value)
                out.append(
                    {
                        "id": rule.id.format(**fields),
                        "message": rule.message.format(**fields),
                        "explanation": rule.explanation.format(**fields),
                        "value": value if measured else None,
                        "threshold": rule.threshold,
                    }
                )
    return out
