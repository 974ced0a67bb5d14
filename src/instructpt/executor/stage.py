"""What the executor runs: a `Stage` lists shards of work, computes one shard to files +
counts, and finalizes the folder once every shard is done.

The executor owns *where* and *whether* a shard runs (this process, a static worker, a Ray
actor; skipped if its marker says done) and writes the completion marker; the stage owns
*what* a shard is. A shard's bytes depend only on its work item and the settings, so any
process may compute any shard and the output equals an uninterrupted single-process run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..io.output import OutputDir


@dataclass
class ShardResult:
    """One computed shard: its files ({relative path: record} from `write_recorded`), its
    counts (summed by status and summaries) and any other fields the marker should carry."""

    files: dict[str, dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """One stage (synthesize, templify, mix) as the executor sees it.

    `out` and `manifest` are the opened output folder and its manifest (settings fingerprint
    included). A stage object must pickle (Ray ships it to actors) until `prepare` is called.
    """

    name: str
    out: OutputDir
    manifest: dict[str, Any]
    verify: bool

    def shards(self) -> Iterator[tuple[int, Any]]:
        """(index, work) for every shard, in order; indexes are 0, 1, 2, ..."""
        ...

    def size(self, work: Any) -> int:
        """Documents in `work`, for the progress bar."""
        ...

    def key(self, work: Any) -> dict[str, Any]:
        """Fields a marker must carry with these values to count as done (e.g. the hash of the
        input shard it was computed from); stamped on every marker the executor writes."""
        ...

    def prepare(self) -> None:
        """Load what computing needs (an engine, tokenizer workers); called once, lazily, only
        when a shard is computed in this process."""
        ...

    def run(self, index: int, work: Any) -> ShardResult:
        """Compute shard `index` and write its files (atomically, with write_recorded)."""
        ...

    def finished(self) -> dict[str, Any] | None:
        """The result of a run already complete and intact, or None (there is work to do)."""
        ...

    def finalize(self, markers: dict[int, dict[str, Any]], complete: bool, progress: Any) -> dict[str, Any]:
        """Combine what the done shards' markers record: write the stage's final files when
        `complete`, its summary, and return the result of the run."""
        ...

    def close(self) -> None:
        """Release what `prepare` loaded."""
        ...

    def cleanup(self) -> None:
        """Called once the complete manifest is written."""
        ...

    def can_async(self) -> bool:
        """Whether the executor should drive `async arun(index, work)` for several shards at
        once, then `async aclose()` (synthesis with engines that have `agenerate`)."""
        ...

    def describe(self) -> dict[str, Any] | None:
        """What computes the shards (recorded in the manifest as "engine" by the Ray driver)."""
        ...


class BaseStage:
    """Defaults for the optional parts of `Stage`."""

    name = "stage"
    verify = False

    def size(self, work: Any) -> int:
        return 0

    def key(self, work: Any) -> dict[str, Any]:
        return {}

    def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass

    def cleanup(self) -> None:
        """Called once the complete manifest is written (remove scratch files)."""

    def can_async(self) -> bool:
        """Whether `arun` should be used (barrier-free scheduling of several shards at once)."""
        return False

    def describe(self) -> dict[str, Any] | None:
        """What computed the shards (the engine), recorded in the manifest; None: nothing to say."""
        return None

    async def aclose(self) -> None:
        """Called by the async scheduler when its shards are done (close async clients)."""
