"""Where issues 13, 14 and 17 meet: the public `decontaminate` (equal to the stage), `run`'s
summary line for it, `instructpt.run` on static workers and on Ray, a recipe file with source
flags, and `examples/make_tiny_model.py --help`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructpt import DecontaminateSettings, RunConfig, decontaminate, run
from instructpt.cli import main
from instructpt.errors import UsageError
from instructpt.records import Entry
from instructpt.testing import train_tokenizer

from .test_decontaminate import BENCH_Q, QUIET, make_synthesized, read_out, write_jsonl
from .test_pipeline import make_corpus, snapshot

ROOT = Path(__file__).parent.parent


# -- instructpt.decontaminate -------------------------------------------------------------------


@pytest.mark.parametrize("action, dedupe", [("cut", False), ("drop", True)])
def test_decontaminate_in_memory_equals_the_stage(tmp_path, scripted, action, dedupe):
    from instructpt.quality.decontaminate import run_decontaminate

    from .test_filters import _synthesized

    # dedupe: 12 documents in 3 shards share one pair; otherwise doc3 and doc5's pair hold BENCH_Q
    synth = _synthesized(tmp_path, scripted, 5) if dedupe else make_synthesized(tmp_path, scripted, n=12)
    quiz = write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q}])
    settings = DecontaminateSettings(document_action=action, dedupe=dedupe, max_response_chars=100)
    stage = run_decontaminate(synth, tmp_path / "clean", [f"quiz={quiz}"], settings.options(),
                              progress=False, log=QUIET)  # fmt: skip
    rows = read_out(synth)
    summary: dict = {}
    kept = decontaminate(rows, settings, benchmarks={"quiz": [BENCH_Q]}, summary=summary)
    assert kept == read_out(tmp_path / "clean")  # the same rows, texts cut the same way
    for key in ("documents_in", "documents_out", "documents_cut", "documents_dropped", "pairs_in",
                "pairs_out", "pairs_dropped", "contamination"):  # fmt: skip
        assert summary[key] == stage[key], key
    if dedupe:
        assert summary["pairs_dropped"] == {"duplicate": 11}
    else:
        assert summary["contamination"] == {"quiz": {"documents": 1, "pairs": 1}}
        assert summary["pairs_dropped"]["response_too_long"] > 0
    contamination = (tmp_path / "clean" / "contamination.jsonl").read_text().splitlines()
    assert summary["hits"] == [json.loads(line) for line in contamination]


def test_decontaminate_keeps_entries_as_entries_in_order():
    from instructpt.synthesis.format import Pair

    def entry(i: int, text: str, pairs: list[Pair]) -> Entry:
        return Entry(f"e{i}", f"d{i}", 0, 1, text, pairs, f"c{i}", 0, False, 0, 10, 5, "stop")

    entries = [
        entry(0, "A plain text about rivers and the sea.", [Pair("Which sea?", "The sea.")]),
        entry(1, "Another text.", [Pair(BENCH_Q + "?", "Venus"), Pair("Why?", "")]),
        entry(2, "A third text.", []),
    ]
    summary: dict = {}
    kept = decontaminate(entries, benchmarks={"quiz": [BENCH_Q]}, summary=summary)
    assert [e.id for e in kept] == ["e0", "e1", "e2"] and all(isinstance(e, Entry) for e in kept)
    assert kept[0] == entries[0] and kept[1].pairs == [] and kept[1].chain_id == "c1"
    assert summary["pairs_dropped"] == {"contaminated": 1, "empty_response": 1}
    # the filters alone (no benchmark), and clear errors for a user's mistakes
    assert decontaminate(entries)[1].pairs == [Pair(BENCH_Q + "?", "Venus")]
    with pytest.raises(UsageError, match="own `id`"):
        decontaminate([{"text": "no id", "pairs": []}])
    with pytest.raises(UsageError, match="list of texts"):
        decontaminate(entries, benchmarks={"quiz": BENCH_Q})
    with pytest.raises(UsageError, match="DecontaminateSettings"):
        decontaminate(entries, {"ngram": 5})


# -- instructpt.run on workers, and its summary ---------------------------------------------------


def run_config(tmp_path: Path, workdir: str, **decontaminate: object) -> RunConfig:
    """A whole pipeline (rules engine, a tokenizer file, no torch) with a decontaminate section."""
    if not (tmp_path / "tokenizer.json").is_file():
        make_corpus(tmp_path / "corpus.jsonl", n=24)
        raw = [{"id": f"raw{i}", "text": f"Raw document {i} about the hills."} for i in range(6)]
        write_jsonl(tmp_path / "raw.jsonl", raw)  # other documents than the converted ones
        train_tokenizer(["Document number one describes the rivers and lakes."]).save(
            str(tmp_path / "tokenizer.json")
        )
        write_jsonl(tmp_path / "quiz.jsonl", [{"q": "Therefore, region 3 has plenty of water."}])
    tok = str(tmp_path / "tokenizer.json")
    return RunConfig.model_validate({
        "workdir": str(tmp_path / workdir),
        "synthesize": {"inputs": [str(tmp_path / "corpus.jsonl")], "engine": "rules", "model": tok,
                       "shard_size": 5, "max_new_tokens": 48},
        "decontaminate": {"eval_sets": [f"quiz={tmp_path / 'quiz.jsonl'}"], "min_words": 6, **decontaminate},
        "templify": {"seed": 1},
        "mix": {"recipe": "scratch", "raw": [str(tmp_path / "raw.jsonl")], "tokenizer": tok,
                "format": "jsonl", "bos_text": "<s>", "eos_text": "</s>", "workers": 1},
    })  # fmt: skip


STAGE_DIRS = ("synthesized", "decontaminated", "augmented", "train")


def outputs(work: Path) -> dict[str, dict[str, bytes]]:
    found = {name: snapshot(work / name) for name in STAGE_DIRS}
    assert all(found.values()), found.keys()  # every stage wrote data files
    return found


def test_run_on_two_static_workers_equals_one_process(tmp_path):
    single = run(run_config(tmp_path, "single"), progress=False, log=QUIET)
    assert single["decontaminate"]["contamination"]["quiz"]["documents"] >= 1
    config = run_config(tmp_path, "workers")
    first = run(config, progress=False, log=QUIET, num_workers=2, worker_index=1)
    assert first["stopped_at"] == "synthesize"  # its share done, worker 0's not yet
    second = run(config, progress=False, log=QUIET, num_workers=2, worker_index=0)
    assert second.get("stopped_at") != "synthesize"  # the last worker of a stage goes on
    final = run(config, progress=False, log=QUIET)  # finishes whatever is left, in one process
    assert "stopped_at" not in final
    assert outputs(tmp_path / "workers") == outputs(tmp_path / "single")
    assert final["mix"]["tokens_total"] == single["mix"]["tokens_total"]
    with pytest.raises(UsageError, match="worker"):
        run(config, progress=False, log=QUIET, num_workers=2, worker_index=2)
    with pytest.raises(UsageError, match="ray_workers"):
        run(config, progress=False, log=QUIET, executor="ray", num_workers=2)


def test_run_cli_prints_a_decontaminate_line(tmp_path):
    import yaml

    config = run_config(tmp_path, "work").model_dump(mode="json", exclude_none=True)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "work" / "decontaminated" / "summary.json").read_text())
    from instructpt.quality.outcome import summary_line

    line = f"decontaminate: {summary_line(summary)} -> {tmp_path / 'work'}/decontaminated"
    assert line in result.output.splitlines()
    assert "contamination: quiz " in line


@pytest.mark.slow
def test_run_on_a_local_ray_cluster_equals_one_process(tmp_path):
    ray = pytest.importorskip("ray")
    single = run(run_config(tmp_path, "single", dedupe=True), progress=False, log=QUIET)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run(run_config(tmp_path, "ray", dedupe=True), progress=False, log=QUIET, executor="ray",
                     ray_workers=2)  # fmt: skip
    finally:
        ray.shutdown()
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "single")
    assert on_ray["decontaminate"]["pairs_dropped"] == single["decontaminate"]["pairs_dropped"]
    assert on_ray["mix"]["tokens_total"] == single["mix"]["tokens_total"]


# -- mix with a recipe file, and the example script -------------------------------------------------


def test_a_recipe_file_refuses_source_flags(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"sources": [{"name": "a", "paths": ["a.jsonl"], "weight": 1.0}]}))
    for flags, named in [(["--raw", "r.jsonl"], "--raw"), (["--augmented", "aug", "--general", "g"],
                                                            "--augmented, --general")]:  # fmt: skip
        result = CliRunner().invoke(main, ["mix", "--recipe", str(recipe), *flags, "--tokenizer", "t.json",
                                           "-o", str(tmp_path / "out")])  # fmt: skip
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert f"is a recipe file, which names every source itself: give {named} there" in result.output
        assert not (tmp_path / "out").exists()


def test_make_tiny_model_help_prints_usage_and_writes_nothing(tmp_path):
    script = ROOT / "examples" / "make_tiny_model.py"
    for flag in ("--help", "-h"):
        done = subprocess.run([sys.executable, str(script), flag], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: make_tiny_model.py") and "--tokenizer-only" in done.stdout
        assert list(tmp_path.iterdir()) == []
    done = subprocess.run([sys.executable, str(script), "--tokenizr-only"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --tokenizr-only" in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert not (ROOT / "examples" / "--help").exists()
