"""Where a model or tokenizer named by the user is loaded from: a local folder or the Hub.

`locate(source)` is called before every `from_pretrained` on a user-given name, so that

* a name that looks like a path (starts with `.`, `/` or `~`, ends with `/`, or its parent
  folder exists) and is missing says "folder not found", not a Hub id syntax error;
* a Hub id is looked up once: `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set means the local
  cache only; otherwise one quick request tells whether the Hub answers, and when it does not,
  the local cache is used, or the user is told what to pass instead: never a minute of retries.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 4.0
# Files one of which a cached model or tokenizer snapshot holds.
CACHE_MARKERS = ("config.json", "tokenizer_config.json", "tokenizer.json")
DEFAULT_HINT = "pass --model <folder> or --tokenizer <folder>"


@dataclass(frozen=True)
class Source:
    """What to pass to `from_pretrained`, and whether it must not go to the network."""

    name: str
    local_only: bool
    folder: Path | None = None  # a local folder (or file), when it is one


def looks_like_path(name: str) -> bool:
    """A name that is meant as a local path, never a Hub id (`org/model`)."""
    if name.startswith((".", "/", "~")) or name.endswith(("/", os.sep)) or "\\" in name:
        return True
    if name.count("/") > 1:
        return True
    parent = Path(name).parent
    return str(parent) not in ("", ".") and parent.is_dir()


def offline_mode() -> bool:
    """Whether the user asked for no Hub access (read now, not at import)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def cached_file(repo_id: str, filename: str) -> str | None:
    """The path of `filename` of `repo_id` in the local Hub cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with tokenizers
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # noqa: BLE001 - an invalid id or an unreadable cache: not cached
        return None
    return found if isinstance(found, str) else None


def in_cache(repo_id: str) -> bool:
    return any(cached_file(repo_id, name) for name in CACHE_MARKERS)


@functools.lru_cache(maxsize=8)
def hub_reachable(endpoint: str) -> bool:
    """One request to `endpoint` (proxies from the environment are honoured): any HTTP answer
    means reachable; no answer within `PROBE_TIMEOUT_S` means not. Asked once per process."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S)
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def locate(source: str | os.PathLike[str], hint: str = DEFAULT_HINT) -> Source:
    """Where to load `source` from, or a UsageError saying what to pass instead (see module doc)."""
    name = str(source)
    path = Path(name).expanduser()
    if path.exists():
        return Source(str(path), True, path)
    if looks_like_path(name):
        raise UsageError(f"folder not found: {name}")
    if offline_mode():
        if in_cache(name):
            return Source(name, True)
        raise UsageError(f"HF_HUB_OFFLINE is set and {name} is not in the local Hugging Face cache: {hint}")
    if hub_reachable(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT):
        return Source(name, False)
    if in_cache(name):
        return Source(name, True)
    raise UsageError(f"cannot reach the Hugging Face Hub and {name} is not in the local cache: {hint}")
