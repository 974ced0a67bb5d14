"""The collapse guard and the token target of the synthesize stage.

A wrong model, tokenizer or chat template makes the synthesizer write text without a single
parsable pair (docs/method.md §2), and a run would burn GPU hours producing nothing. The guard
watches the generations of the shards finished in this run: once `GUARD_WARMUP` generations are
in, it looks at the last `GUARD_WINDOW` of them, and when fewer than `min_parse_rate` of those
hold at least one parsed pair it stops the run with `SynthesisCollapsed`, a user error naming the
likely causes and showing one raw generation. It is checked after a shard's marker is written,
so every finished shard stays valid. Shards finished by earlier runs are not judged: resuming
after a fix starts a fresh window.

`--target-tokens N` makes the run shards 0..k-1, k the smallest index whose shards before it hold
>= N estimated training tokens (`planning.marker_training_tokens` of each marker): decided by the
markers alone, so the same whatever order shards finish in (async engines, Ray), however many
workers, and across resumes. Shards computed past k while k was not known yet stay on disk as
done shards, outside the finished run, for a rerun with a larger target (or none).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.integrity import check_run
from ..planning import marker_training_tokens
from ..records import Entry
from .rounds import RoundSettings

DEFAULT_MIN_PARSE_RATE = 0.5  # share of generations with >= 1 parsed pair; 0 disables the guard
GUARD_WINDOW = 200  # generations judged: the most recent ones of this run
GUARD_WARMUP = 50  # generations of this run before the guard judges at all
SAMPLE_CHARS = 600  # characters of the raw generation shown in the error


# One shard as the guard sees it: (parsed, pairs, hit length) per generation, and the last
# generation without a pair as (entry id, text). Small and picklable: a Ray actor returns it.
Observed = tuple[list[tuple[bool, int, bool]], tuple[str, str] | None]


def observe(entries: Iterable[Entry]) -> Observed:
    generations, sample = [], None
    for e in entries:
        generations.append((bool(e.pairs), len(e.pairs), e.finish_reason == "length"))
        if not e.pairs and e.generation is not None:
            sample = (e.id, e.generation)
    return generations, sample


class SynthesisCollapsed(UsageError):
    """The synthesizer stopped writing parsable pairs (see the module docstring)."""


@dataclass
class CollapseGuard:
    """A rolling window over this run's generations: (parsed at least one pair, pairs)."""

    min_parse_rate: float = DEFAULT_MIN_PARSE_RATE
    window: int = GUARD_WINDOW
    warmup: int = GUARD_WARMUP
    seen: int = 0
    recent: deque[tuple[bool, int, bool]] = field(default_factory=deque)  # parsed, pairs, hit length
    sample: tuple[str, str] | None = None  # (entry id, generation) of a recent entry without pairs

    def __post_init__(self) -> None:
        if not 0 <= self.min_parse_rate <= 1:
            raise UsageError(f"--min-parse-rate must be between 0 and 1, got {self.min_parse_rate}")
        self.recent = deque(self.recent, maxlen=self.window)

    @property
    def enabled(self) -> bool:
        return self.min_parse_rate > 0

    def add(self, entries: Iterable[Entry]) -> None:
        """Record one finished shard's entries (their `generation` set, when known)."""
        self.extend(observe(entries))

    def extend(self, observed: Observed) -> None:
        """Record what `observe` saw of one shard (here, or in a Ray actor)."""
        generations, sample = observed
        self.seen += len(generations)
        self.recent.extend(generations)
        if sample is not None:
            self.sample = sample

    def parse_rate(self) -> float:
        return sum(p for p, _, _ in self.recent) / len(self.recent) if self.recent else 1.0

    def pairs_per_generation(self) -> float:
        return sum(n for _, n, _ in self.recent) / len(self.recent) if self.recent else 0.0

    def check(self, folder: str, shards_done: Callable[[], int]) -> None:
        """Raise `SynthesisCollapsed` when the window's parse rate is below the threshold."""
        if not self.enabled or self.seen < self.warmup or self.parse_rate() >= self.min_parse_rate:
            return
        raise SynthesisCollapsed(self.message(folder, shards_done()))

    def message(self, folder: str, shards_done: int) -> str:
        n = len(self.recent)
        hit = sum(h for _, _, h in self.recent)
        lines = [
            f"synthesis stopped: only {self.parse_rate():.0%} of the last {n} generations held a "
            f"parsable pair ({self.pairs_per_generation():.2f} pairs per document; --min-parse-rate "
            f"{self.min_parse_rate:g}). The model is not writing the synthesizer's format "
            "(<QUE> ... <ANS> ... </END>, docs/method.md §2). Likely causes:",
            "  - the wrong model: a chat or instruct model instead of an instruction synthesizer "
            "(instruction-pretrain/instruction-synthesizer or one made with train-synthesizer);",
            "  - the wrong tokenizer, or a chat template around the prompt (the prompt must be the "
            "bare wire format, no special tokens added; openai engine: a completions endpoint);",
            f"  - --max-new-tokens too small to finish one pair ({hit} of these {n} generations hit it).",
        ]
        if self.sample is not None:
            doc_id, text = self.sample
            shown = text[:SAMPLE_CHARS] + (f" [... {len(text) - SAMPLE_CHARS} more characters]"
                                           if len(text) > SAMPLE_CHARS else "")  # fmt: skip
            lines.append(f"One raw generation without a pair (document {doc_id}):")
            lines.extend(f"  | {line}" for line in (shown.splitlines() or [""]))
        lines.append(
            f"The {shards_done} finished shard(s) in {folder} are intact (`instructpt status {folder}`). "
            "Fix the cause and rerun; shards written by a broken setup hold no pairs, so after changing "
            "the model or settings add --overwrite. --min-parse-rate 0 disables this check."
        )
        return "\n".join(lines)


