"""Mix recipes: the sources of a training corpus and their weights (`SourceSpec`), the mixer's
settings (`MixConfig`), the scratch and domain recipes and JSON recipe files (docs/method.md §5)."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import (
    safe_name,
)

OPENORCA_FIELDS = ("question", "response")  # its system_prompt column is dropped
BUILTIN_RECIPES = ("scratch", "domain")
RENDERS = ("ft-data",)  # SourceSpec.render: inputs that are rendered into texts before mixing
FT_REPEAT = 4  # the paper repeated the synthesizer's fine-tuning data 4 times (docs/method.md §5)


@dataclass
class SourceSpec:
    """One input of a mix."""

    name: str
    paths: list[str]
    weight: float | None = None  # token-ratio weight; None: every document exactly once
    text_field: str = "text"
    response_field: str | None = None  # instruction data: text = question + " " + response
    id_field: str = "id"
    repeat: int = 1  # without weight: every document this many times (the paper's ft data: 4)
    render: str | None = None  # "ft-data": fine-tuning records rendered as augmented texts (ftdata.py)

    def __post_init__(self) -> None:
        """Recipes are user text: the name becomes part of file names (output.SAFE_NAME), and
        a wrong type is a one-line error here rather than a traceback later."""
        safe_name(self.name, "source name")
        if not (isinstance(self.paths, list) and self.paths and all(isinstance(p, str) for p in self.paths)):
            raise UsageError(f"source {self.name!r}: paths must be a non-empty list of file or folder names")
        w = self.weight
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)
                              or w <= 0):  # fmt: skip
            raise UsageError(f"source {self.name!r}: weight must be a positive number, got {w!r}")
        r = self.repeat
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise UsageError(f"source {self.name!r}: repeat must be a whole number >= 1, got {r!r}")
        if r > 1 and w is not None:
            raise UsageError(f"source {self.name!r}: repeat applies to a source without weight (a weight "
                             "sets its share, repeating it as needed)")  # fmt: skip
        if self.render is not None and self.render not in RENDERS:
            raise UsageError(f"source {self.name!r}: render must be one of {', '.join(RENDERS)}, "
                             f"got {self.render!r}")  # fmt: skip
        for key in ("text_field", "id_field", "response_field"):
            value = getattr(self, key)
            if not isinstance(value, str) and not (key == "response_field" and value is None):
                raise UsageError(f"source {self.name!r}: {key} must be a string, got {value!r}")


@dataclass
class MixConfig:
    sources: list[SourceSpec]
    output: str
    tokenizer: str
    recipe: str = "custom"
    format: str = "parquet"
    seq_len: int = 4096
    pack: bool = False
    seed: int = 0
    upsample: bool = True
    workers: int = 0  # 0: one per CPU core
    shard_tokens: int = 100_000_000
    bos_text: str | None = None  # default: the tokenizer's BOS token
    eos_text: str | None = None  # default: the tokenizer's EOS token
    overwrite: bool = False
    verify: bool = False  # hash every raw input (instructpt folders' shards are always hashed)
    rebuild: bool = False  # recompute a finished mix whose inputs changed, instead of refusing
    allow_partial: bool = False  # mix the intact shards of unfinished/damaged runs, saying what is left out
    # scratch: the raw documents that `synthesize --fraction` converted, left out (split.py); set by run_mix
    corpus_split: dict[str, Any] | None = None


def scratch_recipe(
    augmented: Sequence[str], raw: Sequence[str], text_field: str = "text", ft_data: Sequence[str] = (),
    ft_repeat: int = FT_REPEAT,
) -> list[SourceSpec]:  # fmt: skip
    """Pre-training from scratch: instruction-augmented texts + the unchanged raw texts (less the
    documents the augmented run converted, mixing/split.py) + optionally the synthesizer's
    fine-tuning data rendered as augmented texts, repeated `ft_repeat` times."""
    sources = [SourceSpec("augmented", list(augmented)), SourceSpec("raw", list(raw), text_field=text_field)]
    if ft_data:
        sources.append(SourceSpec("ft", list(ft_data), repeat=ft_repeat, render="ft-data"))
    return sources


def domain_recipe(
    augmented: Sequence[str], general: Sequence[str], ratio: str = "1:1",
    question_field: str = OPENORCA_FIELDS[0], response_field: str = OPENORCA_FIELDS[1],
) -> list[SourceSpec]:  # fmt: skip
    """Domain-adaptive: augmented texts and general instructions, `ratio` in target tokens."""
    a, g = parse_ratio(ratio)
    return [
        SourceSpec("augmented", list(augmented), weight=a),
        SourceSpec(
            "general", list(general), weight=g, text_field=question_field, response_field=response_field
        ),
    ]


def parse_ratio(ratio: str) -> tuple[float, float]:
    try:
        a, g = (float(x) for x in ratio.split(":"))
    except ValueError:
        raise UsageError(f"--ratio must look like 1:1 or 2:1, got {ratio!r}") from None
    if a <= 0 or g <= 0:
        raise UsageError(f"--ratio parts must be positive, got {ratio!r}")
    return a, g


def load_recipe(path: str | Path) -> list[SourceSpec]:
    """A custom recipe: {"sources": [{"name", "paths", "weight"?, "text_field"?, ...}]}."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(unknown_recipe(str(path))) from None
    except OSError as exc:
        raise UsageError(f"cannot read the recipe {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
        sources = [SourceSpec(**s) for s in data["sources"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a valid recipe ({exc}); see README 'Custom recipes'") from None
    if not sources:
        raise UsageError(f"{path} lists no sources")
    return sources


def unknown_recipe(name: str) -> str:
    """The error for a --recipe that is neither a built-in recipe nor an existing file."""
    if "/" in name or "\\" in name or name.endswith(".json"):
        return f"recipe file not found: {name}"
    close = difflib.get_close_matches(name, BUILTIN_RECIPES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return (f"unknown recipe {name!r}: {hint}the recipes are {' and '.join(BUILTIN_RECIPES)}, or the "
            "path of a JSON recipe file (README 'Custom recipes')")  # fmt: skip


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a key given twice is an error (json.loads keeps the last)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result
