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
                f"the {name} settings changed since {exc.folder} was written ({exc.changes}); "
                f"pass --rebuild to recompute it (its output is discarded), or use another workdir"
            ) from None
        log(f"{name}: settings changed, recomputing")
        return call(True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_pipeline(config: RunConfig, rebuild: bool = False, progress: bool | None = None,
                 log: Callable[[str], None] = _stderr, verify: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run every configured stage; returns {stage: summary}. `verify`: hash every finished file
    instead of trusting size + mtime."""
    from .engines.registry import create_engine
    from .mixing.mix import run_mix
    from .synthesis.stage import run_synthesis
    from .templating.stage import run_templify

    work = Path(config.workdir)
    paths = {"synthesize": work / "synthesized", "templify": work / "augmented", "mix": work / "train"}
    s = config.synthesize
    spec = s.engine_spec()  # `auto` resolved, the extra installed
    options = s.options_for(spec)  # validated before any stage runs
    results: dict[str, Any] = {}

    def synthesize(overwrite: bool) -> Any:
        cfg = s.synthesis_config(spec.name, str(paths["synthesize"]), overwrite=overwrite or rebuild,
                                 verify=verify, rebuild=rebuild)  # fmt: skip
        return run_synthesis(cfg, lambda: create_engine(spec.name, options), progress=progress, log=log)

    log(f"== synthesize -> {paths['synthesize']}")
    results["synthesize"] = _stage("synthesize", synthesize, rebuild, log)
    log(f"== templify -> {paths['templify']}")
    t = config.templify
    results["templify"] = _stage(
        "templify",
        lambda ow: run_templify(paths["synthesize"], paths["templify"], t.seed, t.format, ow, progress, log,
                                verify),
        True, log,
    )  # fmt: skip
    if config.mix is not None:
        m = config.mix
        sources = m.recipe_sources([str(paths["templify"])])
        log(f"== mix -> {paths['mix']}")

        def mix(overwrite: bool) -> Any:
            return run_mix(
                m.mix_config(sources, str(paths["mix"]), overwrite=overwrite, verify=verify), log=log
            )

        results["mix"] = _stage("mix", mix, True, log)
    return results


def mix(settings: MixSettings, augmented: list[str], output: str, *, overwrite: bool = False,
        log: Callable[[str], None] = _stderr) -> dict[str, Any]:  # fmt: skip
    """The mix stage from its settings: `augmented` are templify outputs (folders or files), the
    corpus goes to `output`; returns the manifest. `instructpt.mix` in the public API."""
    from .mixing.mix import run_mix

    sources = settings.recipe_sources([str(p) for p in augmented])
    return run_mix(settings.mix_config(sources, str(output), overwrite=overwrite), log=log)


def run(config: RunConfig | str | Path, *, overrides: list[str] = (), rebuild: bool = False,
        progress: bool | None = None, verify: bool = False,
        log: Callable[[str], None] = _stderr) -> dict[str, Any]:  # fmt: skip
    """The whole pipeline from a `RunConfig` or a YAML file (with `key=value` overrides, as
    `instructpt run -o`); returns {stage: summary}. `instructpt.run` in the public API."""
    if not isinstance(config, RunConfig):
        config = load_config(config, list(overrides))
    return run_pipeline(config, rebuild=rebuild, progress=progress, log=log, verify=verify)
