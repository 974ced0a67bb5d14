"""Engine plug-ins: built-ins register here exactly as a third party would.

A factory is `factory(options: EngineOptions) -> Engine`, given either as a callable
or as a lazy "module:attribute" string so that heavy imports (torch, vLLM) only
happen when the engine is created. Third-party packages expose factories through
the `instructpt.engines` entry-point group; the entry-point name is the engine name.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MissingExtraError, UsageError
from .base import Engine

DEFAULT_MODEL = "instruction-pretrain/instruction-synthesizer"


@dataclass
class EngineOptions:
    """Settings every engine understands; engine-specific ones go in `extra`."""

    model: str = DEFAULT_MODEL
    tokenizer: str | None = None  # defaults to the model's own
    max_model_len: int = 4096
    dtype: str = "auto"  # auto: bf16/fp16 on GPU, fp32 on CPU
    device: str = "auto"
    max_batch_tokens: int | None = None  # prompt+generation tokens in one batch
    trust_remote_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    factory: Callable[[EngineOptions], Engine] | str
    description: str = ""
    requires: tuple[str, ...] = ()  # importable modules it needs
    extra: str = ""  # the pip extra that installs them
    auto_priority: int | None = None  # higher wins for --engine auto; None: never auto

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def create(self, options: EngineOptions) -> Engine:
        missing = self.missing()
        if missing:
            raise MissingExtraError(f"the {self.name} engine", self.extra or self.name, missing[0])
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = importlib.import_module(module)
            for name in attr.split("."):
                factory = getattr(factory, name)
        return factory(options)


_ENGINES: dict[str, EngineSpec] = {}
_entry_points_loaded = False


def register_engine(
    name: str,
    factory: Callable[[EngineOptions], Engine] | str,
    *,
    description: str = "",
    requires: tuple[str, ...] = (),
    extra: str = "",
    auto_priority: int | None = None,
) -> None:
    """Make `name` available to `--engine` and `create_engine`."""
    _ENGINES[name] = EngineSpec(name, factory, description, requires, extra, auto_priority)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="instructpt.engines"):
        if ep.name not in _ENGINES:
            register_engine(ep.name, ep.value, description=f"plug-in from {ep.value}")


def engine_specs() -> dict[str, EngineSpec]:
    _load_entry_points()
    return dict(sorted(_ENGINES.items()))


def resolve_engine_name(name: str) -> str:
    """The concrete engine for `name`; `auto` picks the best one installed."""
    specs = engine_specs()
    if name == "auto":
        ranked = sorted(
            (s for s in specs.values() if s.auto_priority is not None and not s.missing()),
            key=lambda s: -s.auto_priority,  # type: ignore[operator]
        )
        if not ranked:
            raise UsageError(
                "--engine auto found no inference backend: pip install 'instructpt[hf]' "
                "(or [vllm] on a GPU machine)"
            )
        return ranked[0].name
    if name not in specs:
        raise UsageError(f"unknown engine {name!r}; choose one of: auto, {', '.join(specs)}")
    return name


def create_engine(name: str, options: EngineOptions) -> Engine:
    """Build the engine called `name` (or the best available for `auto`)."""
    return engine_specs()[resolve_engine_name(name)].create(options)


register_engine(
    "hf",
    "instructpt.engines.hf:HFEngine.from_options",
    description="transformers, batched greedy generation (CPU or GPU)",
    requires=("torch", "transformers"),
    extra="hf",
    auto_priority=10,
)
register_engine(
    "vllm",
    "instructpt.engines.vllm:VLLMEngine.from_options",
    description="vLLM in process: continuous batching, prefix caching, token-id prompts",
    requires=("vllm",),
    extra="vllm",
    auto_priority=20,
)
register_engine(
    "llamacpp",
    "instructpt.engines.llamacpp:LlamaCppEngine.from_options",
    description="llama.cpp (llama-cpp-python): GGUF models on CPU, GPU offload where built",
    requires=("llama_cpp",),
    extra="gguf",
)
register_engine(
    "openai",
    "instructpt.engines.openai:OpenAIEngine.from_options",
    description="OpenAI-compatible servers (vLLM, SGLang, TGI, ...), one or many --base-url",
    requires=("httpx",),
    extra="openai",
)
register_engine(
    "rules",
    "instructpt.engines.rules:RulesEngine.from_options",
    description="no model: reading-comprehension tasks mined from the text (a weak baseline)",
)
