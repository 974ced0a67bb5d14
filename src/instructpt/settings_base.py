"""What every settings model shares: `Strict` (the base of the stages' settings models and of
`RunConfig`) and `default_of` (a default read from the code that consumes it).

Kept apart from `stage_settings.py` so that one command's settings model (`TemplifySettings`,
in `templating/settings.py`) loads without the other stages' modules: `instructpt templify`
starts without importing the engines, the quality filters or the mixing code.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import UsageError


class _UsageErrorOnCall(type(BaseModel)):  # type: ignore[misc]
    """Built in Python (`SynthesizeSettings(rounds=-1)`), a bad value is one `UsageError` naming
    the field, not pydantic's dump. Only the class call is wrapped (not `__init__`, which pydantic
    also runs for nested models): `model_validate` (configs, flags) keeps its own messages."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise UsageError(f"{cls.__name__}: {problems}") from None


class Strict(BaseModel, metaclass=_UsageErrorOnCall):
    """Unknown keys forbidden, no coercion (`rounds: "2"` is an error), no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def default_of(owner: Any, name: str) -> Any:
    """The default `owner` (a dataclass, pydantic model or function) declares for `name`, so a
    settings model repeats no default of the code that consumes it."""
    if dataclasses.is_dataclass(owner):
        f = next(f for f in dataclasses.fields(owner) if f.name == name)
        return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        return owner.model_fields[name].get_default(call_default_factory=True)
    return inspect.signature(owner).parameters[name].default
