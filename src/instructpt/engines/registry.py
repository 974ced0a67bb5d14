"""Engine plug-ins: built-ins register here exactly as a third party would.

A factory is `factory(options) -> Engine`, given either as a callable or as a lazy
"module:attribute" string so that heavy imports (torch, vLLM) only happen when the engine is
created. `options` is an instance of the engine's options model: `EngineOptions` (the settings
every engine takes) or the subclass the engine declares (`options=` here, else the `Options`
attribute of the engine class the factory belongs to); `-O key=value` and a run config's
`synthesize.engine_options:` fill its own fields, and anything else is refused with the list of
allowed options. Third-party packages expose factories (or Engine classes) through the
`instructpt.engines` entry-point group; the entry-point name is the engine name.

A built-in engine (hf, vllm, llamacpp, openai, rules) is never shadowed by accident:
`register_engine` with its name is a UsageError unless `replace=True` is passed, and an entry
point with its name is ignored with a warning (`EngineNameTaken`, once per registry), the
built-in kept: installing a package must not change which code `--engine hf` runs.

Engines live in a `Registry`; the module-level functions use the default one, and
`registry().isolated()` undoes the registrations made inside it (tests use it so that nothing
leaks from one test into another).
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import MissingExtraError, UsageError
from .base import Engine
from .options import DEFAULT_MAX_MODEL_LEN, DEFAULT_MODEL, EngineOptions, build_options

__all__ = [
    "DEFAULT_MAX_MODEL_LEN", "DEFAULT_MODEL", "EngineNameTaken", "EngineOptions", "EngineSpec", "Registry",
    "create_engine", "engine_specs", "register_engine", "registry", "resolve_engine_name",
]  # fmt: skip

Factory = Callable[[Any], Engine]


class EngineNameTaken(UserWarning):
    """An `instructpt.engines` entry point named like a built-in engine: ignored, the built-in kept."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for name in filter(None, attr.split(".")):
        obj = getattr(obj, name)
    return obj


@dataclass(frozen=True)
class EngineSpec:
    name: str
    factory: Factory | str | type[Engine]
    description: str = ""
    requires: tuple[str, ...] = ()  # importable modules it needs
    extra: str = ""  # the pip extra that installs them
    auto_priority: int | None = None  # higher wins for --engine auto; None: never auto
    options: type[EngineOptions] | str | None = None  # None: the factory's engine class's `Options`
    builtin: bool = False  # instructpt's own: replaced only by an explicit `replace=True`

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def options_model(self) -> type[EngineOptions]:
        """The pydantic model of this engine's options (EngineOptions when it declares none)."""
        model: Any = self.options
        if isinstance(model, str):
            model = _load(model)
        if model is None:
            factory = _load(self.factory) if isinstance(self.factory, str) else self.factory
            owner = factory if isinstance(factory, type) else getattr(factory, "__self__", None)
            model = getattr(owner, "Options", None) or getattr(factory, "Options", None) or EngineOptions
        if not (isinstance(model, type) and issubclass(model, EngineOptions)):
            raise UsageError(
                f"the {self.name} engine's options must be an EngineOptions subclass, got {model!r}"
            )
        return model

    def make_options(
        self,
        common: Mapping[str, Any] | EngineOptions | None = None,
        specific: Mapping[str, Any] | None = None,
        origin: str = "option",
    ) -> EngineOptions:
        """Validated options for this engine (see options.build_options)."""
        model = self.options_model()
        if isinstance(common, model) and not specific:
            return common
        return build_options(self.name, model, common, specific, origin)

    def check_installed(self) -> None:
        missing = self.missing()
        if missing:
            raise MissingExtraError(f"the {self.name} engine", self.extra or self.name, missing[0])

    def create(self, options: EngineOptions | Mapping[str, Any] | None = None, **specific: Any) -> Engine:
        self.check_installed()
        options = self.make_options(options, specific)
        factory: Any = self.factory
        if isinstance(factory, str):
            factory = _load(factory)
        if isinstance(factory, type) and hasattr(factory, "from_options"):
            factory = factory.from_options
        return factory(options)


