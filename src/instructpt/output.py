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

from .errors import SettingsChanged, UsageError
from .records import Entry, Reject

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"
DATA_DIR = "data"
REJECTS_DIR = "rejects"
SHARDS_DIR = "shards"  # one completion marker per shard: shards/part-00000.json
OUR_NAMES = (MANIFEST, SUMMARY, REJECTS, DATA_DIR, REJECTS_DIR, SHARDS_DIR, ".lock")
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
    rows = [entry_to_dict(e, keep_generation) for e in entries]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=arrow_schema(keep_generation))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def encode_rejects(rejects: Iterable[Reject]) -> bytes:
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rejects).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The pid keeps concurrent writers (workers of one run) off each other's temporary files.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


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
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        return json.loads(path.read_text())

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
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(f"another instructpt run is writing to {self.root}") from None
            yield

    def open_run(self, settings: Mapping[str, Any], overwrite: bool) -> dict[str, Any]:
        """The manifest to continue: the existing one if `settings` match, else a new one.

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
                "instructpt": __version__,
                "fingerprint": fingerprint,
                "settings": dict(settings),
                "complete": False,
                "shards": {},
            }
            self.write_manifest(manifest)
        return manifest

    def remove_temp_files(self) -> None:
        """Remove temporary files left by dead writers (a live writer's are kept)."""
        for folder in (self.root, self.root / DATA_DIR, self.root / REJECTS_DIR, self.root / SHARDS_DIR):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    pid = tmp.name.rsplit(".", 2)[-2]
                    if not (pid.isdigit() and _alive(int(pid))):
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
