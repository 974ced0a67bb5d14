"""The output folder of a synthesis run: shards, manifest, rejects, summary.

Layout:
    out/manifest.json            settings, their fingerprint, and every completed shard
    out/data/part-00000.parquet  entries of shard 0 (or .jsonl with --format jsonl)
    out/rejects/part-00000.jsonl inputs of shard 0 that were not synthesized, with reasons
    out/rejects.jsonl            all rejects, in input order (written when the run ends)
    out/summary.json             counts and throughput figures

Every file is written to a temporary name, fsynced and renamed into place, and a
shard is recorded in the manifest only after its files exist: a kill at any moment
leaves either a finished shard or one that is recomputed, never a torn file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsChanged, UsageError
from .records import Entry, Reject

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"
DATA_DIR = "data"
REJECTS_DIR = "rejects"
SHARDS_DIR = "shards"  # one completion marker per shard: shards/part-00000.json
SCRATCH_DIR = ".work"  # mix: tokenized shards until the mix is written
OUR_NAMES = (MANIFEST, SUMMARY, REJECTS, DATA_DIR, REJECTS_DIR, SHARDS_DIR, SCRATCH_DIR, ".lock")
FORMATS = ("parquet", "jsonl")
MANIFEST_VERSION = 1


def entry_to_dict(entry: Entry, keep_generation: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": entry.id,
        "doc_id": entry.doc_id,
        "part": entry.part,
        "n_parts": entry.n_parts,
        "text": entry.text,
        "pairs": [{"instruction": p.instruction, "response": p.response} for p in entry.pairs],
        "chain_id": entry.chain_id,
        "position": entry.position,
        "round": entry.round,
        "inherits": entry.inherits,
        "n_context": entry.n_context,
        "prompt_tokens": entry.prompt_tokens,
        "generated_tokens": entry.generated_tokens,
        "finish_reason": entry.finish_reason,
        "truncated": entry.truncated,
        "source": entry.source,
    }
    if keep_generation:
        row["generation"] = entry.generation
    return row


def arrow_schema(keep_generation: bool) -> Any:
    import pyarrow as pa

    fields = [
        ("id", pa.string()), ("doc_id", pa.string()), ("part", pa.int32()),
        ("n_parts", pa.int32()), ("text", pa.string()),
        ("pairs", pa.list_(pa.struct([("instruction", pa.string()), ("response", pa.string())]))),
        ("chain_id", pa.string()), ("position", pa.int32()), ("round", pa.int32()),
        ("inherits", pa.bool_()), ("n_context", pa.int32()), ("prompt_tokens", pa.int32()),
        ("generated_tokens", pa.int32()), ("finish_reason", pa.string()),
        ("truncated", pa.bool_()), ("source", pa.string()),
    ]  # fmt: skip
    if keep_generation:
        fields.append(("generation", pa.string()))
    return pa.schema(fields)


def encode_entries(entries: Sequence[Entry], fmt: str, keep_generation: bool) -> bytes:
    """The bytes of one data shard; the same entries always give the same bytes."""
    from .io import encode_rows

    rows = [entry_to_dict(e, keep_generation) for e in entries]
    return encode_rows(rows, fmt, arrow_schema(keep_generation) if fmt != "jsonl" else None)


def encode_rejects(rejects: Iterable[Reject]) -> bytes:
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rejects).encode()


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# A name from user text (a mix source, a dataset) that becomes part of a file name.
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
SAFE_NAME_RULE = "at most 64 characters from A-Z a-z 0-9 . _ -, not starting with '.'"


def safe_name(name: object, what: str) -> str:
    """`name` if it may become part of a file name (see SAFE_NAME), else a one-line UsageError."""
    if isinstance(name, str) and SAFE_NAME.fullmatch(name):
        return name
    shown = repr(name) if not isinstance(name, str) or len(name) <= 70 else repr(name[:70]) + "..."
    raise UsageError(f"invalid {what} {shown}: use {SAFE_NAME_RULE}")


def inside(root: Path, name: str) -> Path:
    """root/name, refused (UsageError) unless `name` is one plain file name that stays in `root`."""
    path = root / name
    plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    if not plain or path.resolve().parent != root.resolve():
        raise UsageError(f"{name!r} would be written outside {root}; use a plain file name")
    return path


class DiskFull(UsageError):
    """No space left on the device while writing."""


def disk_full(path: Path, nbytes: int) -> UsageError:
    return DiskFull(f"no space left on device writing {path} ({nbytes:,} bytes to write); "
                      "free some space or choose another output folder")  # fmt: skip


def make_folder(folder: Path) -> None:
    """mkdir -p `folder`; a file in the way is a one-line UsageError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise UsageError(f"cannot use {folder} as a folder: {blocker} is a file, not a folder") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new, never half.
    A full disk is a one-line UsageError naming `path` and the size; no temporary file stays."""
    make_folder(path.parent)
    # The pid keeps concurrent writers (workers of one run) off each other's temporary files.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise disk_full(path, len(data)) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def commit_file(root: Path, tmp: Path, path: Path, rows: int | None = None) -> tuple[str, dict[str, Any]]:
    """Move `tmp` (a finished, closed temporary file, streamed by its writer) into place as
    `path`, durably; returns (path relative to root, its record) as `write_recorded` does."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    st = path.stat()
    record = {"bytes": st.st_size, "sha256": sha256_file(path), "rows": rows, "mtime_ns": st.st_mtime_ns}
    return path.relative_to(root).as_posix(), record


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


