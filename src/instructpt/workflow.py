"""`instructpt run`: synthesize -> templify -> mix as one job, each stage resumable.

Every stage writes into its own folder under `workdir` (synthesized/, augmented/, train/) and
keeps a manifest fingerprinted with its settings, so a rerun skips a finished stage, resumes a
partial one, and notices when the config changed. Changed templify/mix settings are simply
recomputed (cheap); changed synthesize settings are refused unless `rebuild`, because that
would discard model output that may have cost GPU-days.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import MixSettings, RunConfig, load_config
from .errors import SettingsChanged, UsageError


def _stage(name: str, call: Callable[[bool], Any], recompute_on_change: bool,
           log: Callable[[str], None]) -> Any:  # fmt: skip
    try:
        return call(False)
    except SettingsChanged as exc:
        if not recompute_on_change:
            raise UsageError(
                f"the {name} inputs or settings changed since {exc.folder} was written ({exc.changes}); "
                f"pass --rebuild to recompute it (its output is discarded), or use another workdir"
            ) from None
        log(f"{name}: settings changed, recomputing")
        return call(True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_pipeline(config: RunConfig, rebuild: bool = False, progress: bool | None = None,
                 log: Callable[[str], None] = _stderr, verify: bool = False, num_workers: int = 1,
                 worker_index: int = 0, executor: str = "local", ray_workers: int | None = None,
                 gpus_per_worker: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Run every configured stage; returns {stage: summary}. `verify`: hash every finished file
    instead of trusting size + mtime.

    With `num_workers` > 1 this process is static worker `worker_index` of every stage: it
    computes its shards of a stage and goes on to the next only if that stage is then complete
    (it finished last); otherwise it stops there (the result has "stopped_at"), and a final
    `run` in one process (or the last worker of each stage) completes the rest. `executor="ray"`
    runs each stage on Ray actors (`ray_workers`, each with `gpus_per_worker` for synthesis)."""
    from .engines.registry import create_engine
    from .executor import check_worker
    from .mixing.mix import run_mix
    from .planning_mix import scratch_refusal
    from .synthesis.stage import run_synthesis
    from .templating.stage import run_templify

    check_worker(num_workers, worker_index)
    if refusal := scratch_refusal(config):  # before synthesis, not after its GPU hours
        raise UsageError(refusal)
    work = Path(config.workdir)
    paths = {"synthesize": work / "synthesized", "templify": work / "augmented", "mix": work / "train"}
    paths["decontaminate"] = work / "decontaminated"  # with a `decontaminate:` section: templify reads it
    s = config.synthesize
    spec = s.engine_spec()  # `auto` resolved, the extra installed
    options = s.options_for(spec)  # validated before any stage runs
    ray = executor == "ray"
    workers: dict[str, Any] = (
        {"executor": "ray", "ray_workers": ray_workers} if ray
        else {"num_workers": num_workers, "worker_index": worker_index}
    )  # fmt: skip
    results: dict[str, Any] = {}

    def synthesize(overwrite: bool) -> Any:
        # rebuild starts the folder over only if its inputs or settings changed (open_locked)
        cfg = s.synthesis_config(spec.name, str(paths["synthesize"]), overwrite=overwrite,
                                 verify=verify, rebuild=rebuild)  # fmt: skip
        if ray:
            from .synthesis.ray import run_ray

            return run_ray(cfg, spec.name, options, num_workers=ray_workers, gpus_per_worker=gpus_per_worker,
                           progress=progress, log=log)  # fmt: skip
        return run_synthesis(cfg, lambda: create_engine(spec.name, options), progress=progress, log=log,
                             num_workers=num_workers, worker_index=worker_index)  # fmt: skip

    def templify(overwrite: bool) -> Any:
        t = config.templify
        source = paths["decontaminate" if config.decontaminate is not None else "synthesize"]
        return run_templify(source, paths["templify"], t.seed, t.format, overwrite, progress,
                            log, verify, **workers)  # fmt: skip

    stages: list[tuple[str, Callable[[bool], Any], bool]] = [
        ("synthesize", synthesize, rebuild), ("templify", templify, True)
    ]  # fmt: skip
    if config.decontaminate is not None:
        d = config.decontaminate

        def decontaminate(overwrite: bool) -> Any:
            from .quality.decontaminate import run_decontaminate

            return run_decontaminate(paths["synthesize"], paths["decontaminate"], d.eval_sets, d.options(),
                                     d.lm_eval_tasks, d.lm_eval_include, overwrite, progress, log, verify,
                                     **workers)  # fmt: skip

        stages.insert(1, ("decontaminate", decontaminate, True))
    if config.mix is not None:
        m = config.mix
        sources = m.recipe_sources([str(paths["templify"])])

        def mix(overwrite: bool) -> Any:
            mix_config = m.mix_config(sources, str(paths["mix"]), overwrite=overwrite, verify=verify)
            return run_mix(mix_config, log=log, **workers)

        stages.append(("mix", mix, True))
    for name, call, recompute in stages:
        log(f"== {name} -> {paths[name]}")
        results[name] = _stage(name, call, recompute, log)
        if not _complete(paths[name]):  # a static worker whose share is done, the others' not yet
            log(f"{name}: this worker's shards are done, not yet the others'; when every worker is "
                "done, run the same config without --num-workers/--worker-index to finish")  # fmt: skip
            results["stopped_at"] = name
            break
    return results


