"""A trust audit: a damaged, truncated or contradictory folder or config ends in a correct output,
a one-line error naming the file and what to do, or a counted warning: never a silent wrong result.

Each test is a case found by acting as a hostile user on the bundled demo (rules engine, no model).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from instructpt.cli import main
from instructpt.testing import save_tiny_tokenizer

EXAMPLES = Path(__file__).parent.parent / "examples"
CORPUS = EXAMPLES / "corpus.jsonl"
RAW = EXAMPLES / "corpus-with-errors.jsonl"


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [json.loads(line)["text"] for line in CORPUS.open()]
    return save_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tok", texts, vocab_size=600)


def flip_byte(path: Path, offset: int = 500) -> None:
    """One byte changed, the size kept (the mtime moves, as for any write)."""
    data = bytearray(path.read_bytes())
    data[min(offset, len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


def synthesize(tok: Path, out: Path) -> None:
    result = invoke("synthesize", CORPUS, "-o", out, "--engine", "rules", "--model", tok, "--shard-size", 16)
    assert result.exit_code == 0, result.output


def write_config(tmp_path: Path, tok: Path, **sections: dict) -> Path:
    config: dict = {
        "workdir": str(tmp_path / "work"),
        "synthesize": {"inputs": [str(CORPUS)], "engine": "rules", "model": str(tok), "shard_size": 16},
        "templify": {"seed": 0},
        "mix": {"recipe": "scratch", "raw": [str(RAW)], "tokenizer": str(tok), "format": "megatron"},
    }
    for name, changes in sections.items():
        config[name].update(changes)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- merge -------------------------------------------------------------------------------------


def test_merge_refuses_a_complete_folder_with_a_damaged_shard(tmp_path, tok):
    """`merge` of a finished synthesize folder one of whose shards was since damaged used to print
    "complete, 4 shards, 40 documents" (of 56) with exit code 0, and rewrite summary.json with
    the damaged shard's documents left out; it must refuse, naming the file and the fix."""
    out = tmp_path / "syn"
    synthesize(tok, out)
    summary = (out / "summary.json").read_bytes()
    flip_byte(out / "data/part-00001.parquet")
    result = invoke("merge", out)
    assert result.exit_code != 0
    assert "part-00001.parquet" in result.output and "rerun" in result.output
    assert "complete" not in result.output.splitlines()[-1].split(":", 1)[0]
    assert (out / "summary.json").read_bytes() == summary  # nothing rewritten from 3 of 4 shards
    synthesize(tok, out)  # the fix it names: the rerun recomputes the shard
    result = invoke("merge", out)
    assert result.exit_code == 0 and "56 documents" in result.output, result.output


def test_status_and_merge_of_a_folder_whose_manifest_was_deleted_say_so(tmp_path, tok):
    """A stage folder with its shards but no manifest.json is ours, damaged: say the manifest is
    missing and how to rebuild it, rather than "not an instructpt output folder"."""
    out = tmp_path / "syn"
    synthesize(tok, out)
    (out / "manifest.json").unlink()
    for command in ("status", "merge"):
        result = invoke(command, out)
        assert result.exit_code != 0
        assert "manifest.json is missing" in result.output and "rerun" in result.output, result.output


# -- plan / run: a scratch recipe that mix would refuse ------------------------------------------


def test_plan_warns_and_run_refuses_before_synthesis_when_raw_is_the_fully_converted_corpus(tmp_path, tok):
    """synthesize.fraction 1 with mix.raw = the synthesize inputs: every raw document is also
    converted, so mix refuses, after the GPU hours of synthesis. `plan` must say so, and `run`
    must refuse before synthesizing."""
    config = write_config(tmp_path, tok, synthesize={"fraction": 1.0}, mix={"raw": [str(CORPUS)]})
    result = invoke("plan", config)
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "corpus.jsonl" in warning[0] and "fraction" in warning[0], result.output
    planned = json.loads(invoke("plan", config, "--json").output)
    assert len(planned["warnings"]) == 1
    result = invoke("run", config)
    assert result.exit_code != 0 and "corpus.jsonl" in result.output and "fraction" in result.output
    assert not (tmp_path / "work" / "synthesized").exists()  # refused before any synthesis


def test_plan_is_quiet_when_the_scratch_split_is_sound(tmp_path, tok):
    config = write_config(tmp_path, tok, synthesize={"fraction": 0.5}, mix={"raw": [str(CORPUS)]})
    result = invoke("plan", config)
    assert result.exit_code == 0 and "warning:" not in result.output, result.output
    assert json.loads(invoke("plan", config, "--json").output)["warnings"] == []


