"""The `instructpt` command end to end: outputs, resumption, and user errors without tracebacks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from instructpt.cli import main

from .test_pipeline import make_corpus, snapshot


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus.jsonl", n=12)


@pytest.fixture
def tok_dir(tmp_path, tokenizer) -> Path:
    folder = tmp_path / "tok"
    folder.mkdir()
    tokenizer.backend.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def invoke(*args: str):
    return CliRunner().invoke(
        main, [str(a) for a in args], catch_exceptions=False, terminal_width=200, max_content_width=200
    )


def test_help_explains_every_option():
    result = invoke("synthesize", "--help")
    assert result.exit_code == 0
    for option in (
        "--rounds",
        "--max-model-len",
        "--max-new-tokens",
        "--shard-size",
        "--text-field",
        "--id-field",
        "--long-docs",
        "--engine",
        "--overwrite",
        "--strict",
    ):
        assert option in result.output
    assert "instruction-pretrain/instruction-synthesizer" in result.output


def test_synthesize_with_rules_engine(tmp_path, corpus, tok_dir):
    out = tmp_path / "out"
    result = invoke(
        "synthesize",
        corpus,
        "-o",
        out,
        "--engine",
        "rules",
        "--model",
        tok_dir,
        "--shard-size",
        "4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 12 and summary["rejected_inputs"] == 2
    rows = pq.read_table(out / "data").to_pylist()
    assert len(rows) == 12 and rows[0]["pairs"]
    assert json.loads((out / "manifest.json").read_text())["engine"]["engine"] == "rules"


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jsonl", "-o", "o"], "input not found: missing.jsonl"),
        (["{corpus}", "-o", "o", "--engine", "nope"], "unknown engine 'nope'"),
        (
            ["{corpus}", "-o", "o", "--engine", "rules", "--model", "/no/such/model"],
            "cannot load the tokenizer",
        ),
        (
            ["{corpus}", "-o", "o", "--engine", "rules", "--model", "{tok}", "--rounds", "0"],
            "--rounds must be",
        ),
        (["{corpus}", "-o", "o", "--engine", "rules", "--model", "{tok}", "--strict"], "invalid_json"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, corpus, tok_dir, args, message):
    args = [a.format(corpus=corpus, tok=tok_dir) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "instructpt", "synthesize", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_unloadable_hf_model_is_one_line(tmp_path, corpus):
    pytest.importorskip("transformers")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "instructpt",
            "synthesize",
            str(corpus),
            "-o",
            "o",
            "--engine",
            "hf",
            "--model",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cannot load the" in proc.stderr


def test_engines_list():
    result = invoke("engines", "list", "--json")
    names = {row["name"] for row in json.loads(result.output)}
    assert {"hf", "rules"} <= names


@pytest.mark.slow
def test_hf_engine_end_to_end(tmp_path, corpus, tiny_model):
    out = tmp_path / "out"
    result = invoke(
        "synthesize",
        corpus,
        "-o",
        out,
        "--engine",
        "hf",
        "--model",
        tiny_model,
        "--max-new-tokens",
        "24",
        "--max-model-len",
        "256",
        "--keep-generations",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out / "data").to_pylist()
    assert len(rows) == 12
    assert all(0 < r["generated_tokens"] <= 24 for r in rows)
    assert all(r["prompt_tokens"] + 24 <= 256 for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"]["dtype"] == "float32" and manifest["engine"]["device"] == "cpu"


def _shards_done(out: Path) -> int:
    """Shards with a marker (the manifest's table of them is only rewritten every few seconds)."""
    return len([p for p in (out / "shards").glob("part-*.json") if not p.name.endswith(".failed.json")])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "instructpt", "synthesize", *map(str, args)]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_is_byte_identical(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=60)
    common = [
        corpus,
        "--engine",
        "hf",
        "--model",
        tiny_model,
        "--shard-size",
        "4",
        "--rounds",
        "2",
        "--max-new-tokens",
        "24",
        "--max-model-len",
        "256",
        "--min-parse-rate",  # random weights write no pairs: the collapse guard would stop the run
        "0",
        "--no-progress",
    ]
    subprocess.run(_cli(*common, "-o", tmp_path / "clean"), check=True, capture_output=True, timeout=600)
    crashy = tmp_path / "crashy"
    rng = random.Random(1234)
    kills = 0
    for target in (2, 6, 11):  # kill once the manifest lists `target` shards, plus a random instant
        proc = subprocess.Popen(
            _cli(*common, "-o", crashy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while proc.poll() is None and _shards_done(crashy) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            assert not json.loads((crashy / "manifest.json").read_text())["complete"]
    subprocess.run(_cli(*common, "-o", crashy), check=True, capture_output=True, timeout=600)
    assert kills == 3, "a run finished before its kill: make the corpus bigger"
    assert snapshot(crashy) == snapshot(tmp_path / "clean")
    assert json.loads((crashy / "summary.json").read_text())["documents"] == 60
