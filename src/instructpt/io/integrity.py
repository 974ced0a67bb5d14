"""Integrity: completion markers, the files they record, and checks of a stage folder and of its
inputs. Every stage records and checks its files here, nowhere else."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .changes import refusal
from .files import read_json_or_none, sha256_file, write_atomic
from .output import SHARDS_DIR, OutputDir, stage_of

# -- integrity: every stage records and checks its files here, nowhere else -------------------
#
# A marker lists its files as {"files": {relative path: {bytes, sha256, rows, mtime_ns}}}.
# The cheap check trusts a file whose size and mtime_ns are those recorded at write time and
# hashes it when either differs; the full check (--verify) hashes every file. A stage that
# consumes a file (templify, mix) hashes the bytes it reads and compares with the producer's
# marker, so damage never travels downstream.

SAMPLE_BYTES = 1 << 20  # inputs: the first and last MiB are hashed on every run
# Manifest key of a finished stage's final files that no shard marker records (mix: the training
# files, written once every shard is done): {file: {bytes, sha256, mtime_ns, shard}}, checked as
# a marker's files are (`file_problem`: cheaply, or hashed with --verify). Manifests written
# before the sha256 was recorded hold {bytes, shard}: their files are checked by size alone.
OUTPUT_FILES = "output_files"
_PART = re.compile(r"(?:^|/)part-(\d{5})\.")  # a shard's own files: data/part-00007.parquet


class DamagedData(UsageError):
    """A data file differs from what its marker recorded (truncated, replaced, bit-flipped)."""


def write_recorded(root: Path, path: Path, data: bytes, rows: int | None = None
                   ) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """Write `data` atomically to `path`; returns (path relative to root, its record)."""
    write_atomic(path, data)
    record = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": rows,
              "mtime_ns": path.stat().st_mtime_ns}  # fmt: skip
    return path.relative_to(root).as_posix(), record


def file_problem(path: Path, record: Mapping[str, Any], full: bool = False) -> str | None:
    """None if `path` still holds the bytes `record` describes, else what is wrong with it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not path.is_file():
        return "not a file"
    if "bytes" not in record:  # a marker written before files were recorded: existence only
        return None
    if st.st_size != record["bytes"]:
        return f"{st.st_size} bytes, {record['bytes']} recorded (truncated or replaced)"
    if not full and st.st_mtime_ns == record.get("mtime_ns") or "sha256" not in record:
        return None  # (a size recorded alone: OUTPUT_FILES of an older manifest)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if digest != record["sha256"]:
        return "sha256 differs from the recorded one (damaged or replaced)"
    return None