def _complete(folder: Path) -> bool:
    from .io.output import OutputDir

    manifest = OutputDir(folder).read_manifest()
    return bool(manifest and manifest.get("complete"))


def mix(settings: MixSettings, augmented: list[str], output: str, *, overwrite: bool = False,
        log: Callable[[str], None] = _stderr) -> dict[str, Any]:  # fmt: skip
    """The mix stage from its settings: `augmented` are templify outputs (folders or files), the
    corpus goes to `output`; returns the manifest. `instructpt.mix` in the public API."""
    from .mixing.mix import run_mix

    if not isinstance(settings, MixSettings):
        raise UsageError(f"settings must be a MixSettings, not {type(settings).__name__}")
    if isinstance(augmented, str | Path) or not isinstance(augmented, list | tuple):
        raise UsageError(f"augmented must be a list of templify outputs (folders or files), "
                         f"e.g. [{str(augmented)!r}], not a {type(augmented).__name__}")  # fmt: skip
    if not isinstance(output, str | Path):
        raise UsageError(f"output must be a folder path, not {type(output).__name__}")
    sources = settings.recipe_sources([str(p) for p in augmented])
    return run_mix(settings.mix_config(sources, str(output), overwrite=overwrite), log=log)


def run(config: RunConfig | str | Path, *, overrides: list[str] = (), rebuild: bool = False,
        progress: bool | None = None, verify: bool = False, log: Callable[[str], None] = _stderr,
        num_workers: int = 1, worker_index: int = 0, executor: str = "local",
        ray_workers: int | None = None, gpus_per_worker: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """The whole pipeline from a `RunConfig` or a YAML file (with `key=value` overrides, as
    `instructpt run --set`); returns {stage: summary}. `instructpt.run` in the public API.

    The workers as `instructpt run`'s options: static worker `worker_index` of `num_workers`
    (then "stopped_at" names the stage it stopped at until every worker is done), or
    `executor="ray"` with `ray_workers` actors (`gpus_per_worker` each for synthesis)."""
    if executor not in ("local", "ray"):
        raise UsageError(f"executor must be 'local' or 'ray', got {executor!r}")
    if ray_workers is not None and (not isinstance(ray_workers, int) or ray_workers < 1):
        raise UsageError(f"ray_workers must be at least 1, got {ray_workers!r}")
    if not isinstance(gpus_per_worker, int | float) or not gpus_per_worker >= 0:
        raise UsageError(f"gpus_per_worker must be zero or more, got {gpus_per_worker!r}")
    if executor == "ray" and num_workers != 1:
        raise UsageError("num_workers and worker_index are for static workers; with executor='ray' "
                         "give ray_workers")  # fmt: skip
    if isinstance(overrides, str):
        raise UsageError(f"overrides must be a list of key=value strings, e.g. [{overrides!r}]")
    if not isinstance(config, RunConfig | str | Path):
        raise UsageError(f"config must be a RunConfig or the path of a YAML file, not "
                         f"{type(config).__name__}")  # fmt: skip
    if not isinstance(config, RunConfig):
        config = load_config(config, list(overrides))
    return run_pipeline(config, rebuild=rebuild, progress=progress, log=log, verify=verify,
                        num_workers=num_workers, worker_index=worker_index, executor=executor,
                        ray_workers=ray_workers, gpus_per_worker=gpus_per_worker)  # fmt: skip