# -- integrity: every stage records and checks its files here, nowhere else -------------------
#
# A marker lists its files as {"files": {relative path: {bytes, sha256, rows, mtime_ns}}}.
# The cheap check trusts a file whose size and mtime_ns are those recorded at write time and
# hashes it when either differs; the full check (--verify) hashes every file. A stage that
# consumes a file (templify, mix) hashes the bytes it reads and compares with the producer's
# marker, so damage never travels downstream.

SAMPLE_BYTES = 1 << 20  # inputs: the first and last MiB are hashed on every run


class DamagedData(UsageError):
    """A data file differs from what its marker recorded (truncated, replaced, bit-flipped)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_or_none(path: Path) -> Any:
    """The JSON in `path`, or None if it is missing or unreadable (bookkeeping to recompute)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


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
    if not full and st.st_mtime_ns == record.get("mtime_ns"):
        return None
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


def marker_problem(root: Path, marker: Any, full: bool = False) -> str | None:
    """None if every file of `marker` is intact, else "<file>: <problem>" for the first that is not."""
    if not isinstance(marker, dict) or not marker_files(marker):
        return "marker unreadable"
    for rel, record in marker_files(marker).items():
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
    for index in unreadable:
        check.damaged[index] = f"{SHARDS_DIR}/part-{index:05d}.json: unreadable marker"
    for index, marker in sorted(markers.items()):
        if fingerprint is not None and marker.get("fingerprint", fingerprint) != fingerprint:
            continue  # written under other settings: not ours to count
        problem = marker_problem(out.root, marker, full)
        if problem is None:
            check.good[index] = marker
        else:
            check.damaged[index] = problem
    return check


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
                changes.append(f"{f}: {st.st_size} bytes, {old.get('bytes')} before")
            elif old.get("sample_sha256", ident["sample_sha256"]) != ident["sample_sha256"] or (
                "sha256" in ident and old.get("sha256", ident["sha256"]) != ident["sha256"]
            ):
                changes.append(f"{f}: its content changed (same size)")
        identities.append(ident)
    return identities, changes