class Registry:
    """Engine name -> EngineSpec, plus the `instructpt.engines` entry points (loaded once)."""

    def __init__(self, entry_points: bool = True) -> None:
        self._specs: dict[str, EngineSpec] = {}
        self._entry_points_loaded = not entry_points

    def register(
        self,
        name: str,
        factory: Factory | str | type[Engine],
        *,
        description: str = "",
        requires: tuple[str, ...] = (),
        extra: str = "",
        auto_priority: int | None = None,
        options: type[EngineOptions] | str | None = None,
        replace: bool = False,
        builtin: bool = False,
    ) -> None:
        """Make `name` available to `--engine` and `create`. A built-in engine's name is refused
        unless `replace` (re-registering one's own engine is not); `builtin` marks instructpt's own."""
        if not isinstance(name, str) or not name or name == "auto":
            raise UsageError(f"an engine name is a non-empty string other than 'auto', got {name!r}")
        if not (callable(factory) or isinstance(factory, str) and ":" in factory):
            raise UsageError(f"engine {name!r}: the factory must be a callable, an Engine class or a "
                             f"'module:attribute' string, got {factory!r}")  # fmt: skip
        taken = self._specs.get(name)
        if taken is not None and taken.builtin and not replace:
            raise UsageError(f"{name!r} is a built-in engine: register yours under another name, or pass "
                             f"replace=True to replace the built-in {name} engine")  # fmt: skip
        self._specs[name] = EngineSpec(name, factory, description, requires, extra, auto_priority, options,
                                       builtin)  # fmt: skip

    def unregister(self, name: str) -> None:
        self._specs.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group="instructpt.engines"):
            taken = self._specs.get(ep.name)
            if taken is not None and taken.builtin:
                warnings.warn(f"the instructpt.engines entry point {ep.name!r} ({ep.value}) is ignored: "
                              f"{ep.name} is a built-in engine, kept; the plug-in needs another name",
                              EngineNameTaken, stacklevel=3)  # fmt: skip
            elif taken is None:  # one registered in Python wins over an installed entry point
                self.register(ep.name, ep.value, description=f"plug-in from {ep.value}")

    def specs(self) -> dict[str, EngineSpec]:
        self._load_entry_points()
        return dict(sorted(self._specs.items()))

    def spec(self, name: str) -> EngineSpec:
        """The spec of `name` (`auto`: the best one installed)."""
        return self.specs()[self.resolve(name)]

    def resolve(self, name: str) -> str:
        """The concrete engine for `name`; `auto` picks the best one installed."""
        specs = self.specs()
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

    def installed(self, name: str) -> EngineSpec:
        """The spec of `name`, or MissingExtraError saying what to pip install."""
        spec = self.spec(name)
        spec.check_installed()
        return spec

    def create(self, name: str, options: EngineOptions | Mapping[str, Any] | None = None,
               **specific: Any) -> Engine:  # fmt: skip
        """Build the engine called `name` (or the best available for `auto`)."""
        return self.spec(name).create(options, **specific)

    @contextmanager
    def isolated(self) -> Iterator[Registry]:
        """Registrations made inside are undone on exit."""
        saved, loaded = dict(self._specs), self._entry_points_loaded
        try:
            yield self
        finally:
            self._specs, self._entry_points_loaded = saved, loaded


_default = Registry()


def registry() -> Registry:
    """The registry the CLI and the module-level functions use."""
    return _default


def register_engine(name: str, factory: Factory | str | type[Engine], *, replace: bool = False,
                    **kwargs: Any) -> None:  # fmt: skip
    """Make `name` available to `--engine` and `create_engine` (see Registry.register); the name
    of a built-in engine (hf, vllm, llamacpp, openai, rules) is refused unless `replace=True`."""
    _default.register(name, factory, replace=replace, **kwargs)


def engine_specs() -> dict[str, EngineSpec]:
    return _default.specs()


def resolve_engine_name(name: str) -> str:
    return _default.resolve(name)


def create_engine(
    name: str, options: EngineOptions | Mapping[str, Any] | None = None, **specific: Any
) -> Engine:
    """Build the engine called `name` (or the best available for `auto`): `options` are the
    common settings (an EngineOptions or a mapping), `specific` the engine's own options."""
    return _default.create(name, options, **specific)


_default.register(
    "hf",
    "instructpt.engines.hf:HFEngine.from_options",
    description="transformers, batched greedy generation (CPU or GPU)",
    requires=("torch", "transformers"),
    extra="hf",
    auto_priority=10,
    builtin=True,
)
_default.register(
    "vllm",
    "instructpt.engines.vllm:VLLMEngine.from_options",
    description="vLLM in process: continuous batching, prefix caching, token-id prompts",
    requires=("vllm",),
    extra="vllm",
    auto_priority=20,
    builtin=True,
)
_default.register(
    "llamacpp",
    "instructpt.engines.llamacpp:LlamaCppEngine.from_options",
    description="llama.cpp (llama-cpp-python): GGUF models on CPU, GPU offload where built",
    requires=("llama_cpp",),
    extra="gguf",
    builtin=True,
)
_default.register(
    "openai",
    "instructpt.engines.openai:OpenAIEngine.from_options",
    description="OpenAI-compatible servers (vLLM, SGLang, TGI, ...), one or many base_urls",
    requires=("httpx",),
    extra="openai",
    builtin=True,
)
_default.register(
    "rules",
    "instructpt.engines.rules:RulesEngine.from_options",
    description="no model: reading-comprehension tasks mined from the text (a weak baseline)",
    builtin=True,
)
