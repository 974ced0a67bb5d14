"""Damaged output: every hostile case in one table, damage -> expected recovery or error.

Synthesize and templify reruns recompute a damaged shard (and only it); templify and mix refuse
damaged input with a one-line error that names the file; unreadable bookkeeping counts as
"shard not done"; a changed input is refused unless --rebuild.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.errors import UsageError
from instructpt.mixing.mix import run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec
from instructpt.synthesis.rounds import RoundSettings
from instructpt.templating.stage import run_templify

from .test_pipeline import config, make_corpus, run, snapshot

SHARD = "data/part-00002.parquet"
OTHER = "data/part-00001.parquet"


def _truncate(folder: Path) -> None:
    path = folder / SHARD
    path.write_bytes(path.read_bytes()[:-40])


def _zero(folder: Path) -> None:
    path = folder / SHARD
    path.write_bytes(bytes(path.stat().st_size))


def _swap(folder: Path) -> None:
    a, b, tmp = folder / SHARD, folder / OTHER, folder / "data" / "swap"
    os.replace(a, tmp)
    os.replace(b, a)
    os.replace(tmp, b)


def _flip(folder: Path, keep_mtime: bool = False) -> None:
    path = folder / SHARD
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    with open(path, "r+b") as handle:  # in place, same size
        handle.write(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _flip_same_mtime(folder: Path) -> None:
    _flip(folder, keep_mtime=True)


def _delete(folder: Path) -> None:
    (folder / SHARD).unlink()


def _corrupt_marker(folder: Path) -> None:
    (folder / "shards/part-00002.json").write_text('{"file": "data/part-0')


def _truncate_manifest(folder: Path) -> None:
    path = folder / "manifest.json"
    path.write_bytes(path.read_bytes()[:25])


def _delete_shard_rejects(folder: Path) -> None:
    (folder / "rejects/part-00002.jsonl").unlink()


def _delete_all_rejects(folder: Path) -> None:
    (folder / "rejects.jsonl").unlink()


def _corrupt_summary(folder: Path) -> None:
    (folder / "summary.json").write_text("{")


# damage, shards a rerun recomputes (None: not checked), needs --verify to be noticed
SYNTHESIZE_CASES = [
    (_truncate, 1, False),
    (_zero, 1, False),
    (_swap, 2, False),
    (_flip, 1, False),
    (_flip_same_mtime, 1, True),  # size and mtime unchanged: only a full hash sees it
    (_delete, 1, False),
    (_corrupt_marker, 1, False),
    (_truncate_manifest, 0, False),  # the markers still say which shards are done
    (_delete_shard_rejects, 1, False),
    (_delete_all_rejects, 0, False),
    (_corrupt_summary, 0, False),
]


def _age() -> None:
    time.sleep(0.05)  # mtime has coarse (jiffy) granularity: damage lands on a later tick


@pytest.mark.parametrize("damage, recomputed, needs_verify", SYNTHESIZE_CASES,
                         ids=[c[0].__name__.strip("_") for c in SYNTHESIZE_CASES])  # fmt: skip
def test_synthesize_rerun_repairs_damage(tmp_path, scripted, damage, recomputed, needs_verify):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, "clean"), scripted)
    run(config(tmp_path), scripted)
    _age()
    damage(tmp_path / "out")
    if needs_verify:
        _, engines = run(config(tmp_path), scripted)
        assert engines == []  # the cheap check trusts size + mtime
    _, engines = run(config(tmp_path, verify=needs_verify), scripted)
    assert (engines[0].calls if engines else 0) == 2 * recomputed  # two rounds per shard
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "clean")
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 5
    _, engines = run(config(tmp_path, verify=True), scripted)
    assert engines == []  # repaired: a full check finds nothing more to do


def test_markers_record_bytes_sha256_and_rows(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    marker = json.loads((tmp_path / "out/shards/part-00002.json").read_text())
    record = marker["files"][SHARD]
    import hashlib

    data = (tmp_path / "out" / SHARD).read_bytes()
    assert record["bytes"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["rows"] == 5
    assert marker["files"]["rejects/part-00002.jsonl"]["rows"] == 1


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


TEMPLIFY_INPUT_CASES = [_truncate, _zero, _swap, _flip, _flip_same_mtime, _delete]


@pytest.mark.parametrize("damage", TEMPLIFY_INPUT_CASES,
                         ids=[d.__name__.strip("_") for d in TEMPLIFY_INPUT_CASES])  # fmt: skip
def test_templify_refuses_a_damaged_synthesize_shard(tmp_path, scripted, damage):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _age()
    damage(tmp_path / "out")
    with pytest.raises(UsageError) as exc:
        run_templify(tmp_path / "out", tmp_path / "aug", progress=False, log=lambda m: None)
    message = _one_line(exc)
    assert "part-00002.parquet" in message or (damage is _swap and "part-00001.parquet" in message)
    assert not (tmp_path / "aug/manifest.json").is_file() or not json.loads(
        (tmp_path / "aug/manifest.json").read_text())["complete"]  # fmt: skip


def _templify(tmp_path: Path, out: str = "aug", **kw):
    return run_templify(tmp_path / "out", tmp_path / out, progress=False, log=lambda m: None, **kw)


def _aug_snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "data").iterdir()) if not p.name.startswith(".")}


# damage to templify's own output, needs --verify
TEMPLIFY_OUTPUT_CASES = [
    (_truncate, False), (_zero, False), (_swap, False), (_flip, False), (_flip_same_mtime, True),
    (_delete, False), (_corrupt_marker, False), (_truncate_manifest, False), (_corrupt_summary, False),
]  # fmt: skip


@pytest.mark.parametrize("damage, needs_verify", TEMPLIFY_OUTPUT_CASES,
                         ids=[c[0].__name__.strip("_") for c in TEMPLIFY_OUTPUT_CASES])  # fmt: skip
def test_templify_rerun_repairs_its_output(tmp_path, scripted, damage, needs_verify):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _templify(tmp_path, "clean")
    _templify(tmp_path)
    assert (tmp_path / "aug/shards/part-00002.json").is_file()  # per-shard markers, like synthesize
    _age()
    damage(tmp_path / "aug")
    summary = _templify(tmp_path, verify=needs_verify)
    assert _aug_snapshot(tmp_path / "aug") == _aug_snapshot(tmp_path / "clean")
    assert summary["documents"] == 23
    assert json.loads((tmp_path / "aug/manifest.json").read_text())["complete"]


@pytest.mark.parametrize("what", ["missing", "file", "corrupt", "templify-folder", "empty-folder"])
def test_templify_bad_source_is_one_line(tmp_path, scripted, what):
    make_corpus(tmp_path / "corpus.jsonl")
    source = tmp_path / "src"
    if what == "file":
        source.write_text("x")
    elif what == "corrupt":
        source.mkdir()
        (source / "manifest.json").write_text('{"settings": {')
    elif what == "templify-folder":
        run(config(tmp_path), scripted)
        _templify(tmp_path, "src")
    elif what == "empty-folder":
        source.mkdir()
    with pytest.raises(UsageError) as exc:
        run_templify(source, tmp_path / "aug2", progress=False, log=lambda m: None)
    assert str(source) in _one_line(exc)
    result = CliRunner().invoke(main, ["templify", str(source), "-o", str(tmp_path / "aug3")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


# -- mix ------------------------------------------------------------------------------------------


@pytest.fixture
def tok_json(tmp_path, tokenizer) -> str:
    path = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(path))
    return str(path)


def _mix(tmp_path: Path, tok: str, out: str = "mix", raw: Path | None = None, **kw):
    raw = raw or tmp_path / "corpus.jsonl"
    cfg = MixConfig([SourceSpec("augmented", [str(tmp_path / "aug")]), SourceSpec("raw", [str(raw)])],
                    str(tmp_path / out), tok, format="jsonl", workers=1, bos_text="<s>", eos_text="</s>",
                    **kw)  # fmt: skip
    logs: list[str] = []
    return run_mix(cfg, log=logs.append), logs


MIX_INPUT_CASES = [_truncate, _zero, _swap, _flip, _flip_same_mtime, _delete, _corrupt_marker]


@pytest.mark.parametrize("damage", MIX_INPUT_CASES, ids=[d.__name__.strip("_") for d in MIX_INPUT_CASES])
def test_mix_refuses_a_damaged_augmented_shard(tmp_path, scripted, tok_json, damage):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _templify(tmp_path)
    _age()
    damage(tmp_path / "aug")
    with pytest.raises(UsageError) as exc:
        _mix(tmp_path, tok_json)
    message = _one_line(exc)
    assert "part-00002" in message or (damage is _swap and "part-00001" in message)
    assert not (tmp_path / "mix/manifest.json").is_file() or not json.loads(
        (tmp_path / "mix/manifest.json").read_text()).get("complete")  # fmt: skip


def test_mix_refuses_an_unfinished_templify_folder_unless_allow_partial(tmp_path, scripted, tok_json):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _templify(tmp_path)
    manifest = json.loads((tmp_path / "aug/manifest.json").read_text())
    manifest["complete"] = False
    (tmp_path / "aug/manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "aug/shards/part-00003.json").unlink()
    with pytest.raises(UsageError, match="not finished") as exc:
        _mix(tmp_path, tok_json)
    _one_line(exc)
    result, logs = _mix(tmp_path, tok_json, allow_partial=True)
    assert any("part-00003" in line or "shard 3" in line for line in logs)
    assert result["sources"][0]["documents_available"] < 23


def test_mix_refuses_a_raw_input_changed_in_place_unless_rebuild(tmp_path, scripted, tok_json):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _templify(tmp_path)
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"id": "a", "text": "river lake water."}\n{"id": "b", "text": "city report."}\n')
    _mix(tmp_path, tok_json, raw=raw)
    _age()
    raw.write_text(raw.read_text().replace("city", "town"))  # same size
    with pytest.raises(UsageError, match="changed") as exc:
        _mix(tmp_path, tok_json, raw=raw)
    assert "raw.jsonl" in _one_line(exc)
    _mix(tmp_path, tok_json, raw=raw, rebuild=True)
    texts = (tmp_path / "mix/data/part-00000.jsonl").read_text()
    assert "town" in texts and "city report" not in texts


# -- inputs ---------------------------------------------------------------------------------------


def test_synthesize_refuses_an_input_changed_in_place_unless_rebuild(tmp_path, scripted):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _age()
    corpus.write_text(corpus.read_text().replace("region 1 ", "regiox 1 "))  # same size
    with pytest.raises(UsageError, match="changed") as exc:
        run(config(tmp_path), scripted)
    assert "corpus.jsonl" in _one_line(exc)
    run(config(tmp_path, rebuild=True), scripted)
    run(config(tmp_path, "clean"), scripted)
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "clean")


def test_a_touched_but_unchanged_input_is_accepted(tmp_path, scripted):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    os.utime(corpus)
    _, engines = run(config(tmp_path, verify=True), scripted)
    assert engines == []


def test_output_folder_inside_the_input_folder(tmp_path, scripted):
    folder = tmp_path / "corpus"
    folder.mkdir()
    make_corpus(folder / "corpus.jsonl")
    cfg = config(tmp_path, inputs=[str(folder)], output=str(folder / "out"))
    first, _ = run(cfg, scripted)
    again, engines = run(cfg, scripted)  # the output's own shards are not inputs
    assert engines == [] and again["documents"] == first["documents"] == 23


# -- temporary files ------------------------------------------------------------------------------


def test_stale_tmp_of_a_live_foreign_pid_is_removed(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, limit=5), scripted)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / "out/data" / f".part-00000.parquet.{other.pid}.tmp"
        stale.write_bytes(b"half")
        run(config(tmp_path, limit=5, overwrite=False), scripted)
        assert not stale.exists()
    finally:
        other.kill()
        other.wait()


def test_tmp_of_a_live_worker_holding_the_lock_is_kept(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, limit=5), scripted)
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; h = open(sys.argv[1], 'w'); fcntl.flock(h, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"), str(out / ".lock-w1-of-2")],
        stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"locked"
        live = out / "data" / f".part-00001.parquet.{holder.pid}.tmp"
        live.write_bytes(b"in progress")
        run(config(tmp_path, limit=5, shard_size=5), scripted)
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()


# -- status ---------------------------------------------------------------------------------------


def test_status_reports_damaged_shards_and_verify_finds_silent_ones(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path), scripted)
    _age()
    _flip_same_mtime(tmp_path / "out")
    _corrupt_marker_at(tmp_path / "out", 4)
    status = lambda *a: CliRunner().invoke(main, ["status", str(tmp_path / "out"), *a]).output  # noqa: E731
    cheap = json.loads(status("--json"))
    assert cheap["shards_done"] == 4 and [d["shard"] for d in cheap["damaged"]] == [4]
    full = json.loads(status("--json", "--verify"))
    assert full["shards_done"] == 3 and [d["shard"] for d in full["damaged"]] == [2, 4]
    assert "part-00002.parquet" in full["damaged"][0]["problem"]
    text = status("--verify")
    assert "damaged: shard 2" in text


def _corrupt_marker_at(folder: Path, index: int) -> None:
    (folder / f"shards/part-{index:05d}.json").write_text("not json")


def test_cli_flags_exist():
    for command, flags in [("synthesize", ["--verify", "--rebuild"]), ("templify", ["--verify"]),
                           ("mix", ["--verify", "--rebuild", "--allow-partial"]), ("status", ["--verify"]),
                           ("run", ["--verify", "--rebuild"])]:  # fmt: skip
        out = CliRunner().invoke(main, [command, "--help"]).output
        for flag in flags:
            assert flag in out, (command, flag)


def test_rounds_setting_unchanged_by_flags(tmp_path, scripted):
    """--verify and --rebuild are not settings: they never make a folder 'other settings'."""
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, rounds=RoundSettings(rounds=2)), scripted)
    _, engines = run(config(tmp_path, verify=True, rebuild=True), scripted)
    assert engines == []
