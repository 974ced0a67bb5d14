"""`instructpt run` configuration: one YAML file for synthesize -> templify -> mix.

Validated with pydantic models that forbid unknown keys, so a typo fails with the key's
dotted path, and that are strict: `rounds: true` or `rounds: "2"` is an error, not 1 or 2 (an
int field takes an int only, a float field an int or float, never NaN or infinity). The file is
UTF-8 YAML read with a `yaml.SafeLoader` that refuses a key given twice (plain safe_load keeps
the last) and, like safe_load, any Python tag. `--set a.b=value` overrides parse `value` the
same way (numbers, booleans, lists). Relative paths are relative to the directory the command
runs in.

Each section is one settings model (`SynthesizeSettings`, `DecontaminateSettings`,
`TemplifySettings`, `MixSettings`: stage_settings.py, re-exported here) shared with the command
of the same name, whose flags are generated from its fields (cli/options.py), and whose defaults
are read from the code that consumes them, so each default is written once. The engine's own
options go under `synthesize.engine_options` and are validated against the engine's options
model when the config is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .engines.registry import registry
from .errors import UsageError
from .stage_settings import (
    DecontaminateSettings,
    MixSettings,
    SourceModel,
    Strict,
    SynthesizeSettings,
    TemplifySettings,
)

__all__ = [
    "DecontaminateSettings",
    "MixSettings",
    "RunConfig",
    "SourceModel",
    "SynthesizeSettings",
    "TemplifySettings",
    "UniqueKeyLoader",
    "apply_override",
    "load_config",
    "parse_yaml",
    "yaml_problem",
]


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


class RunConfig(Strict):
    workdir: str
    synthesize: SynthesizeSettings
    decontaminate: DecontaminateSettings | None = None  # present: the stage runs before templify
    templify: TemplifySettings = TemplifySettings()
    mix: MixSettings | None = None


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
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}{_hint(err)}"
            for err in exc.errors()
        )
        raise UsageError(f"{path}: {problems}") from None
    s = config.synthesize
    try:
        spec = registry().spec(s.engine)
    except UsageError as exc:
        if s.engine == "auto":
            return config  # nothing installed: `run` says what to install
        raise UsageError(f"{path}: synthesize.engine: {exc}") from None
    try:
        s.options_for(spec)  # a misspelt or mistyped engine option fails now, not after hours
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return config


def _hint(err: Any) -> str:
    """Where an engine option given as a synthesize setting belongs."""
    loc = err.get("loc", ())
    if err.get("type") != "extra_forbidden" or len(loc) != 2 or loc[0] != "synthesize":
        return ""
    for spec in registry().specs().values():
        try:
            fields = spec.options_model().specific_fields()
        except Exception:  # noqa: BLE001 - a broken plug-in only loses the hint
            continue
        if loc[1] in fields:
            return (
                f" ({loc[1]} is an option of the {spec.name} engine: set synthesize.engine_options.{loc[1]})"
            )
    return ""
