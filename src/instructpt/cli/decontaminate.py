"""`instructpt decontaminate`: drop benchmark-contaminated pairs, cut or drop contaminated
documents, and filter broken pairs, between synthesize and templify."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import DecontaminateSettings
from .common import shard_stage_options, user_errors, worker_args, worker_options
from .options import settings_from_flags, settings_options

FIELDS = [
    "eval_sets",
    "lm_eval_tasks",
    "lm_eval_include",
    "ngram",
    "min_words",
    "document_action",
    "window",
    "max_instruction_chars",
    "max_response_chars",
    "drop_copies",
    "min_groundedness",
    "dedupe",
]
CUSTOM = {"eval_sets": {"decls": ["--eval-set"]}, "lm_eval_tasks": {"decls": ["--lm-eval-task"]}}
FLAGS = {"eval_sets": "--eval-set", "lm_eval_tasks": "--lm-eval-task"}


@click.command()
@click.argument("source", type=click.Path())
@shard_stage_options(
    "decontaminate", "Output folder (created): a synthesize-format folder templify reads. Rerunning resumes."
)
@settings_options(DecontaminateSettings, FIELDS, CUSTOM)
@worker_options
@user_errors
def decontaminate(
    source: str,
    output: str,
    overwrite: bool,
    verify: bool,
    progress: bool | None,
    as_json: bool,
    executor: str,
    num_workers: int | None,
    worker_index: int,
    **values: Any,
) -> None:
    """Check every document and pair of SOURCE (an `instructpt synthesize` output folder) against
    the evaluation sets' normalised word n-grams (13 by default) and filter broken pairs.

    \b
    Contaminated pairs are dropped; contaminated documents are cut (the match and --window
    characters each side, as GPT-3 did) or dropped (--document-action drop). OUTPUT holds the
    kept entries in SOURCE's format (templify reads it as it reads SOURCE), contamination.jsonl
    (one line per hit: id, doc_id, pair, benchmark, ngram) and summary.json (counts by reason
    and by benchmark). Example:
      instructpt decontaminate synthesized/ -o clean/ --eval-set mmlu=mmlu_test.jsonl:question,choices
    """
    from ..quality.decontaminate import run_decontaminate
    from ..quality.outcome import summary_line

    for key in ("max_instruction_chars", "max_response_chars"):
        if values.get(key) == 0:
            values[key] = None  # 0: no limit
    settings = settings_from_flags(DecontaminateSettings, values, FLAGS)
    summary = run_decontaminate(
        source,
        output,
        settings.eval_sets,
        settings.options(),
        settings.lm_eval_tasks,
        settings.lm_eval_include,
        overwrite=overwrite,
        progress=progress,
        verify=verify,
        **worker_args(executor, num_workers, worker_index),
    )
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary_line(summary)}. Output: {output}", err=True)