class RunWatch:
    """The collapse guard and the token target of one synthesize run: `add` each shard's entries
    as it is written, `shard_finished` once its marker is (raises on a collapse), `stop_reason(i)`
    before computing shard i: a clean stop when i >= k (see the module docstring; shards 0..k-1
    are done and make the complete run, recorded as `stopped: target_tokens` in the summary).
    Its answer for i depends only on the markers of shards < i, so it never changes once they
    are all done. On Ray the actors `add` and the driver calls the rest, after `absorb`ing what
    each actor's `take` returned with its shard."""

    def __init__(self, root: Path, min_parse_rate: float, target_tokens: int | None) -> None:
        if target_tokens is not None and target_tokens < 1:
            raise UsageError(f"--target-tokens must be at least 1, got {target_tokens}")
        self.root, self.target = root, target_tokens
        self.guard = CollapseGuard(min_parse_rate)
        self.stopped: str | None = None
        self.last: Observed | None = None  # the last shard `add` saw (see `take`)
        self._tokens: dict[int, int] | None = None  # shard index -> estimated training tokens
        self._scan = (0, 0)  # (shards 0..i-1 all done, their tokens): the walk towards k so far

    def rounds(self, settings: RoundSettings) -> RoundSettings:
        """The settings to synthesize with: generations kept in memory for the guard's message
        (what is written still follows `settings.keep_generations`)."""
        return dataclasses.replace(settings, keep_generations=True) if self.guard.enabled else settings

    def add(self, entries: Iterable[Entry]) -> None:
        if self.guard.enabled:
            self.last = observe(entries)
            self.guard.extend(self.last)

    def take(self) -> Observed | None:
        """What `add` saw of the shard just computed, for the process that runs the guard (a Ray
        actor computes shards; the driver judges them: `absorb`)."""
        last, self.last = self.last, None
        return last

    def absorb(self, observed: Observed) -> None:
        if self.guard.enabled:
            self.guard.extend(observed)

    def shard_finished(self, index: int, marker: Mapping[str, Any]) -> None:
        if self._tokens is not None:
            self._tokens[index] = marker_training_tokens(marker.get("counts", {}))
        if self.guard.enabled:
            self.guard.check(str(self.root), lambda: len(check_run(self.root).good))

    def end(self) -> int | None:
        """k: the smallest index whose shards before it (all done) hold >= the target's tokens;
        None while unknown (a shard on the way is not done yet) or without a target."""
        if self.target is None:
            return None
        if self._tokens is None:  # shards done before this run count too, kept ones past a stop included
            check = check_run(self.root)
            done = {**check.good, **check.beyond}
            self._tokens = {i: marker_training_tokens(m.get("counts", {})) for i, m in done.items()}
        index, total = self._scan
        while total < self.target and index in self._tokens:
            index, total = index + 1, total + self._tokens[index]
        self._scan = (index, total)
        return index if total >= self.target else None

    def stop_reason(self, next_index: int) -> str | None:
        k = self.end()
        if k is not None and next_index >= k:
            self.stopped = "target_tokens"
            return self.stopped
        return None

    def summarize(self, summary: dict[str, Any], markers: Mapping[int, Mapping[str, Any]]) -> None:
        """Record a stop in the summary (a complete run of the shards before it)."""
        if self.stopped is not None:
            summary["stopped"] = self.stopped
            summary["target_tokens"] = self.target
            summary["training_tokens_estimate"] = sum(
                marker_training_tokens(m.get("counts", {})) for m in markers.values()
            )

    def continues(self, summary: Mapping[str, Any]) -> bool:
        """Whether a run stopped at its token target has more to do now: a larger target, or none."""
        if summary.get("stopped") != "target_tokens":
            return False
        return self.target is None or self.target > int(summary.get("training_tokens_estimate") or 0)
