"""`instructpt run` configuration: one YAML file for synthesize -> templify -> mix.

Validated with pydantic models that forbid unknown keys, so a typo fails with the key's
dotted path. `--set a.b=value` overrides parse `value` as YAML (numbers, booleans, lists).
Relative paths are relative to the directory the command runs in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .engines.registry import DEFAULT_MODEL
from .errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynthesizeStage(_Strict):
    inputs: list[str] = Field(min_length=1)
    engine: str = "auto"
    model: str = DEFAULT_MODEL
    tokenizer: str | None = None
    rounds: int = Field(2, ge=1)
    max_model_len: int = Field(4096, gt=0)
    max_new_tokens: int = Field(400, gt=0)
    shard_size: int = Field(1000, ge=1)
    text_field: str = "text"
    id_field: str = "id"
    long_docs: Literal["split", "truncate", "skip"] = "split"
    format: Literal["parquet", "jsonl"] = "parquet"
    keep_generations: bool = False
    limit: int | None = Field(None, ge=1)
    dtype: str = "auto"
    device: str = "auto"
    max_batch_tokens: int | None = Field(None, gt=0)


class TemplifyStage(_Strict):
    seed: int = 0
    format: Literal["parquet", "jsonl"] = "parquet"


class SourceModel(_Strict):
    name: str
    paths: list[str] = Field(min_length=1)
    weight: float | None = Field(None, gt=0)
    text_field: str = "text"
    response_field: str | None = None
    id_field: str = "id"


class MixStage(_Strict):
    recipe: Literal["scratch", "domain", "custom"] = "scratch"
    tokenizer: str
    raw: list[str] = []
    general: list[str] = []
    ratio: str = "1:1"
    augmented_weight: float | None = Field(None, gt=0, description="custom: weight of the augmented texts")
    sources: list[SourceModel] = []  # custom: further sources beside the augmented texts
    question_field: str = "question"
    response_field: str = "response"
    text_field: str = "text"
    format: Literal["parquet", "jsonl", "hf", "megatron", "olmo"] = "parquet"
    seq_len: int = Field(4096, gt=0)
    pack: bool = False
    seed: int = 0
    upsample: bool = True
    workers: int = Field(0, ge=0)
    shard_tokens: int = Field(100_000_000, gt=0)
    bos_text: str | None = None
    eos_text: str | None = None


class RunConfig(_Strict):
    workdir: str
    synthesize: SynthesizeStage
    templify: TemplifyStage = TemplifyStage()
    mix: MixStage | None = None


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override to the raw config mapping."""
    import yaml

    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set needs key=value, got {assignment!r}")
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """The validated config in `path` with `overrides` applied."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"config not found: {path}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a mapping of sections (workdir, synthesize, templify, mix)")
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"{path}: {problems}") from None
