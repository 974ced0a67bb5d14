"""Click options generated from a settings model's fields: flag, type, default and help are the
field's, so a default is written once (in the model) for the YAML config, the Python API and the
command line. `settings_from_flags` validates the values back through the model, reporting a bad
value by its flag."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from ..errors import UsageError


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> tuple[Any, bool, bool]:
    """(the annotation without None, optional?, list?)"""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else str
        origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0], optional, True
    return annotation, optional, False


def option_kwargs(
    model: type[BaseModel], name: str, unset_default: bool = False, prefix: str = ""
) -> dict[str, Any]:
    """click.option keyword arguments for the field `name` of `model`. `unset_default`: the option
    defaults to None (not given) and its help shows the model's default instead."""
    info = model.model_fields[name]
    base, optional, many = _base_type(info.annotation)
    required = info.is_required()
    default = None if required else info.get_default(call_default_factory=True)
    kwargs: dict[str, Any] = {"help": prefix + (info.description or "")}
    if base is bool and not many:
        kwargs["default"] = None if unset_default else default
        kwargs["decls"] = (
            [f"{flag_name(name)}/--no-{name.replace('_', '-')}"]
            if default or unset_default
            else [flag_name(name)]
        )
        if not (default or unset_default):
            kwargs["is_flag"] = True
        elif unset_default:
            kwargs["help"] += f" [default: {'on' if default else 'off'}]"
        else:
            kwargs["show_default"] = True
        return kwargs
    if typing.get_origin(base) is typing.Literal:
        kwargs["type"] = click.Choice([str(v) for v in typing.get_args(base)])
    elif base in (int, float):
        kwargs["type"] = base
    if many:
        kwargs["multiple"] = True
        kwargs["default"] = None if unset_default else list(default or [])
        return kwargs
    if unset_default:
        kwargs["default"] = None
        if default not in (None, "") and not required:
            kwargs["help"] += f" [default: {default}]"
    elif required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        kwargs["show_default"] = default is not None and default != ""
    return kwargs


def settings_options(
    model: type[BaseModel],
    names: list[str],
    custom: Mapping[str, Mapping[str, Any]] = {},
    unset_default: bool = False,
    prefix: str = "",
) -> Callable[[Callable], Callable]:
    """Decorator adding one click option per field in `names` (in that order); `custom[name]`
    overrides click arguments (`decls` the flag names)."""

    def decorate(fn: Callable) -> Callable:
        for name in reversed(names):
            kwargs = option_kwargs(model, name, unset_default, prefix)
            kwargs.update(custom.get(name, {}))
            decls = kwargs.pop("decls", None) or [flag_name(name)]
            fn = click.option(*decls, name, **kwargs)(fn)
        return fn

    return decorate


def settings_from_flags(model: type[BaseModel], values: Mapping[str, Any],
                        flags: Mapping[str, str] = {}) -> Any:  # fmt: skip
    """`model` validated from the command line's values (tuples become lists); a bad value is
    one UsageError naming its flag."""
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        shown = flags.get(key, flag_name(key) if key else "option")
        ctx = err.get("ctx") or {}
        if err["type"] == "greater_than_equal":
            raise UsageError(f"{shown} must be at least {ctx['ge']}, got {err.get('input')!r}") from None
        if err["type"] == "greater_than":
            raise UsageError(f"{shown} must be greater than {ctx['gt']}, got {err.get('input')!r}") from None
        raise UsageError(f"{shown} {err.get('input')!r}: {err['msg']}") from None
