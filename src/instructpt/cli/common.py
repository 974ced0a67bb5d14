"""Shared CLI plumbing: user errors become one line and a non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import UsageError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted: finished shards are kept; rerun the same command to resume", err=True)
            sys.exit(130)
        except Exception:
            click.echo(
                "instructpt stopped on an error (traceback below); finished shards are kept, "
                "rerun the same command to resume",
                err=True,
            )
            raise

    return wrapper
