"""The `instructpt` console script (and `python -m instructpt`): the CLI, with a Ctrl-C at any
moment of its start-up, imports included, ending in one line ("interrupted", exit 130) rather
than a traceback. Imports nothing but `sys` before it is called."""

from __future__ import annotations

import sys

INTERRUPTED = "interrupted"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main() -> None:
    try:
        from .cli import main as cli

        cli()
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED + "\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
