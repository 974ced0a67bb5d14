"""Writing files so that a crash never leaves half of one: atomic writes, durable renames of
streamed temporaries, safe names, one-line disk-full errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import UsageError

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
    except PermissionError:
        raise UsageError(
            f"cannot create {folder}: permission denied; choose a folder you can write to"
        ) from None


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
