"""A finished mix's training files (manifest.json `output_files`) are recorded with their sha256:
a byte flipped in place is found cheaply when the mtime moved, by `--verify` when it did not, and
a rerun recomputes the file to the bytes of a clean run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from instructpt.cli import main
from instructpt.io.integrity import OUTPUT_FILES, output_problems, record_output_files
from instructpt.io.output import MANIFEST
from instructpt.testing import save_tiny_tokenizer

WORDS = "river lake water city report market price study growth energy climate team season court".split()
FOLDERS = ("data", "hf", "provenance")
# format flags, and the training file whose byte is flipped (a glob under the output folder)
FORMATS = {
    "megatron": (["--format", "megatron"], "data/part-00000.bin"),
    "hf-packed": (["--format", "hf", "--pack", "--seq-len", "64"], "hf/data-00000-of-*.arrow"),
    "jsonl": (["--format", "jsonl"], "data/part-00000.jsonl"),
}


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(20, 120))) + "." for _ in range(60)]
    paths = {"tok": save_tiny_tokenizer(folder / "tok", texts, vocab_size=300)}
    for name, part in (("augmented", texts[:30]), ("raw", texts[30:])):
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({"id": f"{name}-{i}", "text": t}) + "\n"
                                       for i, t in enumerate(part)))  # fmt: skip
    return paths


def mix(inputs: dict[str, Path], out: Path, fmt: str, *extra: str) -> Result:
    result = invoke("mix", "--augmented", inputs["augmented"], "--raw", inputs["raw"], "--tokenizer",
                    inputs["tok"], "-o", out, "--shard-tokens", 2000, "--workers", 1, *FORMATS[fmt][0],
                    *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def training_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for folder in FOLDERS for p in sorted((out / folder).rglob("*")) if p.is_file()}  # fmt: skip


def flip_byte(path: Path, keep_mtime: bool) -> None:
    """One byte changed in place, the size kept; the mtime restored, or moved on by a second."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    mtime = st.st_mtime_ns if keep_mtime else st.st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(st.st_atime_ns, mtime))


def target(out: Path, fmt: str) -> Path:
    (path,) = out.glob(FORMATS[fmt][1])
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_training_file_is_recorded_with_the_sha256_of_its_bytes(tmp_path, inputs, fmt):
    out = tmp_path / "out"
    mix(inputs, out, fmt)
    manifest = json.loads((out / MANIFEST).read_text())
    files = training_files(out)
    recorded = manifest[OUTPUT_FILES]
    assert sorted(recorded) == sorted(files) and len(files) > 2
    for rel, data in files.items():
        assert recorded[rel]["bytes"] == len(data), rel
        assert recorded[rel]["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert recorded[rel]["mtime_ns"] == (out / rel).stat().st_mtime_ns, rel
    assert all("written" not in shard for shard in manifest["shards"])  # the writers' records moved


def mixed_then_flipped(tmp_path: Path, inputs, fmt: str, keep_mtime: bool):
    """A finished mix in tmp_path/out, its clean training files, then one byte of its target
    file flipped in place: (out, clean files, that file, its path in the folder)."""
    out = tmp_path / "out"
    mix(inputs, out, fmt)
    clean = training_files(out)
    path = target(out, fmt)
    flip_byte(path, keep_mtime=keep_mtime)
    return out, clean, path, path.relative_to(out).as_posix()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_byte_flipped_with_its_mtime_kept_is_found_by_verify_and_recomputed(tmp_path, inputs, fmt):
    out, clean, path, rel = mixed_then_flipped(tmp_path, inputs, fmt, keep_mtime=True)
    assert "(mix): complete;" in invoke("status", out).output  # size and mtime as recorded: trusted
    status = invoke("status", out, "--verify")
    assert "finished, then damaged;" in status.output and rel in status.output, status.output
    assert "sha256 differs" in status.output
    report = json.loads(invoke("status", out, "--verify", "--json").output)
    assert [d["problem"].split(":")[0] for d in report["damaged"]] == [rel]
    assert "already complete" in mix(inputs, out, fmt).output  # a plain rerun trusts it too
    assert path.read_bytes() != clean[rel]
    rerun = mix(inputs, out, fmt, "--verify")
    assert rel in rerun.output and "recomputing the mix" in rerun.output, rerun.output
    assert training_files(out) == clean
    assert "(mix): complete;" in invoke("status", out, "--verify").output


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_byte_flipped_with_a_new_mtime_is_found_by_a_plain_status_and_rerun(tmp_path, inputs, fmt):
    out, clean, path, rel = mixed_then_flipped(tmp_path, inputs, fmt, keep_mtime=False)
    status = invoke("status", out)
    assert "finished, then damaged;" in status.output and rel in status.output, status.output
    rerun = mix(inputs, out, fmt)
    assert rel in rerun.output and "recomputing the mix" in rerun.output, rerun.output
    assert training_files(out) == clean
    assert "(mix): complete;" in invoke("status", out).output


def test_a_manifest_from_before_the_sha256_is_checked_by_size(tmp_path):
    """Manifests written before the hashes were recorded hold {bytes, shard}: their files are
    still checked by size (and existence), never reported damaged for lacking a hash."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "part-00000.bin"
    path.write_bytes(b"0123456789")
    manifest = {OUTPUT_FILES: {"data/part-00000.bin": {"bytes": 10, "shard": 0}}}
    flip_byte(path, keep_mtime=False)
    assert output_problems(tmp_path, manifest, full=True) == {}
    path.write_bytes(b"01234")
    assert "5 bytes, 10 recorded" in output_problems(tmp_path, manifest)[0]
    path.unlink()
    assert output_problems(tmp_path, manifest) == {0: "data/part-00000.bin: missing"}


def test_a_writers_hash_is_taken_only_while_the_file_is_as_written(tmp_path):
    """record_output_files takes the sha256 its writer computed (no second read) for a file whose
    size and mtime are those written, and hashes any other file itself."""
    (tmp_path / "data").mkdir()
    same, moved = tmp_path / "data" / "a.bin", tmp_path / "data" / "b.bin"
    for path in (same, moved):
        path.write_bytes(b"abc")
    st = same.stat()
    written = {"data/a.bin": {"bytes": 3, "sha256": "from-the-writer", "mtime_ns": st.st_mtime_ns},
               "data/b.bin": {"bytes": 4, "sha256": "from-the-writer"}}  # fmt: skip
    records = record_output_files(tmp_path, [{"files": ["data/b.bin"]}, {"files": ["data/a.bin"]}],
                                  ["data"], written)  # fmt: skip
    assert records["data/a.bin"] == {"bytes": 3, "sha256": "from-the-writer", "mtime_ns": st.st_mtime_ns,
                                     "shard": 1}  # fmt: skip
    assert records["data/b.bin"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert records["data/b.bin"]["shard"] == 0