# -- mix: the training files of a finished run ------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_finished_mix_whose_training_file_was_damaged_is_not_reported_complete(tmp_path, tok, damage):
    """A truncated or deleted .bin of a finished mix was "already complete, nothing to do" on a
    rerun, and `status`/`merge` said complete: a trainer would read garbage. The rerun must
    rewrite it (to the same bytes), and status must name it."""
    config = write_config(tmp_path, tok)
    assert invoke("run", config).exit_code == 0
    train = tmp_path / "work" / "train"
    data = train / "data" / "part-00000.bin"
    good = data.read_bytes()
    if damage == "truncate":
        data.write_bytes(good[:100])
    else:
        data.unlink()
    status = invoke("status", train)
    assert "part-00000.bin" in status.output and "finished, then damaged;" in status.output, status.output
    merged = invoke("merge", train)
    assert merged.exit_code != 0 and "part-00000.bin" in merged.output, merged.output
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    assert data.read_bytes() == good
    assert "complete;" in invoke("status", train).output


# -- report ------------------------------------------------------------------------------------------


def test_report_alerts_on_damaged_files_it_did_not_read(tmp_path, tok):
    """`report` of a workdir whose templify shard was truncated and whose training file was cut
    said "no alerts" (it reads those stages' markers and manifests, not their data): an alert
    must name each damaged file."""
    from instructpt.report import analyze

    config = write_config(tmp_path, tok)
    assert invoke("run", config).exit_code == 0
    work = tmp_path / "work"
    assert not [a for a in analyze([work], sample_size=0)["alerts"] if "damaged" in a["id"]]
    shard = work / "augmented" / "data" / "part-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:3000])
    (work / "train" / "data" / "part-00000.idx").unlink()
    alerts = {a["id"]: a["message"] for a in analyze([work], sample_size=0)["alerts"]}
    assert "part-00002.parquet" in alerts.get("templify_damaged", ""), alerts
    assert "part-00000.idx" in alerts.get("mix_damaged", ""), alerts
    assert "synthesize_damaged" not in alerts


# -- templify of a damaged decontaminate folder ------------------------------------------------------


def test_templify_of_a_damaged_decontaminate_folder_names_the_decontaminate_command(tmp_path, tok):
    synthesized, cleaned = tmp_path / "syn", tmp_path / "clean"
    synthesize(tok, synthesized)
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"question": "What is the capital of nowhere, and why is it so?"}) + "\n")
    cleaning = invoke("decontaminate", synthesized, "-o", cleaned, "--eval-set", f"{evals}:question")
    assert cleaning.exit_code == 0, cleaning.output
    flip_byte(cleaned / "data" / "part-00000.parquet")
    result = invoke("templify", cleaned, "-o", tmp_path / "aug")
    assert result.exit_code != 0 and "part-00000.parquet" in result.output
    assert "rerun the decontaminate command" in result.output, result.output


def test_status_and_merge_of_a_missing_folder_say_it_is_not_there(tmp_path):
    for command in ("status", "merge"):
        result = invoke(command, tmp_path / "nothing")
        assert result.exit_code != 0 and "nothing is not a folder" in result.output, result.output


def test_a_marker_copied_over_another_shards_marker_is_damage_not_a_done_shard(tmp_path, tok):
    """shards/part-00001.json replaced by a copy of part-00000.json (a bad rsync, a hand "fix"):
    status counted shard 0's documents twice ("139 pairs" of 141, "complete"); a merge of an
    unfinished run would have recorded shard 0's file as shard 1, so templify read it twice."""
    out = tmp_path / "syn"
    synthesize(tok, out)
    (out / "shards/part-00001.json").write_bytes((out / "shards/part-00000.json").read_bytes())
    status = invoke("status", out)
    assert "damaged: shard 1" in status.output and "part-00000.parquet" in status.output, status.output
    assert "complete;" not in status.output
    synthesize(tok, out)  # the rerun recomputes shard 1
    clean = tmp_path / "clean"
    synthesize(tok, clean)
    done = invoke("status", out).output
    assert "complete; 4/4 shards, 56 documents" in done
    counts = [text.split("complete;")[1].split(";")[0] for text in (done, invoke("status", clean).output)]
    assert counts[0] == counts[1]  # shards, documents, pairs
    for name in sorted(p.name for p in (clean / "data").iterdir()):
        assert (out / "data" / name).read_bytes() == (clean / "data" / name).read_bytes()
