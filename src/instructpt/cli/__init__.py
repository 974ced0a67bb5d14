"""The `instructpt` command: `instructpt <verb>` for pipeline stages, `<noun> <verb>` for the rest."""

from __future__ import annotations

import click

from .._version import __version__
from .engines import engines
from .evaluate import evaluate
from .finetune import eval_synthesizer, ft_data, train_synthesizer
from .mix import mix
from .report import report
from .run import run
from .status import merge, status
from .synthesize import synthesize
from .templify import templify


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    """


main.add_command(synthesize)
main.add_command(templify)
main.add_command(mix)
main.add_command(run)
main.add_command(ft_data)
main.add_command(train_synthesizer)
main.add_command(eval_synthesizer)
main.add_command(evaluate)
main.add_command(report)
main.add_command(status)
main.add_command(merge)
main.add_command(engines)
