"""instructpt: Instruction Pre-Training end to end (Cheng et al., EMNLP 2024).

The public API: one function per stage (`synthesize`, `decontaminate`, `templify`, `mix`) and
`run` for all of them, their settings models, the record types, and what an engine needs (`Engine`,
`register_engine`, `from_function`); everything else lives in submodules
(docs/architecture.md). The core imports no torch: model backends load lazily, and so does
every public name (pydantic, numpy, tokenizers) on first use, so `import instructpt` (and the
CLI's start-up, which a Ctrl-C may interrupt) is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .config import DecontaminateSettings, MixSettings, RunConfig, SynthesizeSettings, TemplifySettings
    from .engines.base import Completion, Engine, Request
    from .engines.function import from_function
    from .engines.registry import register_engine
    from .errors import UsageError
    from .quality.api import decontaminate
    from .records import Document, Entry, Reject
    from .synthesis.stage import synthesize
    from .templating.render import AugmentedText, templify
    from .workflow import mix, run

_LAZY = {
    "Completion": "engines.base",
    "Engine": "engines.base",
    "Request": "engines.base",
    "from_function": "engines.function",
    "register_engine": "engines.registry",
    "UsageError": "errors",
    "Document": "records",
    "Entry": "records",
    "Reject": "records",
    "synthesize": "synthesis.stage",
    "decontaminate": "quality.api",
    "AugmentedText": "templating.render",
    "templify": "templating.render",
    "SynthesizeSettings": "config",
    "DecontaminateSettings": "config",
    "TemplifySettings": "config",
    "MixSettings": "config",
    "RunConfig": "config",
    "mix": "workflow",
    "run": "workflow",
}

__all__ = [
    "AugmentedText", "Completion", "DecontaminateSettings", "Document", "Engine", "Entry", "MixSettings",
    "Reject", "Request", "RunConfig", "SynthesizeSettings", "TemplifySettings", "UsageError", "__version__",
    "decontaminate", "from_function", "mix", "register_engine", "run", "synthesize", "templify",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