def check_inputs(out: OutputDir, manifest: dict[str, Any], files: Sequence[Any], settings: Mapping[str, Any],
                 verify: bool, rebuild: bool) -> dict[str, Any]:  # fmt: skip
    """Refuse inputs changed in place since the folder was started (same path and size, other
    content), or with `rebuild` start the folder over; records the inputs' identities."""
    identities, changes = identify_inputs(files, manifest.get("input_identity"), verify)
    if changes:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        if not rebuild:
            raise SettingsChanged(
                f"input {changes[0]}{more} since {out.root} was written; pass --rebuild to recompute "
                "it from the new input, or --overwrite to start over",
                str(out.root),
                f"input {changes[0]}{more}",
            )
        manifest = out.open_run(settings, overwrite=True)
    if identities != manifest.get("input_identity"):
        manifest["input_identity"] = identities
        out.write_manifest(manifest)
    return manifest


STAGES = ("synthesize", "templify", "mix")


def stage_of(manifest: Mapping[str, Any] | None) -> str | None:
    """Which stage wrote the folder of `manifest`: its "stage", or for folders written before
    manifests named it, a guess from its settings; None if it is no stage's manifest."""
    if not isinstance(manifest, Mapping):
        return None
    if manifest.get("stage") in STAGES:
        return manifest["stage"]
    settings = manifest.get("settings")
    if not isinstance(settings, Mapping):
        return None
    if "rounds" in settings:
        return "synthesize"
    if "templates" in settings:
        return "templify"
    if "tokenizer_hash" in settings or "sources" in settings:
        return "mix"
    return None


def is_run_folder(path: Path) -> bool:
    """Whether `path` is an output folder of ours (holds our manifest.json)."""
    manifest = read_json_or_none(path / MANIFEST)
    return isinstance(manifest, dict) and "fingerprint" in manifest and "format_version" in manifest


def without_run_folders(top: Path, files: Sequence[Path]) -> list[Path]:
    """`files` (found under the folder `top`) minus those inside an output folder of ours below
    `top`: an output folder inside an input folder must not become input on a rerun."""
    runs = [m.parent for m in top.rglob(MANIFEST) if m.parent != top and is_run_folder(m.parent)]
    if not runs:
        return list(files)
    return [f for f in files if not any(r in f.parents for r in runs)]


