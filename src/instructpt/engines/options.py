"""Engine options as pydantic models: the settings every engine takes, and each engine's own.

`EngineOptions` holds what every engine understands (model, tokenizer, context length, ...).
An engine with settings of its own declares them by subclassing it (`class Options(EngineOptions)`
on the engine class, or `options=` when registering): the fields it adds are the ones
`-O key=value` on the command line and `synthesize.engine_options:` in a `run` YAML may set.
Unknown keys are refused (`extra="forbid"`), values are strict (`concurrency: "8"` or
`continuous_batching: 1` is an error), and `describe_options` lists them for `instructpt engines`.
This module imports nothing heavy: listing or validating options never loads torch or vLLM.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UsageError

DEFAULT_MODEL = "instruction-pretrain/instruction-synthesizer"
DEFAULT_MAX_MODEL_LEN = 4096  # the synthesizer's context window; the one place this default lives


class EngineOptions(BaseModel):
    """Settings every engine understands; subclass it to declare an engine's own options."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)

    model: str = Field(DEFAULT_MODEL, description="Synthesizer: Hub id, local folder or file.")
    tokenizer: str | None = Field(None, description="Tokenizer for length budgets [default: the model's].")
    max_model_len: int = Field(
        DEFAULT_MAX_MODEL_LEN, gt=0, description="Context window: prompt + generated tokens never exceed it."
    )
    dtype: str = Field("auto", description="Weights: auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, fp32.")
    device: str = Field("auto", description="Device: auto, cpu, cuda, cuda:1...")
    max_batch_tokens: int | None = Field(
        None,
        gt=0,
        description="hf: most prompt+generated tokens per batch [default: KV cache for half the free GPU "
        "memory, 16384 on CPU].",
    )
    trust_remote_code: bool = Field(False, description="Allow custom model code from the model folder.")

    @classmethod
    def common_fields(cls) -> list[str]:
        """The settings every engine shares (their own CLI flags and YAML keys)."""
        return list(EngineOptions.model_fields)

    @classmethod
    def specific_fields(cls) -> list[str]:
        """This engine's own options: what `-O` and `engine_options:` may set."""
        return [name for name in cls.model_fields if name not in EngineOptions.model_fields]


def describe_options(model: type[EngineOptions]) -> list[dict[str, Any]]:
    """Each engine-specific option: name, type, default and help."""
    rows = []
    for name in model.specific_fields():
        info = model.model_fields[name]
        default = info.get_default(call_default_factory=True)
        rows.append({"name": name, "type": _type_name(info.annotation), "default": default,
                     "help": info.description or ""})  # fmt: skip
    return rows


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    return text or str(annotation).replace("typing.", "")


def allowed_text(engine: str, model: type[EngineOptions]) -> str:
    names = model.specific_fields()
    if not names:
        return f"the {engine} engine takes no options of its own"
    return f"the {engine} engine's options are: {', '.join(names)}"


def build_options(
    engine: str,
    model: type[EngineOptions],
    common: Mapping[str, Any] | EngineOptions | None = None,
    specific: Mapping[str, Any] | None = None,
    origin: str = "option",
) -> EngineOptions:
    """`model` validated from the common settings and the engine-specific ones (`-O`, YAML).

    An unknown key, a common setting given as an engine option, or a value of the wrong type is
    a one-line UsageError naming the allowed options."""
    if isinstance(common, EngineOptions):
        common = {k: getattr(common, k) for k in type(common).model_fields if k in common.model_fields_set}
    common = dict(common or {})
    specific = dict(specific or {})
    allowed = model.specific_fields()
    for key in specific:
        if key in EngineOptions.model_fields:
            raise UsageError(f"{origin} {key!r} is a common setting, not an engine option: set it with "
                             f"--{key.replace('_', '-')} (synthesize.{key} in a run config)")  # fmt: skip
        if key not in allowed:
            raise UsageError(
                f"unknown {origin} {key!r} for the {engine} engine; {allowed_text(engine, model)}"
            )
    unknown_common = [k for k in common if k not in model.model_fields]
    if unknown_common:  # an EngineOptions subclass of another engine was passed in
        raise UsageError(f"unknown {origin} {unknown_common[0]!r} for the {engine} engine; "
                         f"{allowed_text(engine, model)}")  # fmt: skip
    try:
        return model.model_validate({**common, **specific})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(options)"
        shown = repr(err.get("input"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise UsageError(f"{origin} {where}={shown} for the {engine} engine: {err['msg']}; "
                         f"{allowed_text(engine, model)}") from None  # fmt: skip


def parse_assignments(pairs: Any, flag: str = "-O") -> dict[str, Any]:
    """`key=value` strings (values read as YAML: numbers, booleans, lists) -> a mapping."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"{flag} needs key=value, got {pair!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"{flag} {key}: the value {raw!r} is not valid YAML") from None
    return out
