"""Templify's counts: texts per mode and kind, templates used, pairs dropped and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = ("free", "options", "cot", "options_cot")


@dataclass
class TemplifyStats:
    texts: int = 0
    documents: int = 0
    pairs_rendered: int = 0
    inversions: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)  # draws per family
    patterns: set[tuple[str, int]] = field(default_factory=set)
    pairs_dropped: Counter[str] = field(default_factory=Counter)
    shots: Counter[int] = field(default_factory=Counter)
    # the distribution (docs/templify.md): counted events, shares are derived in to_dict()
    kinds: Counter[str] = field(default_factory=Counter)  # pairs rendered, by kind
    events: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)  # texts using each template id

    def add(self, other: TemplifyStats) -> None:
        self.texts += other.texts
        self.documents += other.documents
        self.pairs_rendered += other.pairs_rendered
        self.inversions += other.inversions
        self.modes.update(other.modes)
        self.families.update(other.families)
        self.patterns |= other.patterns
        self.pairs_dropped.update(other.pairs_dropped)
        self.shots.update(other.shots)
        self.kinds.update(other.kinds)
        self.events.update(other.events)
        self.templates.update(other.templates)

    def distribution(self) -> dict[str, Any]:
        """Shares the issue's targets are stated in (see benchmarks/templify_distribution.py)."""
        e = self.events
        share = lambda a, b: round(e[a] / e[b], 4) if e[b] else None  # noqa: E731
        consistency = {
            kind: {"texts": e[f"multi.{kind}"], "one_pattern": e[f"consistent.{kind}"],
                   "share": share(f"consistent.{kind}", f"multi.{kind}")}
            for kind in KINDS if e[f"multi.{kind}"]
        }  # fmt: skip
        return {
            "bare_document_share": share("classic_bare", "classic_shots"),
            "mc_without_options_share": share("mc_no_options", "mc_pairs"),
            "mc_cot_without_options_share": share("mc_cot_no_options", "mc_cot_pairs"),
            "layouts": {k[7:]: v for k, v in sorted(e.items()) if k.startswith("layout.")},
            "pattern_consistency": consistency,
            "pairs_by_kind": dict(sorted(self.kinds.items())),
        }

    def all_patterns(self) -> set[tuple[str, int]]:
        """Every (family, index) drawn: the recorded set and the template ids' patterns."""
        drawn = {(tid.rpartition("/")[0], int(tid.rpartition("/")[2])) for tid in self.templates}
        return self.patterns | drawn

    def to_dict(self) -> dict[str, Any]:
        from .templates import LIBRARY

        patterns = self.all_patterns()
        distinct = Counter(family for family, _ in patterns)
        return {
            "texts": self.texts,
            "documents": self.documents,
            "pairs_rendered": self.pairs_rendered,
            "pairs_dropped": dict(sorted(self.pairs_dropped.items())),
            "modes": dict(sorted(self.modes.items())),
            "inversions": self.inversions,
            "shots_per_text": {str(k): v for k, v in sorted(self.shots.items())},
            "families": dict(sorted(self.families.items())),
            "distinct_patterns": dict(sorted(distinct.items())),
            "distinct_patterns_total": len(patterns),
            "library_sizes": {name: len(items) for name, items in LIBRARY.items()},
            **self.distribution(),
            "template_usage": dict(sorted(self.templates.items())),
        }
