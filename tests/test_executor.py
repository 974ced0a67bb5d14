"""One executor for every stage: templify and mix killed and resumed, on static workers, on Ray,
and `status`/`merge` on any stage's folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.executor.local import TEST_DELAY_ENV
from instructpt.io.output import stage_of
from instructpt.mixing import stage as mix_stage
from instructpt.mixing.mix import run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec
from instructpt.templating.stage import run_templify

from .test_pipeline import config, make_corpus, run, snapshot

SLOW = {**os.environ, TEST_DELAY_ENV: "0.3"}  # each shard waits between its files and its marker


@pytest.fixture
def synth(tmp_path, scripted) -> Path:
    """A finished synthesize folder of 12 shards."""
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, out="synth", shard_size=2), scripted)
    return tmp_path / "synth"


@pytest.fixture
def tok_json(tmp_path, tokenizer) -> str:
    path = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(path))
    return str(path)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "instructpt", *map(str, args)]


def markers(folder: Path) -> dict[str, int]:
    """{marker name: mtime_ns} of the done shards in `folder`."""
    if not (folder / "shards").is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in (folder / "shards").glob("part-*.json")
            if not p.name.endswith(".failed.json")}  # fmt: skip


def kill_after(cmd: list[str], folder: Path, n: int) -> dict[str, int]:
    """Run `cmd` slowed down, SIGKILL it once `folder` has `n` done shards; their markers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=SLOW)
    while proc.poll() is None and len(markers(folder)) < n:
        time.sleep(0.005)
    assert proc.poll() is None, f"it finished before the kill: {proc.stderr.read().decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not json.loads((folder / "manifest.json").read_text())["complete"]
    return markers(folder)


def quiet(**kw):
    return {"log": lambda m: None, **kw}


def mix_config(tmp_path: Path, aug: Path, tok: str, out: str, **flags) -> MixConfig:
    sources = [SourceSpec("augmented", [str(aug)], weight=1.0),
               SourceSpec("raw", [str(tmp_path / "corpus.jsonl")], weight=0.5)]  # fmt: skip
    return MixConfig(sources, str(tmp_path / out), tok, format="megatron", workers=1, bos_text="<s>",
                     eos_text="</s>", seed=3, **flags)  # fmt: skip


def mix_files(folder: Path) -> dict[str, bytes]:
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "data").rglob("*"))}
    if (folder / "rejects.jsonl").exists():
        files["rejects.jsonl"] = (folder / "rejects.jsonl").read_bytes()
    return files


def test_templify_killed_mid_run_resumes_byte_identical_keeping_done_shards(tmp_path, synth):
    clean = run_templify(synth, tmp_path / "clean", progress=False, **quiet())
    crashy = tmp_path / "crashy"
    done = kill_after(cli("templify", synth, "-o", crashy, "--no-progress"), crashy, 3)
    resumed = run_templify(synth, crashy, progress=False, **quiet())
    assert {k: v for k, v in markers(crashy).items() if k in done} == done  # not recomputed
    assert snapshot(crashy) == snapshot(tmp_path / "clean") and resumed == clean
    assert (crashy / "summary.json").read_bytes() == (tmp_path / "clean/summary.json").read_bytes()
    assert json.loads((crashy / "manifest.json").read_text())["stage"] == "templify"


def test_mix_killed_mid_run_resumes_byte_identical_without_redoing_shards(tmp_path, synth, tok_json,
                                                                          monkeypatch):  # fmt: skip
    run_templify(synth, tmp_path / "aug", progress=False, **quiet())
    clean = run_mix(mix_config(tmp_path, tmp_path / "aug", tok_json, "clean"), **quiet())
    crashy = tmp_path / "crashy"
    script = ("import json, sys; from instructpt.mixing.mix import run_mix; "
              "from instructpt.mixing.recipes import MixConfig, SourceSpec; "
              "d = json.loads(sys.argv[1]); d['sources'] = [SourceSpec(**s) for s in d['sources']]; "
              "run_mix(MixConfig(**d))")  # fmt: skip
    settings = json.dumps(asdict(mix_config(tmp_path, tmp_path / "aug", tok_json, "crashy")))
    done = kill_after([sys.executable, "-c", script, settings], crashy, 3)
    calls: list[int] = []
    tokenize = mix_stage.tokenize_shard
    monkeypatch.setattr(mix_stage, "tokenize_shard", lambda *a, **k: calls.append(a[6]) or tokenize(*a, **k))
    resumed = run_mix(mix_config(tmp_path, tmp_path / "aug", tok_json, "crashy"), **quiet())
    total = clean["tokenize_shards"]
    assert len(calls) == total - len(done) and not {f"part-{i:05d}.json" for i in calls} & set(done)
    assert mix_files(crashy) == mix_files(tmp_path / "clean")
    figures = ("sources", "token_share", "tokens_total", "documents_total", "shards")
    assert {k: resumed[k] for k in figures} == {k: clean[k] for k in figures}
    assert not (crashy / ".work").exists() and not (crashy / "shards").exists()
    assert stage_of(resumed) == "mix"


