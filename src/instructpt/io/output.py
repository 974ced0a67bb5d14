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
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..records import Entry, Reject
from .changes import settings_changed
from .files import make_folder, read_json_or_none, write_json

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"
DATA_DIR = "data"
REJECTS_DIR = "rejects"
SHARDS_DIR = "shards"  # one completion marker per shard: shards/part-00000.json
SCRATCH_DIR = ".work"  # mix: tokenized shards until the mix is written
OUR_NAMES = (MANIFEST, SUMMARY, REJECTS, DATA_DIR, REJECTS_DIR, SHARDS_DIR, SCRATCH_DIR, ".lock",
             "contamination", "contamination.jsonl")  # fmt: skip
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
    from .shards import encode_rows

    rows = [entry_to_dict(e, keep_generation) for e in entries]
    return encode_rows(rows, fmt, arrow_schema(keep_generation) if fmt != "jsonl" else None)


def encode_rejects(rejects: Iterable[Reject]) -> bytes:
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rejects).encode()


STAGES = ("synthesize", "decontaminate", "templify", "mix")


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


NEXT_STEP = {
    "synthesize": "pass it to `instructpt templify {dir} -o OUT`",
    "decontaminate": "pass it to `instructpt templify {dir} -o OUT`",
    "templify": "pass it to `instructpt mix --augmented {dir}`",
    "mix": "it is a training corpus (the last stage's output): train on it, or `instructpt report {dir}`",
}


def stage_hint(folder: str | Path, stage: str) -> str:
    """'DIR is a templify output; pass it to `instructpt mix --augmented DIR`' (what to do with it)."""
    return f"{folder} is a {stage} output; " + NEXT_STEP.get(stage, "").format(dir=folder)


def folder_stage(folder: str | Path) -> str | None:
    """The stage whose output `folder` is, from its manifest; None for any other path."""
    path = Path(folder)
    if not path.is_dir():
        return None
    return stage_of(read_json_or_none(path / MANIFEST))


def expect_stage(folder: str | Path, expected: str | None, what: str) -> None:
    """Refuse `folder`, given as `what` ("the input of templify"), when it is the output of a
    stage other than `expected` (None: a corpus, no stage's output), saying what to do with it."""
    found = folder_stage(folder)
    if found is not None and found != expected:
        raise UsageError(f"{stage_hint(folder, found)} (it is not {what})")


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
        from .._version import __version__

        fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        manifest = self.read_manifest()
        found = stage_of(manifest)
        if overwrite or (manifest is not None and manifest.get("fingerprint") != fingerprint
                         and self.failed_start(manifest)):  # fmt: skip
            self.clear()  # a start that failed before any shard (bad tokenizer...) holds nothing
            manifest = None
        elif stage and found is not None and found != stage:
            raise UsageError(f"{stage_hint(self.root, found)}; write the {stage} output to another "
                             "folder (or pass --overwrite to replace it)")  # fmt: skip
        elif manifest is not None and manifest.get("fingerprint") != fingerprint:
            raise settings_changed(self.root, stage or found, manifest.get("settings", {}), settings)
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

    def failed_start(self, manifest: Mapping[str, Any]) -> bool:
        """Whether the run of `manifest` stopped before computing anything (its engine or tokenizer
        failed to load, its input was unusable): no shard recorded, marked done, or written, and
        no other process holds a lock here. Such a folder is taken over by a run with other
        settings instead of refusing it."""
        if manifest.get("complete") or manifest.get("shards"):
            return False
        markers = (self.root / SHARDS_DIR).glob("part-*.json")
        done = [p for p in markers if not p.name.endswith(".failed.json")]
        written = [p for d in (DATA_DIR, SCRATCH_DIR) if (self.root / d).is_dir()
                   for p in (self.root / d).rglob("*") if p.is_file()]  # fmt: skip
        return not done and not written and not (_lock_holders(self.root) - {os.getpid()})

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
