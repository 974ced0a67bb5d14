"""`instructpt run CONFIG`: the whole pipeline from one YAML file."""

from __future__ import annotations

import json

import click

from .common import gpus_per_worker_option, user_errors, worker_args, worker_options


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set synthesize.rounds=3 --set mix.format=megatron.",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Recompute the synthesize stage when its settings changed (discards its output).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every finished shard and input (default: trust size + mtime); damaged shards are recomputed.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: on a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print every stage's summary as JSON when done.")
@worker_options(ray_default="GPUs / --gpus-per-worker, else CPUs")
@gpus_per_worker_option
@user_errors
def run(config_path: str, overrides: tuple[str, ...], rebuild: bool, verify: bool, progress: bool | None,
        as_json: bool, executor: str, num_workers: int | None, worker_index: int,
        gpus_per_worker: float) -> None:  # fmt: skip
    """Run synthesize -> templify -> mix as configured in CONFIG (YAML; see examples/*.yaml).

    Each stage writes under the config's workdir (synthesized/, augmented/, train/) and is
    skipped when complete and consistent with the config, resumed when partial. Rerun the
    same command after a crash.

    On static workers (--num-workers N --worker-index I, e.g. a Slurm array) each worker
    computes its shards of each stage and goes on while the stage it worked on is complete;
    then run the same config once more without them to finish the rest.
    """
    from ..config import load_config
    from ..workflow import run_pipeline

    config = load_config(config_path, list(overrides))
    workers = worker_args(executor, num_workers, worker_index)
    results = run_pipeline(config, rebuild=rebuild, progress=progress, verify=verify,
                           gpus_per_worker=gpus_per_worker, **workers)  # fmt: skip
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
        return
    work, stopped = config.workdir, results.get("stopped_at")
    lines = []
    if "synthesize" in results and stopped != "synthesize":
        syn = results["synthesize"]
        stop = " (stopped at synthesize.target_tokens)" if syn.get("stopped") == "target_tokens" else ""
        lines.append(
            f"synthesize: {syn['documents']} documents, {syn['pairs']} pairs -> {work}/synthesized{stop}"
        )
    if "decontaminate" in results and stopped != "decontaminate":
        from ..quality.outcome import summary_line

        lines.append(f"decontaminate: {summary_line(results['decontaminate'])} -> {work}/decontaminated")
    if "templify" in results and stopped != "templify":
        tem = results["templify"]
        lines.append(f"templify:   {tem['texts']} texts from {tem['documents']} documents -> "
                     f"{work}/augmented")  # fmt: skip
    if "mix" in results and stopped != "mix":
        mix = results["mix"]
        lines.append(f"mix:        {mix['tokens_total']:,} tokens in {mix['documents_total']:,} documents "
                     f"({mix['format']}) -> {work}/train")  # fmt: skip
    if stopped:  # a static worker whose share of that stage is done, not the others' yet
        lines.append(f"{stopped}: this worker's shards are done; when every worker's are, run "
                     f"`instructpt run {config_path}` once more to finish")  # fmt: skip
    click.echo("\n".join(lines), err=True)
