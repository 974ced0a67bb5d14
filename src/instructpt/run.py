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

from .config import RunConfig
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
    from .engines.registry import EngineOptions, create_engine, engine_specs, resolve_engine_name
    from .errors import MissingExtraError
    from .mix import MixConfig, SourceSpec, domain_recipe, run_mix, scratch_recipe
    from .pipeline import SynthesisConfig, run_synthesis
    from .rounds import RoundSettings
    from .templify_run import run_templify

    work = Path(config.workdir)
    paths = {"synthesize": work / "synthesized", "templify": work / "augmented", "mix": work / "train"}
    s = config.synthesize
    engine_name = resolve_engine_name(s.engine)
    if missing := engine_specs()[engine_name].missing():
        raise MissingExtraError(f"the {engine_name} engine", engine_specs()[engine_name].extra, missing[0])
    options = EngineOptions(model=s.model, tokenizer=s.tokenizer, max_model_len=s.max_model_len,
                            dtype=s.dtype, device=s.device, max_batch_tokens=s.max_batch_tokens)  # fmt: skip
    results: dict[str, Any] = {}

    def synthesize(overwrite: bool) -> Any:
        cfg = SynthesisConfig(
            inputs=s.inputs, output=str(paths["synthesize"]), model=s.model, engine=engine_name,
            tokenizer=s.tokenizer, text_field=s.text_field, id_field=s.id_field, shard_size=s.shard_size,
            limit=s.limit, format=s.format, max_model_len=s.max_model_len, overwrite=overwrite or rebuild,
            verify=verify, rebuild=rebuild, max_doc_chars=s.max_doc_chars,
            rounds=RoundSettings(s.rounds, s.max_new_tokens, s.long_docs, s.keep_generations),
        )  # fmt: skip
        return run_synthesis(cfg, lambda: create_engine(engine_name, options), progress=progress, log=log)

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
        augmented = [str(paths["templify"])]
        if m.recipe == "scratch":
            if not m.raw:
                raise UsageError("mix.recipe scratch needs mix.raw (the unchanged raw texts)")
            sources = scratch_recipe(augmented, m.raw, m.text_field)
        elif m.recipe == "domain":
            if not m.general:
                raise UsageError("mix.recipe domain needs mix.general (general instruction data)")
            sources = domain_recipe(augmented, m.general, m.ratio, m.question_field, m.response_field)
        else:
            sources = [SourceSpec("augmented", augmented, m.augmented_weight)]
            sources += [SourceSpec(**src.model_dump()) for src in m.sources]
        log(f"== mix -> {paths['mix']}")

        def mix(overwrite: bool) -> Any:
            cfg = MixConfig(
                sources=sources, output=str(paths["mix"]), tokenizer=m.tokenizer, recipe=m.recipe,
                format=m.format, seq_len=m.seq_len, pack=m.pack, seed=m.seed, upsample=m.upsample,
                workers=m.workers, shard_tokens=m.shard_tokens, bos_text=m.bos_text, eos_text=m.eos_text,
                overwrite=overwrite, verify=verify,
            )  # fmt: skip
            return run_mix(cfg, log=log)

        results["mix"] = _stage("mix", mix, True, log)
    return results
