"""Inference backends behind one protocol (see base.py), registered in registry.py.

Built in: `hf` (transformers), `rules` (no model; demo and tests). `from_function`
turns any `fn(prompts) -> generations` plus a tokenizer into an engine.
"""

from .base import Completion, Engine, EngineError, Request
from .function import FunctionEngine, from_function
from .registry import (
    DEFAULT_MODEL,
    EngineOptions,
    create_engine,
    engine_specs,
    register_engine,
    resolve_engine_name,
)

__all__ = [
    "Completion", "DEFAULT_MODEL", "Engine", "EngineError", "EngineOptions", "FunctionEngine",
    "Request", "create_engine", "engine_specs", "from_function", "register_engine",
    "resolve_engine_name",
]  # fmt: skip
