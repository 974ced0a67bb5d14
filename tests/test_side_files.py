"""Final side files (synthesize's and mix's rejects.jsonl, decontaminate's contamination.jsonl)
are recorded {bytes, sha256} in manifest.json (`output_files`): one truncated in a finished folder
makes `status` name it, and a rerun rewrites it to the same bytes. `status --verify` exits 1 on
any damage; plain `status` exits 0 whatever it finds."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from instructpt.cli import main
from instructpt.io.integrity import OUTPUT_FILES
from instructpt.io.output import MANIFEST
from instructpt.mixing.mix import run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec
from instructpt.quality.decontaminate import run_decontaminate
from instructpt.testing import save_tiny_tokenizer

from .test_decontaminate import BENCH_Q, make_synthesized, write_jsonl
from .test_pipeline import config, make_corpus, run

QUIET = lambda m: None  # noqa: E731


def status(folder: Path, *flags: str) -> Result:
    return CliRunner().invoke(main, ["status", str(folder), *flags])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def assert_recorded(folder: Path, name: str) -> bytes:
    """The bytes of `name`, checked against its record in the manifest's output files."""
    data = (folder / name).read_bytes()
    record = json.loads((folder / MANIFEST).read_text())[OUTPUT_FILES][name]
    assert data and record["bytes"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    return data


def assert_damage_named_then_repaired(folder: Path, name: str, rerun: Callable[[], object]) -> None:
    clean = assert_recorded(folder, name)
    truncate(folder / name)
    plain = status(folder)
    assert plain.exit_code == 0, plain.output
    assert "finished, then damaged" in plain.output and f"{name}: " in plain.output
    info = json.loads(status(folder, "--json").output)
    assert not info["complete"] and any(d["problem"].startswith(f"{name}: ") for d in info["damaged"])
    assert status(folder, "--verify").exit_code == 1
    rerun()
    assert (folder / name).read_bytes() == clean
    assert_recorded(folder, name)
    verified = status(folder, "--verify")
    assert verified.exit_code == 0 and "complete" in verified.output, verified.output


def test_synthesize_rejects_jsonl(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)

    def rerun() -> None:
        _, engines = run(config(tmp_path), scripted)
        assert engines == []  # every shard intact: only the final file is rewritten

    assert_damage_named_then_repaired(tmp_path / "out", "rejects.jsonl", rerun)


def test_decontaminate_contamination_jsonl(tmp_path, scripted):
    synth = make_synthesized(tmp_path, scripted)
    evals = [str(write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q}]))]
    out = tmp_path / "clean"
    run_decontaminate(synth, out, evals, progress=False, log=QUIET)
    logs: list[str] = []

    def rerun() -> None:
        run_decontaminate(synth, out, evals, progress=False, log=logs.append)
        assert not any("already complete" in line for line in logs)

    assert_damage_named_then_repaired(out, "contamination.jsonl", rerun)


def test_mix_rejects_jsonl(tmp_path):
    texts = [f"good text number {i} about rivers and lakes." for i in range(20)]
    tok = save_tiny_tokenizer(tmp_path / "tok", texts, vocab_size=300)
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts) + '{"nope": 1}\nnot json\n')
    mix_config = MixConfig([SourceSpec("a", [str(source)])], str(tmp_path / "o"), str(tok), format="jsonl",
                           workers=1)  # fmt: skip
    run_mix(mix_config, log=QUIET)
    assert len((tmp_path / "o/rejects.jsonl").read_text().splitlines()) == 2
    assert_damage_named_then_repaired(tmp_path / "o", "rejects.jsonl", lambda: run_mix(mix_config, log=QUIET))


def test_status_verify_exit_code(tmp_path, scripted):
    """Damage that kept size and mtime: plain `status` cannot see it and exits 0; `--verify` (with
    or without --json) names it and exits 1; an intact folder verifies with exit 0."""
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    folder = tmp_path / "out"
    for flags in ((), ("--verify",), ("--json", "--verify")):
        assert status(folder, *flags).exit_code == 0
    shard = folder / "data/part-00001.parquet"
    st = shard.stat()
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    plain = status(folder)
    assert plain.exit_code == 0 and "damaged" not in plain.output
    verified = status(folder, "--verify")
    assert verified.exit_code == 1
    assert "damaged: shard 1: data/part-00001.parquet: sha256 differs" in verified.output
    as_json = status(folder, "--json", "--verify")
    assert as_json.exit_code == 1 and json.loads(as_json.output)["damaged"][0]["shard"] == 1


@pytest.mark.parametrize("flags", [(), ("--json",)])
def test_plain_status_exits_0_on_damage_it_sees(tmp_path, scripted, flags):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    truncate(tmp_path / "out/data/part-00002.parquet")
    result = status(tmp_path / "out", *flags)
    assert result.exit_code == 0 and "part-00002.parquet" in result.output
    assert status(tmp_path / "out", *flags, "--verify").exit_code == 1