class OutputDir:
    """Paths and atomic writes inside one run's output folder."""

    def __init__(self, root: str | Path, fmt: str = "parquet") -> None:
        self.root = Path(root)
        self.fmt = fmt

    def shard_file(self, index: int) -> Path:
        return self.root / DATA_DIR / f"part-{index:05d}.{self.fmt}"

    def marker_file(self, index: int) -> Path:
        return self.root / SHARDS_DIR / f"part-{index:05d}.json"

    def shard_rejects_file(self, index: int) -> Path:
        return self.root / REJECTS_DIR / f"part-{index:05d}.jsonl"

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None if there is none or it is unreadable (see `manifest_unreadable`)."""
        manifest = read_json_or_none(self.root / MANIFEST)
        return manifest if isinstance(manifest, dict) else None

    def manifest_unreadable(self) -> bool:
        """A manifest.json exists but cannot be read (truncated, corrupt)."""
        return (self.root / MANIFEST).exists() and self.read_manifest() is None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.root / MANIFEST, manifest)

    def foreign_files(self) -> list[str]:
        """Names in the folder that a run of ours did not write."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.name not in OUR_NAMES and not p.name.startswith(".lock") and not p.name.endswith(".tmp")
        )

    def clear(self) -> None:
        """Remove what an earlier run wrote (for --overwrite); other files stay."""
        import shutil

        for name in OUR_NAMES:
            path = self.root / name
            if name == ".lock":
                continue
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    @contextlib.contextmanager
    def locked(self, name: str = ".lock") -> Iterator[None]:
        """Hold the folder's lock `name`: a second process taking it fails at once. Workers of
        one run take a lock of their own (".lock-w3-of-8")."""
        make_folder(self.root)
        with open(self.root / name, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(f"another instructpt run is writing to {self.root}") from None
            yield

    def open_run(
        self, settings: Mapping[str, Any], overwrite: bool, stage: str | None = None
    ) -> dict[str, Any]:
        """The manifest to continue: the existing one if `settings` match, else a new one.
        `stage` (the stage writing the folder) is recorded as the manifest's "stage".

        A folder holding a run with other settings, or files that are not ours, is refused
        unless `overwrite` (which removes what an earlier run wrote, nothing else).
        """
        from . import __version__

        fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        manifest = self.read_manifest()
        if overwrite:
            self.clear()
            manifest = None
        elif manifest is not None and manifest.get("fingerprint") != fingerprint:
            changes = _changed(manifest.get("settings", {}), settings)
            raise SettingsChanged(
                f"{self.root} holds a run with other settings ({changes}); "
                "use another output folder, or --overwrite to start over",
                str(self.root),
                changes,
            )
        elif manifest is None and self.foreign_files():
            raise UsageError(
                f"{self.root} is not empty and holds no instructpt run; choose an empty folder "
                "(or pass --overwrite to write beside its files)"
            )
        self.remove_temp_files()
        if manifest is None:
            manifest = {
                "format_version": MANIFEST_VERSION,
                **({"stage": stage} if stage else {}),
                "instructpt": __version__,
                "fingerprint": fingerprint,
                "settings": dict(settings),
                "complete": False,
                "shards": {},
            }
            self.write_manifest(manifest)
        elif stage and manifest.get("stage") != stage:
            manifest["stage"] = stage
            self.write_manifest(manifest)
        return manifest

    def remove_temp_files(self) -> None:
        """Remove temporary files left by dead writers (a live writer's are kept).

        A writer is live if its pid is alive, is not this process (which has written nothing
        yet), started before the file was last written, and is a run of ours: it holds a lock
        in this folder (local runs, static workers) or is a Ray worker (its driver holds one).
        A pid reused by an unrelated process therefore does not keep a stale file forever.
        """
        holders = _lock_holders(self.root)
        folders = (self.root, self.root / DATA_DIR, self.root / REJECTS_DIR, self.root / SHARDS_DIR,
                   self.root / SCRATCH_DIR / "tokens")  # fmt: skip
        for folder in folders:
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    pid = tmp.name.rsplit(".", 2)[-2]
                    if not (pid.isdigit() and _live_writer(int(pid), tmp, holders)):
                        tmp.unlink(missing_ok=True)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)]
    diffs = [d if len(d) < 120 else d[:117] + "..." for d in diffs]
    return "; ".join(diffs) or "format version"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_holders(root: Path) -> set[int]:
    """Pids holding a flock on one of `root`'s lock files (Linux /proc/locks; empty elsewhere)."""
    try:
        inodes = {p.stat().st_ino for p in root.glob(".lock*")}
        lines = Path("/proc/locks").read_text().splitlines() if inodes else []
    except OSError:
        return set()
    pids = set()
    for line in lines:
        parts = line.split()
        kind = next((i for i, p in enumerate(parts) if p in ("FLOCK", "POSIX", "OFDLCK")), None)
        if kind is None or len(parts) < kind + 5:
            continue
        pid, where = parts[kind + 3], parts[kind + 4]
        if pid.lstrip("-").isdigit() and where.rsplit(":", 1)[-1].isdigit():
            if int(where.rsplit(":", 1)[-1]) in inodes:
                pids.add(int(pid))
    return pids


def _process_started(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch), from /proc; None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines()
                    if x.startswith("btime "))  # fmt: skip
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def _live_writer(pid: int, tmp: Path, holders: set[int]) -> bool:
    if pid == os.getpid() or not _alive(pid):
        return False
    if not Path("/proc/self/stat").exists():
        return True  # no /proc: a live pid is all we can know
    started = _process_started(pid)
    try:
        written = tmp.stat().st_mtime
    except OSError:
        return False
    if started is not None and started > written + 2:  # the pid was reused after the file was left
        return False
    if pid in holders:
        return True
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False