def test_templify_on_two_static_workers_equals_one_process(tmp_path, synth):
    one = run_templify(synth, tmp_path / "one", progress=False, **quiet())
    split = tmp_path / "split"
    first = run_templify(synth, split, progress=False, num_workers=2, worker_index=0, **quiet())
    assert first["shards"] == 6 and not (split / "summary.json").exists()
    info = json.loads(CliRunner().invoke(main, ["status", str(split), "--json"]).output)
    assert info["stage"] == "templify" and (info["shards_done"], info["shards_total"]) == (6, 12)
    assert not info["complete"] and info["documents_done"] > 0
    refused = CliRunner().invoke(main, ["merge", str(split)])
    assert refused.exit_code != 0 and "6 of 12 shards missing" in refused.output
    second = run_templify(synth, split, progress=False, num_workers=2, worker_index=1, **quiet())
    assert second == one and snapshot(split) == snapshot(tmp_path / "one")
    assert (split / "summary.json").read_bytes() == (tmp_path / "one/summary.json").read_bytes()
    merged = CliRunner().invoke(main, ["merge", str(split)])
    assert merged.exit_code == 0 and "complete, 12 shards" in merged.output
    assert json.loads(CliRunner().invoke(main, ["status", str(split), "--json"]).output)["complete"]


@pytest.mark.parametrize("partial", [False, True], ids=["whole", "allow-partial"])
def test_mix_on_two_static_workers_then_merge_equals_one_process(tmp_path, synth, tok_json, monkeypatch,
                                                                 partial):  # fmt: skip
    # allow-partial: the templify folder is unfinished (half its shards), which merge accepts too
    run_templify(synth, tmp_path / "aug", progress=False, **quiet(**({"num_workers": 2} if partial else {})))
    assert json.loads((tmp_path / "aug/manifest.json").read_text())["complete"] is not partial
    flags = {"allow_partial": True} if partial else {}
    one = run_mix(mix_config(tmp_path, tmp_path / "aug", tok_json, "one", **flags), **quiet())
    config = mix_config(tmp_path, tmp_path / "aug", tok_json, "split", **flags)
    first = run_mix(config, num_workers=2, worker_index=0, **quiet())
    assert not first["complete"] and not (tmp_path / "split/data").exists()
    info = json.loads(CliRunner().invoke(main, ["status", str(tmp_path / "split"), "--json"]).output)
    assert info["stage"] == "mix" and info["shards_done"] == (one["tokenize_shards"] + 1) // 2

    def crash(*args, **kwargs):
        raise RuntimeError("killed while writing the mix")

    monkeypatch.setattr(mix_stage.MixStage, "finalize", crash)
    with pytest.raises(RuntimeError, match="killed while writing"):
        run_mix(config, num_workers=2, worker_index=1, **quiet())
    monkeypatch.undo()
    merged = CliRunner().invoke(main, ["merge", str(tmp_path / "split")])
    assert merged.exit_code == 0, merged.output
    assert mix_files(tmp_path / "split") == mix_files(tmp_path / "one")
    manifest = json.loads((tmp_path / "split/manifest.json").read_text())
    assert manifest["complete"] and manifest["tokens_total"] == one["tokens_total"]


def test_stage_of_reads_the_manifest_or_guesses_for_old_folders():
    assert stage_of({"stage": "templify", "settings": {"rounds": 2}}) == "templify"
    assert stage_of({"settings": {"rounds": 2}}) == "synthesize"
    assert stage_of({"settings": {"templates": "x"}}) == "templify"
    assert stage_of({"settings": {"sources": [], "tokenizer_hash": "x"}}) == "mix"
    assert stage_of({"settings": {}}) is None and stage_of(None) is None


@pytest.mark.slow
def test_templify_and_mix_on_a_local_ray_cluster_equal_one_process(tmp_path, synth, tok_json):
    ray = pytest.importorskip("ray")
    one = run_templify(synth, tmp_path / "one", progress=False, **quiet())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_templify(synth, tmp_path / "ray", executor="ray", ray_workers=2, **quiet())
        assert on_ray == one and snapshot(tmp_path / "ray") == snapshot(tmp_path / "one")
        mixed = run_mix(mix_config(tmp_path, tmp_path / "one", tok_json, "mix-ray"), executor="ray",
                        ray_workers=2, **quiet())  # fmt: skip
    finally:
        ray.shutdown()
    alone = run_mix(mix_config(tmp_path, tmp_path / "one", tok_json, "mix-one"), **quiet())
    assert mixed["tokens_total"] == alone["tokens_total"]
    assert mix_files(tmp_path / "mix-ray") == mix_files(tmp_path / "mix-one")
