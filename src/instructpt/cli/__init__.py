"""The `instructpt` command: `instructpt <verb>` for pipeline stages, `<noun> <verb>` for the rest.

Each command's module is imported when that command runs (or when `--help` lists them), so
start-up is short, and a Ctrl-C at any moment, imports included, ends in one line, not a
traceback (the console script is `instructpt._entry:main`, which guards this module's import)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from .._entry import EXIT_INTERRUPTED, INTERRUPTED
from .._version import __version__

# command name -> "module:attribute" under instructpt.cli, imported on first use
COMMANDS = {
    "synthesize": "synthesize:synthesize",
    "decontaminate": "decontaminate:decontaminate",
    "templify": "templify:templify",
    "mix": "mix:mix",
    "run": "run:run",
    "plan": "plan:plan",
    "ft-data": "finetune:ft_data",
    "train-synthesizer": "finetune:train_synthesizer",
    "eval-synthesizer": "finetune:eval_synthesizer",
    "evaluate": "evaluate:evaluate",
    "report": "report:report",
    "status": "status:status",
    "trace": "trace:trace",
    "merge": "status:merge",
    "engines": "engines:engines",
}


class InstructptGroup(click.Group):
    """A click group whose commands load lazily and that turns Ctrl-C into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(f".{module}", __name__), attribute)
        self.commands[cmd_name] = command
        return command

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with interrupt_as_one_line():  # `--help` imports every command
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with interrupt_as_one_line():
            return super().invoke(ctx)


class interrupt_as_one_line:  # noqa: N801 - used as a context manager
    """Ctrl-C inside: print "interrupted" on stderr and exit 130 (click's Exit, so CliRunner and
    `standalone_mode=False` callers get the code rather than a SystemExit)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            click.echo(INTERRUPTED, err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        return False


@click.group(
    cls=InstructptGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="instructpt")
def main() -> None:
    """Instruction Pre-Training: synthesize instruction-response pairs for raw corpora.

    \b
    The whole pipeline from one config (resumable):
      instructpt run examples/domain.yaml
    Stage by stage:
      instructpt synthesize corpus.jsonl -o out/ --rounds 2
      instructpt templify out/ -o augmented/
      instructpt mix --augmented augmented/ --raw rest/ --tokenizer TOKENIZER -o train/
      instructpt report runs/domain -o report.html
    Rerun the same command after a crash to finish the rest.
    The method's formats and rules: docs/method.md.
    """
