"""`instructpt run` configuration: one YAML file for synthesize -> templify -> mix.

Validated with pydantic models that forbid unknown keys, so a typo fails with the key's
dotted path, and that are strict: `rounds: true` or `rounds: "2"` is an error, not 1 or 2 (an
int field takes an int only, a float field an int or float, never NaN or infinity). The file is
UTF-8 YAML read with a `yaml.SafeLoader` that refuses a key given twice (plain safe_load keeps
the last) and, like safe_load, any Python tag. `--set a.b=value` overrides parse `value` the
same way (numbers, booleans, lists). Relative paths are relative to the directory the command
runs in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .engines.registry import DEFAULT_MODEL
from .errors import UsageError
from .output import safe_name


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no Python tags) that refuses a mapping key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: SafeLoader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and on which line."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark or exc.context_mark
        return f"{exc.problem} (line {mark.line + 1})" if mark else exc.problem
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


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
    max_doc_chars: int | None = Field(10_000_000, gt=0)  # null: no limit (pipeline.DEFAULT_MAX_DOC_CHARS)
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

    @field_validator("name")
    @classmethod
    def _safe(cls, name: str) -> str:
        try:
            return safe_name(name, "source name")
        except UsageError as exc:
            raise ValueError(str(exc)) from None

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
    try:
        node[parts[-1]] = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UsageError(f"--set {key.strip()}: the value is not valid YAML: {yaml_problem(exc)}") from None


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """The validated config in `path` with `overrides` applied."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        data = parse_yaml(text) or {}
    except FileNotFoundError:
        raise UsageError(f"config not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read the config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {yaml_problem(exc)}") from None
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
