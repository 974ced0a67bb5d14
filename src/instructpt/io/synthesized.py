"""The shards of a stage that reads a finished synthesize folder shard for shard (templify,
decontaminate): output shard i is made from input shard i alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import read_json_or_none
from .integrity import check_run, marker_files
from .output import SUMMARY, OutputDir


def source_record(shard: dict[str, Any]) -> dict[str, Any]:
    """The integrity record (size, sha256) of a synthesize shard's data file, from its marker."""
    return marker_files(shard).get(shard["file"], {})


class SynthesizedShards:
    """The work items of such a stage, mixed in before `BaseStage`: the synthesize manifest's
    shards, their sizes, the source a marker must name, and the summary of a finished run."""

    source: Path
    synth: dict[str, Any]
    out: OutputDir
    manifest: dict[str, Any]
    verify: bool

    def shards(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for key, shard in sorted(self.synth["shards"].items(), key=lambda kv: int(kv[0])):
            yield int(key), shard

    def size(self, work: dict[str, Any]) -> int:
        return int(work.get("counts", {}).get("documents", 0))

    def key(self, work: dict[str, Any]) -> dict[str, Any]:
        return {"source_file": work["file"], "source_sha256": source_record(work).get("sha256")}

    def finished(self) -> dict[str, Any] | None:
        """The summary when the run is complete, every shard checks out and was made from the
        current source shard; None when anything is left to do."""
        summary = read_json_or_none(self.out.root / SUMMARY)
        if not self.manifest.get("complete") or not isinstance(summary, dict):
            return None
        check = check_run(self.out.root, self.verify)
        if not check.complete or len(check.good) != len(self.synth["shards"]):
            return None
        if any(check.good[i].get(k) != v for i, work in self.shards() for k, v in self.key(work).items()):
            return None
        return summary
