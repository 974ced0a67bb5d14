"""Scale-out: static workers (Slurm-style), status/merge, and Ray actors with a worker killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.executor.local import TEST_DELAY_ENV

from .test_pipeline import make_corpus, snapshot


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "instructpt", *map(str, args)]


def common(corpus, model, out):
    # 16 new tokens fit no whole pair: the collapse guard would (rightly) stop the run, so it is off
    return [corpus, "-o", out, "--engine", "rules", "--model", model, "--shard-size", "3",
            "--max-new-tokens", "16", "--max-model-len", "256", "--min-parse-rate", "0",
            "--no-progress"]  # fmt: skip


SLOW = {**os.environ, TEST_DELAY_ENV: "0.2"}  # the rules engine, slowed so that a kill lands mid-run


def markers(out, worker: int, workers: int) -> int:
    folder = out / "shards"
    if not folder.is_dir():
        return 0
    indexes = [
        int(p.name.split(".")[0].split("-")[1])
        for p in folder.glob("part-*.json")
        if not p.name.endswith(".failed.json")
    ]
    return sum(1 for i in indexes if i % workers == worker)  # fmt: skip


def test_three_static_workers_one_killed_and_rerun_equal_a_single_process(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=60)
    single, split = tmp_path / "single", tmp_path / "split"
    subprocess.run(cli("synthesize", *common(corpus, tiny_model, single)), check=True, capture_output=True)
    procs = [subprocess.Popen(cli("synthesize", *common(corpus, tiny_model, split), "--num-workers", 3,
                                  "--worker-index", w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=SLOW)
             for w in range(3)]  # fmt: skip
    while procs[1].poll() is None and markers(split, 1, 3) < 2:
        time.sleep(0.01)
    assert procs[1].poll() is None, "worker 1 finished before it could be killed"
    os.kill(procs[1].pid, signal.SIGKILL)
    procs[1].wait()
    for p in (procs[0], procs[2]):
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    status = CliRunner().invoke(main, ["status", str(split), "--json"])
    info = json.loads(status.output)
    assert not info["complete"] and info["shards_total"] == 20 and info["shards_done"] < 20
    refused = CliRunner().invoke(main, ["merge", str(split)])
    assert refused.exit_code != 0 and "shards missing" in refused.output
    rerun = subprocess.run(cli("synthesize", *common(corpus, tiny_model, split), "--num-workers", 3,
                               "--worker-index", 1), capture_output=True, text=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    merged = CliRunner().invoke(main, ["merge", str(split)])
    assert merged.exit_code == 0, merged.output
    assert json.loads((split / "manifest.json").read_text())["complete"]
    assert snapshot(split) == snapshot(single)
    assert json.loads((split / "summary.json").read_text())["documents"] == 60


def test_status_reports_failures_and_bad_folders(tmp_path, scripted):
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    corpus = make_corpus(tmp_path / "corpus.jsonl", n=10)
    config = SynthesisConfig(inputs=[str(corpus)], output=str(tmp_path / "out"), model="m", engine="s",
                             shard_size=4)  # fmt: skip
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_synthesis(config, lambda: scripted(lambda p: "", fail_after_calls=2), progress=False,
                      log=lambda m: None)  # fmt: skip
    info = json.loads(CliRunner().invoke(main, ["status", str(tmp_path / "out"), "--json"]).output)
    assert info["shards_done"] == 1 and info["failures"][0]["shard"] == 1
    assert "simulated crash" in info["failures"][0]["error"]
    bad = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert bad.exit_code != 0 and "not an `instructpt synthesize` output folder" in bad.output


@pytest.mark.slow
def test_ray_actors_with_one_killed_mid_run_equal_a_single_process(tmp_path, tiny_model):
    ray = pytest.importorskip("ray")
    from instructpt.engines import EngineOptions
    from instructpt.synthesis.ray import run_ray
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    corpus = make_corpus(tmp_path / "corpus.jsonl", n=36)

    def config(out):
        return SynthesisConfig(inputs=[str(corpus)], output=str(tmp_path / out), model=str(tiny_model),
                               engine="rules", shard_size=3, max_model_len=256,
                               rounds=RoundSettings(max_new_tokens=16))  # fmt: skip

    options = EngineOptions(model=str(tiny_model), max_model_len=256)
    from instructpt.engines import create_engine

    run_synthesis(
        config("single"), lambda: create_engine("rules", options), progress=False, log=lambda m: None
    )
    killed = []

    def kill_one(index, actors):
        if not killed:
            killed.append(index)
            ray.kill(actors[0], no_restart=True)

    logs: list[str] = []
    summary = run_ray(config("ray"), "rules", options, num_workers=2, progress=False, log=logs.append,
                      on_shard_done=kill_one)  # fmt: skip
    assert killed and any("died" in line and "retrying" in line for line in logs), logs
    assert summary["complete"] and summary["documents"] == 36
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "single")
