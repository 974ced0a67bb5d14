"""Inference backends behind one protocol (see base.py), registered in registry.py.

Built in: `hf` (transformers), `vllm`, `openai` (OpenAI-compatible servers), `llamacpp`, `rules`
(no model; demo and tests). `from_function` turns any `fn(prompts) -> generations` plus a
tokenizer into an engine. Each engine's options are a pydantic model (options.py).
"""

from .base import Completion, Engine, EngineError, Request
from .function import FunctionEngine, from_function
from .options import DEFAULT_MAX_MODEL_LEN, DEFAULT_MODEL, EngineOptions
from .registry import (
    EngineSpec,
    Registry,
    create_engine,
    engine_specs,
    register_engine,
    registry,
    resolve_engine_name,
)

__all__ = [
    "Completion", "DEFAULT_MAX_MODEL_LEN", "DEFAULT_MODEL", "Engine", "EngineError", "EngineOptions",
    "EngineSpec", "FunctionEngine", "Registry", "Request", "create_engine", "engine_specs", "from_function",
    "register_engine", "registry", "resolve_engine_name",
]  # fmt: skip