def marker_files(marker: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{relative path: record} of a marker; older markers name their files without records."""
    if isinstance(marker.get("files"), dict):
        return marker["files"]
    names = [marker.get("file"), marker.get("rejects_file")]
    return {name: {} for name in names if isinstance(name, str)}


def marker_problem(root: Path, marker: Any, full: bool = False, index: int | None = None) -> str | None:
    """None if every file of `marker` is intact, else "<file>: <problem>" for the first that is not.
    With `index`: a file named for another shard (part-NNNNN) is a problem too (a marker copied
    over another shard's would count that shard's data twice)."""
    if not isinstance(marker, dict) or not marker_files(marker):
        return "marker unreadable"
    for rel, record in marker_files(marker).items():
        if index is not None and (named := _PART.search(rel)) and int(named.group(1)) != index:
            return f"{SHARDS_DIR}/part-{index:05d}.json: records {rel}, another shard's file"
        problem = file_problem(root / rel, record, full)
        if problem is not None:
            return f"{rel}: {problem}"
    return None


def read_verified(path: Path, record: Mapping[str, Any], fix: str) -> bytes:
    """The bytes of `path`, checked against `record`; a mismatch is a one-line DamagedData
    naming the file and `fix` (what the user runs to repair it)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else "unreadable"
        raise DamagedData(f"{path} is {reason}; {fix}") from None
    if "bytes" in record and len(data) != record["bytes"]:
        raise DamagedData(f"{path} has {len(data)} bytes, its marker records {record['bytes']}: "
                          f"truncated or replaced; {fix}")  # fmt: skip
    if "sha256" in record and hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise DamagedData(f"{path} does not match the sha256 in its marker (damaged or replaced); {fix}")
    return data


def read_markers_in(root: Path) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """(markers by shard index, indexes whose marker is unreadable) in root/shards/."""
    folder = root / SHARDS_DIR
    markers: dict[int, dict[str, Any]] = {}
    unreadable: list[int] = []
    if folder.is_dir():
        for path in folder.glob("part-*.json"):
            if path.name.endswith(".failed.json"):
                continue
            try:
                index = int(path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            marker = read_json_or_none(path)
            if isinstance(marker, dict) and marker_files(marker):
                markers[index] = marker
            else:
                unreadable.append(index)
    return markers, sorted(unreadable)


@dataclass
class RunCheck:
    """What a stage's output folder holds: good shards, damaged ones, missing ones."""

    root: Path
    manifest: dict[str, Any] | None
    shard_count: int | None
    good: dict[int, dict[str, Any]] = field(default_factory=dict)
    damaged: dict[int, str] = field(default_factory=dict)  # index -> "<file>: <problem>"
    # a finished stage's final files (OUTPUT_FILES) that are damaged: file -> problem; each is in
    # `damaged` too (under its recorded shard, unless that shard's own files are damaged)
    final: dict[str, str] = field(default_factory=dict)
    # intact shards past a finished run's last one (synthesize --target-tokens computed them ahead,
    # kept for a larger target): not part of the run, so in neither `good` nor `damaged`
    beyond: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def damaged_shards(self) -> dict[int, str]:
        """`damaged` less the final files' entries: the shards whose own marker or files are damaged."""
        finals = {f"{rel}: {problem}" for rel, problem in self.final.items()}
        return {i: p for i, p in self.damaged.items() if p not in finals}

    @property
    def complete(self) -> bool:
        return bool(self.manifest and self.manifest.get("complete")) and not self.damaged and not self.missing

    @property
    def missing(self) -> list[int]:
        n = self.shard_count or 0
        return [i for i in range(n) if i not in self.good and i not in self.damaged]

    def problems(self, limit: int = 5) -> str:
        """One line: what is damaged or missing."""
        parts = [f"{self.root / p.split(':', 1)[0]}:{p.split(':', 1)[1]}" if ":" in p else f"shard {i}: {p}"
                 for i, p in sorted(self.damaged.items())]  # fmt: skip
        if self.missing:
            shown = ", ".join(f"shard {i}" for i in self.missing[:20])
            shown += " ..." if len(self.missing) > 20 else ""
            parts.append(f"not done: {shown}")
        return "; ".join(parts[:limit]) + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")


def check_run(root: str | Path, full: bool = False) -> RunCheck:
    """Check every shard marker of the stage folder `root` (cheaply, or fully with `full`)."""
    out = OutputDir(root)
    manifest = out.read_manifest()
    fingerprint = manifest.get("fingerprint") if manifest else None
    markers, unreadable = read_markers_in(out.root)
    if not markers and not unreadable and manifest and isinstance(manifest.get("shards"), dict):
        markers = {int(k): v for k, v in manifest["shards"].items()}  # a folder without shards/
    n = None
    if manifest is not None:
        n = manifest.get("shard_count")
        if n is None and manifest.get("complete") and isinstance(manifest.get("shards"), dict):
            n = len(manifest["shards"])
    if n is None:
        count = read_json_or_none(out.root / SHARDS_DIR / "count.json")
        n = count.get("shards") if isinstance(count, dict) else None
    check = RunCheck(out.root, manifest, n)
    end = n if n is not None and manifest is not None and manifest.get("complete") else None
    for index in unreadable:
        if end is None or index < end:
            check.damaged[index] = f"{SHARDS_DIR}/part-{index:05d}.json: unreadable marker"
    for index, marker in sorted(markers.items()):
        if fingerprint is not None and marker.get("fingerprint", fingerprint) != fingerprint:
            continue  # written under other settings: not ours to count
        problem = marker_problem(out.root, marker, full, index)
        if problem is None:
            (check.good if end is None or index < end else check.beyond)[index] = marker
        elif end is None or index < end:
            check.damaged[index] = problem
    if manifest is not None and manifest.get("complete"):
        check.final = final_file_problems(out.root, manifest, full)
        for index, problem in _by_shard(manifest, check.final).items():
            check.damaged.setdefault(index, problem)
    return check


def record_output_files(root: Path, shards: Sequence[Mapping[str, Any]], folders: Sequence[str],
                        hashed: Mapping[str, Mapping[str, Any]] | None = None
                        ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The manifest's OUTPUT_FILES of a finished stage: {file: {bytes, sha256, mtime_ns, shard}} of
    every file under `folders` of `root`, each with the index of the first of `shards` (their
    "files" and "provenance") that names it or the folder holding it (0 when none does).

    `hashed` ({file: {bytes, sha256, ...}}) holds files hashed by their writer as they were
    written, and a shard's "provenance" record is one too: their sha256 is taken as is while the
    file still has that size (and mtime_ns, when given); any other file is hashed here."""
    named: dict[str, int] = {}
    known: dict[str, Mapping[str, Any]] = dict(hashed or {})
    for index, shard in enumerate(shards):
        provenance = shard.get("provenance")
        if isinstance(provenance, dict) and isinstance(provenance.get("file"), str):
            known.setdefault(provenance["file"], provenance)
        names = [*shard.get("files", []), *([provenance["file"]] if isinstance(provenance, dict) else [])]
        for name in names:
            named.setdefault(str(name).split(" ", 1)[0], index)  # "hf/ (from part-...)": the folder
    files: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")) if (root / folder).is_dir() else ():
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                shard = named.get(rel, named.get(f"{rel.split('/', 1)[0]}/", 0))
                files[rel] = {**_output_record(path, known.get(rel, {})), "shard": shard}
    return files


def write_output_file(root: Path, manifest: dict[str, Any], name: str, data: bytes, rows: int | None = None
                      ) -> None:  # fmt: skip
    """Write a final file that no shard marker records (synthesize's and mix's rejects.jsonl,
    decontaminate's contamination.jsonl) atomically to root/name, and record it in the
    manifest's OUTPUT_FILES, where `check_run` (status, merge, reruns) checks it as it checks
    mix's training files."""
    rel, record = write_recorded(root, root / name, data, rows)
    manifest.setdefault(OUTPUT_FILES, {})[rel] = {**record, "shard": 0}


def _output_record(path: Path, written: Mapping[str, Any]) -> dict[str, Any]:
    """{bytes, sha256, mtime_ns} of `path`: the writer's sha256 (`written`) while the file is as it
    was written, else the file's own."""
    st = path.stat()
    mtime = written.get("mtime_ns", st.st_mtime_ns)
    digest = written.get("sha256") if (st.st_size, st.st_mtime_ns) == (written.get("bytes"), mtime) else None
    return {"bytes": st.st_size, "sha256": digest if isinstance(digest, str) else sha256_file(path),
            "mtime_ns": st.st_mtime_ns}  # fmt: skip


def output_problems(root: Path, manifest: Mapping[str, Any], full: bool = False) -> dict[int, str]:
    """{shard: "<file>: <problem>"} of a finished stage's final files (OUTPUT_FILES) that are
    missing or differ from their record (`file_problem`: size, then the sha256 when the mtime
    moved, or always with `full`); a manifest without the key has none."""
    return _by_shard(manifest, final_file_problems(root, manifest, full))


def final_file_problems(root: Path, manifest: Mapping[str, Any], full: bool = False) -> dict[str, str]:
    """{file: problem} of a finished stage's final files (OUTPUT_FILES) that are missing or differ
    from their record, each of them (`output_problems` keeps the first of each shard)."""
    recorded = manifest.get(OUTPUT_FILES)
    problems: dict[str, str] = {}
    for rel, record in (recorded if isinstance(recorded, dict) else {}).items():
        if isinstance(record, dict) and (problem := file_problem(root / rel, record, full)) is not None:
            problems[rel] = problem
    return problems


def _by_shard(manifest: Mapping[str, Any], problems: Mapping[str, str]) -> dict[int, str]:
    """{recorded shard: "<file>: <problem>"} of final files' `problems`, the first of each shard."""
    by_shard: dict[int, str] = {}
    for rel, problem in problems.items():
        by_shard.setdefault(int(manifest[OUTPUT_FILES][rel].get("shard", 0)), f"{rel}: {problem}")
    return by_shard


def sample_sha256(path: Path, size: int) -> str:
    """sha256 of the first and last MiB of `path` (all of it when smaller than 2 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            handle.seek(size - SAMPLE_BYTES)
        digest.update(handle.read())
    return digest.hexdigest()


def identify_inputs(files: Sequence[Any], recorded: Any, full: bool = False
                    ) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """(identities of `files`, one line per input changed since `recorded` was taken).

    An input is known by its size, mtime and a hash of its first and last MiB; a file whose
    size and mtime are those recorded is not read (unless `full`). With `full` the whole file
    is hashed and compared with a full hash recorded by an earlier `full` run, if any.
    Remote inputs (URLs) are known by their size only.
    """
    before = {r.get("path"): r for r in recorded if isinstance(r, dict)} if isinstance(recorded, list) else {}
    identities, changes = [], []
    for f in files:
        if not isinstance(f, Path):
            continue
        st = f.stat()
        old = before.get(str(f), {})
        ident: dict[str, Any] = {"path": str(f), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        unchanged_stat = old.get("bytes") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
        if unchanged_stat and not full and "sample_sha256" in old:
            ident["sample_sha256"] = old["sample_sha256"]
        else:
            ident["sample_sha256"] = sample_sha256(f, st.st_size)
        if full:
            ident["sha256"] = sha256_file(f)
        elif "sha256" in old and unchanged_stat:
            ident["sha256"] = old["sha256"]
        if old:
            if old.get("bytes") != st.st_size:
                was = old.get("bytes")
                changes.append(f"{f}: {was:,} -> {st.st_size:,} bytes" if isinstance(was, int)
                               else f"{f}: now {st.st_size:,} bytes")  # fmt: skip
            elif old.get("sample_sha256", ident["sample_sha256"]) != ident["sample_sha256"] or (
                "sha256" in ident and old.get("sha256", ident["sha256"]) != ident["sha256"]
            ):
                changes.append(f"{f}: content changed, same size ({st.st_size:,} bytes), "
                               f"{_modified(old.get('mtime_ns'), st.st_mtime_ns)}")  # fmt: skip
        identities.append(ident)
    return identities, changes


def check_inputs(out: OutputDir, manifest: dict[str, Any], files: Sequence[Any], settings: Mapping[str, Any],
                 verify: bool, rebuild: bool) -> dict[str, Any]:  # fmt: skip
    """Refuse inputs changed in place since the folder was started (same path and size, other
    content), or with `rebuild` start the folder over; records the inputs' identities."""
    identities, changes = identify_inputs(files, manifest.get("input_identity"), verify)
    if changes:
        if not rebuild:
            raise refusal(out.root, stage_of(manifest), changes)
        manifest = out.open_run(settings, overwrite=True)
    if identities != manifest.get("input_identity"):
        manifest["input_identity"] = identities
        out.write_manifest(manifest)
    return manifest


def _modified(before_ns: Any, now_ns: int) -> str:
    """'modified 2025-01-02 10:00:00 -> 2025-01-03 09:12:44' (local time), for a changed input."""
    import time

    def when(ns: Any) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) if isinstance(ns, int) else "?"

    if before_ns == now_ns:
        return f"modified time unchanged ({when(now_ns)})"
    return f"modified {when(before_ns)} -> {when(now_ns)}"
