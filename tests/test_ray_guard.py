"""The collapse guard and `--target-tokens` on `--executor ray` (a local Ray cluster): the guard is
judged on the driver from what the actors saw, and a target stops cleanly as on one process."""

from __future__ import annotations

import pytest

from instructpt.engines import EngineOptions, create_engine
from instructpt.io.integrity import check_run
from instructpt.planning import marker_training_tokens
from instructpt.synthesis.guard import SynthesisCollapsed
from instructpt.synthesis.rounds import RoundSettings
from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

from .test_pipeline import make_corpus, snapshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def config(tmp_path, tiny_model, out: str, **kw) -> SynthesisConfig:
    corpus = tmp_path / "corpus.jsonl"
    if not corpus.exists():
        make_corpus(corpus, n=160, bad_every=1000)
    base = dict(inputs=[str(corpus)], output=str(tmp_path / out), model=str(tiny_model),
                engine="rules", shard_size=8, max_model_len=512, rounds=RoundSettings(rounds=2))  # fmt: skip
    return SynthesisConfig(**{**base, **kw})


def on_ray(cfg: SynthesisConfig, tiny_model, logs: list[str] | None = None) -> dict:
    from instructpt.synthesis.ray import run_ray

    options = EngineOptions(model=str(tiny_model), max_model_len=512)
    log = logs.append if logs is not None else (lambda m: None)
    return run_ray(cfg, "rules", options, num_workers=2, progress=False, log=log)


def local(cfg: SynthesisConfig, tiny_model) -> dict:
    options = EngineOptions(model=str(tiny_model), max_model_len=512)
    return run_synthesis(cfg, lambda: create_engine("rules", options), progress=False, log=lambda m: None)


def test_target_tokens_stops_cleanly_on_ray_and_a_rerun_completes(tmp_path, tiny_model, ray_cluster):
    clean = local(config(tmp_path, tiny_model, "clean"), tiny_model)
    per_shard = [
        marker_training_tokens(m["counts"]) for _, m in sorted(check_run(tmp_path / "clean").good.items())
    ]
    assert len(per_shard) == 20
    target = sum(per_shard[:2]) + 1  # reached with the third shard
    logs: list[str] = []
    first = on_ray(config(tmp_path, tiny_model, "ray", target_tokens=target), tiny_model, logs)
    assert first["stopped"] == "target_tokens" and first["complete"]
    # exactly the shards up to the one that reaches the target, whatever the actors' timing
    # (shards computed ahead are kept for a larger target, not part of this run)
    assert first["shards"] == 3
    assert first["training_tokens_estimate"] == sum(per_shard[: first["shards"]]) >= target
    assert sorted(check_run(tmp_path / "ray").good) == list(range(first["shards"]))
    assert any("stopped before shard" in line for line in logs), logs
    rest = on_ray(config(tmp_path, tiny_model, "ray"), tiny_model)  # no target: go on
    assert "stopped" not in rest and rest["shards"] == clean["shards"]
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "clean")


def test_collapse_guard_stops_a_ray_run_and_finished_shards_stay_valid(tmp_path, tiny_model, ray_cluster):
    # max_new_tokens too small to finish one pair: a real cause the guard names
    cfg = config(tmp_path, tiny_model, "ray", rounds=RoundSettings(rounds=2, max_new_tokens=2))
    with pytest.raises(SynthesisCollapsed) as caught:
        on_ray(cfg, tiny_model)
    message = str(caught.value)
    assert "synthesis stopped: only 0% of the last" in message
    assert "One raw generation without a pair" in message  # sent by an actor to the driver
    done = check_run(tmp_path / "ray").good
    assert done and len(done) < 20  # stopped early; what finished is intact
    off = config(
        tmp_path, tiny_model, "off", rounds=RoundSettings(rounds=2, max_new_tokens=2), min_parse_rate=0
    )
    assert on_ray(off, tiny_model)["complete"]  # --min-parse-rate 0: the same run completes
