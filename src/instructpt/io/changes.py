"""What changed since a stage folder was written, in one line a user can act on: the input files
added, removed or resized (with their sizes), the settings as `key: old -> new`, and the one flag
that starts the folder over (`SettingsChanged`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SettingsChanged

# The commands with --rebuild (start the folder over only when its inputs or settings changed, so
# a rerun of the same command after a crash still resumes); the others have --overwrite only.
REBUILD_STAGES = ("synthesize", "mix")
SHOWN_CHANGES = 4  # a message names this many changes, then "and N more"


def start_over_advice(stage: str | None) -> str:
    """What to pass to a stage's command to start over a folder whose inputs or settings changed."""
    flag = "--rebuild" if stage in REBUILD_STAGES else "--overwrite"
    return f"pass {flag} to start it over (its output is discarded), or use another output folder"


def listed(items: Sequence[str], limit: int = SHOWN_CHANGES) -> str:
    """'a; b; c' of the first `limit` items, then '; and N more'."""
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def settings_changed(root: str | Path, stage: str | None, old: Mapping[str, Any], new: Mapping[str, Any],
                     sources: Mapping[str, str] | None = None) -> SettingsChanged:  # fmt: skip
    """The refusal of a folder written with the settings `old` by a run with `new`: one line
    naming what changed (input files added, removed or resized, with their sizes; settings as
    `key: old -> new`) and the flag that starts it over. `sources` ({settings key: the file it
    was read from}, not part of the settings: decontaminate's eval sets) names that file after
    the key of a change under it, listed first: `index.benchmarks.q.texts (from q.jsonl): 1 -> 2`."""
    changes = _changed(old, new)
    what = "inputs" if all(inputs for inputs, _ in changes) and changes else "settings"
    lines = [(_with_source(line, sources or {}), line) for _, line in changes]
    # the changes of a named file first: the cause (an index's digest and sizes follow from it)
    shown = [named for named, line in sorted(lines, key=lambda pair: pair[0] == pair[1])]
    return refusal(root, stage, shown or ["format version"], what)


def _with_source(line: str, sources: Mapping[str, str]) -> str:
    """`line` ('key: old -> new') with, after its key, the source of the longest key of
    `sources` that is that key or a parent of it; `line` itself when none is."""
    key, sep, rest = line.partition(": ")
    found = [k for k in sources if key == k or key.startswith(f"{k}.") or key.startswith(f"{k}[")]
    if not sep or not found:
        return line
    return f"{key} (from {sources[max(found, key=len)]}){sep}{rest}"


def refusal(
    root: str | Path, stage: str | None, changes: Sequence[str], what: str = "inputs"
) -> SettingsChanged:
    """'ROOT holds a run with other inputs (a; b; and 3 more); pass --rebuild to start it over ...'."""
    text = listed(changes)
    return SettingsChanged(f"{root} holds a run with other {what} ({text}); {start_over_advice(stage)}",
                           str(root), text)  # fmt: skip


def _changed(old: Any, new: Any, key: str = "") -> list[tuple[bool, str]]:
    """(is an input, 'what: old -> new') for each difference between two settings values."""
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[tuple[bool, str]] = []
        for k in dict.fromkeys([*new, *old]):
            if k == "source_fingerprint" and old.get("source") == new.get("source"):
                if old.get(k) != new.get(k):  # the input folder was rewritten by another run
                    found.append((True, f"{new.get('source')}: rewritten by another run "
                                        f"(fingerprint {old.get(k)} -> {new.get(k)})"))  # fmt: skip
                continue
            found += _changed(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))
        return found
    if _keyed(old, "path") and _keyed(new, "path"):
        return [(True, line) for line in _file_changes(old, new)]
    if _keyed(old, "name") and _keyed(new, "name") and [s["name"] for s in old] == [s["name"] for s in new]:
        return [c for a, b in zip(old, new) for c in _changed(a, b, f"{key}[{a['name']}]")]
    return [(False, f"{key}: {_short(old)} -> {_short(new)}")]


def _keyed(value: Any, field: str) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) and field in v for v in value)


def _file_changes(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> list[str]:
    """'a.jsonl: 72,387 -> 72,455 bytes', 'c.jsonl added (46,707 bytes)', 'b.jsonl removed (was ...)'."""
    before, after = {str(f["path"]): f for f in old}, {str(f["path"]): f for f in new}
    lines = []
    for path, f in after.items():
        was = before.get(path)
        if was is None:
            lines.append(f"{path} added{_size(f, ' ({} bytes)')}")
        elif was.get("bytes") != f.get("bytes"):
            lines.append(f"{path}: {_size(was)} -> {_size(f)} bytes")
        elif was.get("fingerprint") != f.get("fingerprint"):
            lines.append(f"{path}: rewritten by another run (fingerprint {was.get('fingerprint')} -> "
                         f"{f.get('fingerprint')})")  # fmt: skip
        elif was != f:
            lines.append(f"{path}: " + "; ".join(line for _, line in _changed(dict(was), dict(f))))
    lines += [
        f"{path} removed{_size(f, ' (was {} bytes)')}" for path, f in before.items() if path not in after
    ]
    return lines


def _size(record: Mapping[str, Any], form: str = "{}") -> str:
    size = record.get("bytes")
    if not isinstance(size, int):
        return "" if form != "{}" else "?"
    return form.format(f"{size:,}")


def _short(value: Any, limit: int = 60) -> str:
    """A value as it reads in a message: short reprs whole, long ones cut with '...'."""
    text = repr(value) if value is not None else "(none)"
    return text if len(text) <= limit else text[: limit - 3] + "..."
