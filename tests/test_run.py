"""`instructpt run`: config validation, the whole pipeline, skipping, resuming, changed settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.config import load_config
from instructpt.errors import UsageError
from instructpt.executor.local import TEST_DELAY_ENV

from .test_pipeline import make_corpus, snapshot


def write_config(tmp_path: Path, model: Path, engine: str = "rules", **changes) -> Path:
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=24)
    raw = make_corpus(tmp_path / "raw.jsonl", n=6)
    raw.write_text(raw.read_text().replace('"id": "doc', '"id": "raw'))  # not the converted documents' ids
    config = {
        "workdir": str(tmp_path / "work"),
        "synthesize": {"inputs": [str(corpus)], "engine": engine, "model": str(model), "shard_size": 5,
                       "max_new_tokens": 24, "max_model_len": 512},
        "templify": {"seed": 1},
        "mix": {"recipe": "scratch", "raw": [str(raw)], "tokenizer": str(model), "format": "olmo",
                "workers": 1},
    }  # fmt: skip
    for key, value in changes.items():
        section, field = key.split("__")
        config[section][field] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "content, overrides, message",
    [
        (
            "workdir: w\nsynthesize: {inputs: [a], rondz: 2}\n",
            [],
            "synthesize.rondz: Extra inputs are not permitted",
        ),
        (
            "workdir: w\nsynthesize: {inputs: [a], rounds: 0}\n",
            [],
            "synthesize.rounds: Input should be greater",
        ),
        ("workdir: w\nsynthesize: {inputs: []}\n", [], "synthesize.inputs: List should have at least 1 item"),
        ("synthesize: {inputs: [a]}\n", [], "workdir: Field required"),
        ("workdir: w\nsynthesize: {inputs: [a]}\nmix: {format: csv}\n", [], "mix.tokenizer: Field required"),
        (
            "workdir: w\nsynthesize: {inputs: [a]}\n",
            ["synthesize.rounds=x"],
            "synthesize.rounds: Input should be",
        ),
        ("workdir: w\nsynthesize: {inputs: [a]}\n", ["norounds"], "--set needs key=value"),
        ("workdir: [w\n", [], "is not valid YAML"),
        ("- a\n", [], "must hold a mapping"),
    ],
)
def test_config_errors_name_the_bad_key(tmp_path, content, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        load_config(path, overrides)


def test_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("workdir: w\nsynthesize: {inputs: [a]}\nmix: {tokenizer: t}\n")
    config = load_config(
        path, ["synthesize.rounds=3", "mix.pack=true", "mix.raw=[x, y]", "mix.format=megatron"]
    )
    assert config.synthesize.rounds == 3 and config.mix.pack is True and config.mix.raw == ["x", "y"]


def test_shipped_example_configs_are_valid():
    root = Path(__file__).parent.parent / "examples"
    configs = {path.name: load_config(path) for path in sorted(root.glob("*.yaml"))}
    assert {"demo.yaml", "scratch.yaml", "domain.yaml"} <= set(configs)
    scratch = configs["scratch.yaml"]  # the paper's split: a fifth converted, the rest of the same corpus raw
    assert scratch.synthesize.fraction == 0.2 and scratch.mix.raw == scratch.synthesize.inputs


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_full_run_with_rules_engine_then_skip_and_changed_settings(tmp_path, tiny_model):
    path = write_config(tmp_path, tiny_model)
    result = invoke("run", path, "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results["synthesize"]["documents"] == 24 and results["templify"]["documents"] >= 24
    assert results["mix"]["sources"][1]["documents_available"] == 6
    work = tmp_path / "work"
    assert (work / "train/data/part-00000.npy").is_file()
    before = snapshot(work / "synthesized"), (work / "train/data/part-00000.npy").read_bytes()

    again = invoke("run", path)  # everything complete: every stage skipped
    assert again.exit_code == 0 and again.stderr.count("already complete") == 3
    markers = {p.name: p.read_bytes() for p in (work / "synthesized/shards").glob("part-*.json")}
    kept = invoke("run", path, "--rebuild")  # nothing changed: --rebuild must not discard the GPU's work
    assert kept.exit_code == 0 and "synthesize already complete" in kept.stderr, kept.stderr
    assert {p.name: p.read_bytes() for p in (work / "synthesized/shards").glob("part-*.json")} == markers

    changed = invoke("run", path, "--set", "templify.seed=2")  # cheap stages recompute
    assert changed.exit_code == 0 and "templify: settings changed, recomputing" in changed.stderr
    assert "mix: settings changed, recomputing" in changed.stderr
    assert snapshot(work / "synthesized") == before[0]

    refused = invoke("run", path, "--set", "synthesize.rounds=3")
    assert (
        refused.exit_code != 0 and "pass --rebuild" in refused.output and "rounds: 2 -> 3" in refused.output
    )
    rebuilt = invoke("run", path, "--set", "synthesize.rounds=3", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output


def test_run_kill_9_then_resume_matches_a_clean_run(tmp_path, tiny_model):
    # The rules engine, slowed down between each shard's files and its marker (the hf engine's
    # SIGKILL test is in test_cli.py).
    config = write_config(tmp_path, tiny_model, engine="rules", synthesize__shard_size=3)
    cmd = [sys.executable, "-m", "instructpt", "run", "--no-progress", str(config)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    work, clean = tmp_path / "work", tmp_path / "clean"
    work.rename(clean)  # same input paths, so the records' sources match
    slow = {**os.environ, TEST_DELAY_ENV: "0.3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow)
    markers = work / "synthesized/shards"
    while proc.poll() is None and len(list(markers.glob("part-?????.json"))) < 3:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "augmented").exists()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    for stage in ("synthesized", "augmented"):
        assert snapshot(work / stage) == snapshot(clean / stage)
    for name in ("part-00000.npy", "part-00000.csv.gz"):
        assert (work / "train/data" / name).read_bytes() == (clean / "train/data" / name).read_bytes()


def test_run_on_two_static_workers_then_a_final_run_equals_one_process(tmp_path, tiny_model):
    path = write_config(tmp_path, tiny_model)  # the rules engine; 24 documents in 5 shards
    assert invoke("run", path, "--no-progress").exit_code == 0
    work, clean = tmp_path / "work", tmp_path / "clean"
    work.rename(clean)  # same input paths, so the records' sources match

    def worker(index: int) -> dict:
        result = invoke("run", path, "--no-progress", "--json", "--num-workers", 2, "--worker-index", index)
        assert result.exit_code == 0, result.output
        assert "run the same config without --num-workers/--worker-index" in result.stderr
        return json.loads(result.stdout)

    first = worker(0)  # synthesize shards 0, 2, 4: the stage is not complete, it stops there
    assert first["stopped_at"] == "synthesize" and first["synthesize"]["documents"] < 24
    assert not (work / "augmented").exists()
    second = worker(1)  # synthesize 1, 3 (now complete), then templify 1, 3 and stop
    assert second["stopped_at"] == "templify" and second["synthesize"]["documents"] == 24
    assert not (work / "train").exists()
    final = invoke("run", path, "--no-progress")  # templify 0, 2, 4, then mix
    assert final.exit_code == 0, final.output
    assert "synthesized: synthesize already complete" in final.stderr and "stopped" not in final.stderr
    for stage in ("synthesized", "augmented"):
        assert snapshot(work / stage) == snapshot(clean / stage)
    for name in ("part-00000.npy", "part-00000.csv.gz"):
        assert (work / "train/data" / name).read_bytes() == (clean / "train/data" / name).read_bytes()
    refused = invoke("run", path, "--num-workers", 2, "--worker-index", 2)
    assert refused.exit_code != 0 and "--worker-index must be in 0..1" in refused.output
