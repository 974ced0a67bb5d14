"""The progress bar every stage shares: documents, and for synthesis tokens/s and pairs/doc."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..records import Counts


class Progress:
    """A progress bar with documents/s, raw and generated tokens/s and pairs/document."""

    def __init__(self, enabled: bool | None, total: int | None) -> None:
        from tqdm import tqdm

        # disable=None: a bar on a terminal, none in logs and pipes.
        disable = None if enabled is None else not enabled
        self.bar = tqdm(
            total=total,
            unit="doc",
            disable=disable,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} docs [{elapsed}<{remaining}]{postfix}",
        )
        self.started = time.monotonic()
        self.counts = Counts()  # computed in this process (skipped shards excluded)

    def restart(self) -> None:
        """Throughput counts from now on (excludes loading a model)."""
        self.started = time.monotonic()

    def skipped(self, n_docs: int) -> None:
        self.bar.update(n_docs)

    def computed(self, counts: Counts | dict[str, Any]) -> None:
        counts = counts if isinstance(counts, Counts) else Counts(dict(counts))
        self.counts.update(counts)
        self.bar.update(counts["documents"])
        rates = throughput(self.counts, time.monotonic() - self.started)
        postfix = f"{rates['documents_per_s']:.1f} doc/s"
        if self.counts["raw_tokens"] or self.counts["generated_tokens"]:
            postfix += (f", {rates['raw_tokens_per_s']:,.0f} raw tok/s, "
                        f"{rates['generated_tokens_per_s']:,.0f} gen tok/s, "
                        f"{ratio(self.counts['pairs'], self.counts['entries']):.2f} pairs/doc")  # fmt: skip
        self.bar.set_postfix_str(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()


def throughput(counts: Counts, seconds: float) -> dict[str, float]:
    s = max(seconds, 1e-9)
    return {
        "seconds": round(seconds, 3),
        "documents_per_s": round(counts["documents"] / s, 3),
        "raw_tokens_per_s": round(counts["raw_tokens"] / s, 1),
        "generated_tokens_per_s": round(counts["generated_tokens"] / s, 1),
    }


def already_complete(result: Any) -> Any:
    """The result of a run that was complete before this invocation: its figures stay, and
    `this_run` (where the result has one) says that this invocation computed nothing, instead of
    repeating the throughput of the run that did the work."""
    if isinstance(result, dict) and "this_run" in result:
        return {**result, "this_run": {**throughput(Counts(), 0.0), "documents": 0, "already_complete": True}}
    return result


def this_run_text(this_run: dict[str, Any] | None) -> str:
    """What this invocation did, for the line a command ends with: its own figures only."""
    if not this_run or this_run.get("already_complete"):
        return "nothing to do: already complete"
    if not this_run.get("documents"):
        return "this run computed nothing (its shards were already done)"
    text = f"this run: {this_run['documents']:,} documents, {this_run['documents_per_s']:.1f} docs/s"
    if this_run.get("raw_tokens_per_s") or this_run.get("generated_tokens_per_s"):
        text += (f", {this_run['raw_tokens_per_s']:.0f} raw tok/s, "
                 f"{this_run['generated_tokens_per_s']:.0f} generated tok/s")  # fmt: skip
    return text


def ratio(a: int, b: int) -> float:
    return a / b if b else 0.0
