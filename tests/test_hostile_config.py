"""Hostile configuration: names never become paths, user mistakes are one-line errors, a killed
mix leaves no worker behind.

Each table maps a hostile input to the substring its one-line error must contain.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from instructpt.cli import main
from instructpt.config import load_config
from instructpt.errors import UsageError
from instructpt.io import files as files_module
from instructpt.io.files import write_atomic
from instructpt.mixing import mix as mix_module
from instructpt.mixing import tokenize as tokenize_module
from instructpt.mixing.mix import plan, run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec, load_recipe
from instructpt.mixing.tokenize import SourceData

from .test_mix import mistral_style, texts, write_texts  # noqa: F401 (fixture)

MAX_UPSAMPLE = getattr(mix_module, "MAX_UPSAMPLE", 100)
VALID_RUN = "workdir: w\nsynthesize: {inputs: [a]}\n"


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """A CLI run that failed with one `Error: ...` line and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]  # progress lines may come first
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# -- A. names never become paths ---------------------------------------------------------------

BAD_NAMES = [
    ("../../escaped", "source name"),
    ("a/b", "source name"),
    ("a\\b", "source name"),
    (".hidden", "source name"),
    ("..", "source name"),
    ("", "source name"),
    ("x" * 200, "at most 64"),
    ("a b", "source name"),
    ("a\x00b", "source name"),
    ("café", "source name"),
]


@pytest.mark.parametrize("name, message", BAD_NAMES)
def test_recipe_source_names_are_checked(tmp_path, name, message):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"sources": [{"name": name, "paths": ["a.jsonl"]}]}))
    with pytest.raises(UsageError, match=message):
        load_recipe(recipe)
    with pytest.raises(UsageError, match=message):
        SourceSpec(name, ["a.jsonl"])


@pytest.mark.parametrize("name", ["aug", "raw-2024", "wiki_en.v2", "A9"])
def test_good_source_names_pass(name):
    assert SourceSpec(name, ["a.jsonl"]).name == name


def test_escaping_name_writes_nothing_outside_the_output(tmp_path, mistral_style):  # noqa: F811
    src = write_texts(tmp_path / "a.jsonl", texts(5, 1))
    root = tmp_path / "deep" / "er"
    root.mkdir(parents=True)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"sources": [{"name": "../../escaped", "paths": [str(src)]}]}))
    before = set(tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["mix", "--recipe", str(recipe), "--tokenizer", str(mistral_style),
                                       "-o", str(root / "out"), "--workers", "1"])  # fmt: skip
    assert_one_line_error(result, "../../escaped")
    assert not [p for p in set(tmp_path.rglob("*")) - before if "escaped" in p.name]


def test_run_config_source_names_are_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(VALID_RUN + "mix: {tokenizer: t, recipe: custom, sources: [{name: ../x, paths: [a]}]}\n")
    with pytest.raises(UsageError, match=r"mix\.sources\.0\.name"):
        load_config(path)


def test_finetune_dataset_name_is_checked(tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text('{"context": "c", "question": "q", "answer": "a"}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["ft-data", "convert", str(src), "--kind", "extractive",
                                       "--dataset", "../../x", "-o", str(out)])  # fmt: skip
    assert_one_line_error(result, "../../x")
    assert not (tmp_path.parent / "x.jsonl").exists()


# -- B. one-line errors ------------------------------------------------------------------------

CONFIG_ERRORS = [
    # (YAML bytes, --set overrides, error substring)
    (b"workdir: w\xff\xfe\nsynthesize: {inputs: [a]}\n", [], "not UTF-8"),
    (b"workdir: !!python/object/apply:os.system ['touch pwned']\nsynthesize: {inputs: [a]}\n", [],
     "not valid YAML"),
    (b"workdir: !!python/name:os.system\nsynthesize: {inputs: [a]}\n", [], "not valid YAML"),
    (b"workdir: w\nworkdir: v\nsynthesize: {inputs: [a]}\n", [], "duplicate key 'workdir' (line 2)"),
    (b"workdir: w\nsynthesize:\n  inputs: [a]\n  rounds: 2\n  rounds: 3\n", [],
     "duplicate key 'rounds' (line 5)"),
    (VALID_RUN.encode() + b"mix: {tokenizer: t, tokenizer: u}\n", [], "duplicate key 'tokenizer'"),
    (b"workdir: w\nsynthesize: {inputs: [a], rounds: true}\n", [],
     "synthesize.rounds: Input should be a valid integer"),
    (b"workdir: w\nsynthesize: {inputs: [a], rounds: 2.5}\n", [], "synthesize.rounds"),
    (b"workdir: w\nsynthesize: {inputs: [a], rounds: '2'}\n", [], "synthesize.rounds"),
    (b"workdir: 5\nsynthesize: {inputs: [a]}\n", [], "workdir: Input should be a valid string"),
    (b"workdir: w\nsynthesize: {inputs: a.jsonl}\n", [], "synthesize.inputs"),
    (b"workdir: w\nsynthesize: {inputs: [a], keep_generations: 'yes please'}\n", [], "keep_generations"),
    (VALID_RUN.encode() + b"mix: {tokenizer: t, workers: true}\n", [], "mix.workers"),
    (VALID_RUN.encode() + b"mix: {tokenizer: t, pack: 1}\n", [], "mix.pack"),
    (VALID_RUN.encode() + b"mix: {tokenizer: t, augmented_weight: .nan}\n", [], "mix.augmented_weight"),
    (VALID_RUN.encode() + b"mix: {tokenizer: t, sources: [{name: b, paths: [a], weight: .inf}]}\n", [],
     "mix.sources.0.weight"),
    (VALID_RUN.encode(), ["synthesize.rounds=true"], "synthesize.rounds"),
    (VALID_RUN.encode(), ["workdir=!!python/object/apply:os.system ['touch pwned']"], "--set workdir"),
    (VALID_RUN.encode(), ["workdir=[unclosed"], "--set workdir"),
]  # fmt: skip


@pytest.mark.parametrize("content, overrides, message", CONFIG_ERRORS)
def test_config_mistakes_are_one_line_errors(tmp_path, monkeypatch, content, overrides, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        load_config(path, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "pwned").exists()
    result = CliRunner().invoke(main, ["run", str(path), *[a for o in overrides for a in ("--set", o)]])
    assert_one_line_error(result, message)
    assert not (tmp_path / "pwned").exists()


def test_config_loader_is_safe_load_based():
    import yaml

    from instructpt.config import UniqueKeyLoader

    assert issubclass(UniqueKeyLoader, yaml.SafeLoader)


RECIPE_ERRORS = [
    (b'{"sources": [{"name": "a\xff", "paths": ["x"]}]}', "not UTF-8"),
    (b'{"sources": [{"name": "a", "paths": ["x"]}], "sources": []}', "duplicate key 'sources'"),
    (b'{"sources": [{"name": "a", "name": "b", "paths": ["x"]}]}', "duplicate key 'name'"),
    (b'{"sources": [{"name": "a", "paths": "x.jsonl"}]}', "paths must be a non-empty list"),
    (b'{"sources": [{"name": "a", "paths": []}]}', "paths must be a non-empty list"),
    (b'{"sources": [{"name": "a", "paths": [1]}]}', "paths must be a non-empty list"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "weight": "2"}]}', "weight must be a positive number"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "weight": true}]}', "weight must be a positive number"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "weight": NaN}]}', "weight must be a positive number"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "weight": Infinity}]}', "weight must be a positive number"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "weight": -1}]}', "weight must be a positive number"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "text_field": 3}]}', "text_field must be a string"),
    (b'{"sources": [{"name": 7, "paths": ["x"]}]}', "source name"),
    (b'{"sources": [{"name": "a", "paths": ["x"], "colour": "red"}]}', "colour"),
    (b'{"sources": {"name": "a"}}', "not a valid recipe"),
    (b'{"sources": ["a"]}', "not a valid recipe"),
    (b"[1, 2]", "not a valid recipe"),
]


@pytest.mark.parametrize("content, message", RECIPE_ERRORS)
def test_recipe_mistakes_are_one_line_errors(tmp_path, content, message):
    recipe = tmp_path / "recipe.json"
    recipe.write_bytes(content)
    with pytest.raises(UsageError) as info:
        load_recipe(recipe)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    result = CliRunner().invoke(main, ["mix", "--recipe", str(recipe), "--tokenizer", "t",
                                       "-o", str(tmp_path / "out")])  # fmt: skip
    assert_one_line_error(result, message)


# A weight far above the anchor's would make plan_source tile the source's document indices
# millions of times (hundreds of GiB); it is refused with the stated limit instead.


def fake_source(name: str, docs: int, weight: float | None) -> SourceData:
    data = SourceData(SourceSpec(name, ["x"], weight), Path("/nonexistent"))
    data.lengths = np.full(docs, 100, dtype=np.uint32)
    return data


@pytest.mark.parametrize(
    "weights, message",
    [
        ((1.0, 1e12), f"limit {MAX_UPSAMPLE}x"),
        ((1e-12, 1.0), f"limit {MAX_UPSAMPLE}x"),
        ((1.0, MAX_UPSAMPLE / 100 * 1.01), f"limit {MAX_UPSAMPLE}x"),
    ],
)
def test_huge_upsampling_is_refused_with_the_limit(weights, message):
    data = [fake_source("a", 1000, weights[0]), fake_source("b", 10, weights[1])]
    with pytest.raises(UsageError, match=message):
        plan(data, seed=0, upsample=True)


def test_upsampling_up_to_the_limit_is_planned():
    data = [fake_source("a", 1000, 1.0), fake_source("b", 10, MAX_UPSAMPLE / 100)]
    plans = plan(data, seed=0, upsample=True)
    assert plans[1].tokens_selected(data[1].lengths) == 1000 * 100 * MAX_UPSAMPLE // 100


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.close()


def full_disk_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    handle = builtins.open(file, mode, *args, **kwargs)
    return _FullDisk(handle) if any(m in mode for m in "wax+") else handle


def test_disk_full_in_write_atomic_names_path_and_size(tmp_path, monkeypatch):
    monkeypatch.setattr(files_module, "open", full_disk_open, raising=False)
    target = tmp_path / "data" / "part-00000.parquet"
    with pytest.raises(UsageError) as info:
        write_atomic(target, b"x" * 12345)
    message = str(info.value)
    assert "no space left" in message and str(target) in message and "12,345 bytes" in message
    assert "\n" not in message
    assert list((tmp_path / "data").iterdir()) == []  # the temporary file is gone


def test_disk_full_while_mixing_is_one_line(tmp_path, monkeypatch, mistral_style):  # noqa: F811
    a = write_texts(tmp_path / "a.jsonl", texts(20, 1))
    r = write_texts(tmp_path / "r.jsonl", texts(20, 2))
    for module in (tokenize_module, mix_module):  # tokenizing writes first, then the mix
        monkeypatch.setattr(module, "open", full_disk_open, raising=False)
    out = tmp_path / "out"
    config = MixConfig([SourceSpec("aug", [str(a)]), SourceSpec("raw", [str(r)])], str(out),
                       str(mistral_style), format="jsonl", workers=1)  # fmt: skip
    with pytest.raises(UsageError) as info:
        run_mix(config)
    message = str(info.value)
    assert "no space left" in message and str(out) in message and "bytes" in message
    assert "\n" not in message
    assert not (out / ".work").exists()


def _fake_synthesize_output(folder: Path) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format_version": 1, "fingerprint": "f" * 16,
                                                      "complete": True, "shards": {}, "shard_count": 0,
                                                      "settings": {"rounds": 2}}))  # fmt: skip
    return folder


def _mix_into(target: str, tmp: Path, tokenizer: Path) -> None:
    a = write_texts(tmp / "a.jsonl", texts(5, 1))
    run_mix(MixConfig([SourceSpec("aug", [str(a)])], target, str(tokenizer), workers=1))


def _templify_into(target: str, tmp: Path, tokenizer: Path) -> None:
    from instructpt.templating.stage import run_templify

    run_templify(_fake_synthesize_output(tmp / "synth"), target, log=lambda m: None, progress=False)


def _synthesize_into(target: str, tmp: Path, tokenizer: Path) -> None:
    src = write_texts(tmp / "in.jsonl", texts(3, 1))
    result = CliRunner().invoke(main, ["synthesize", str(src), "-o", target, "--engine", "rules",
                                       "--model", str(tokenizer)])  # fmt: skip
    assert_one_line_error(result, "is a file")  # click's check of -o, or ours below it
    raise UsageError(result.output)


def _run_into(target: str, tmp: Path, tokenizer: Path) -> None:
    src = write_texts(tmp / "in.jsonl", texts(3, 1))
    config = tmp / "c.yaml"
    config.write_text(json.dumps({"workdir": target, "synthesize": {"inputs": [str(src)], "engine": "rules",
                                                                    "model": str(tokenizer)}}))  # fmt: skip
    result = CliRunner().invoke(main, ["run", str(config)])
    assert_one_line_error(result, "is a file")
    raise UsageError(result.output)


@pytest.mark.parametrize("stage", [_mix_into, _templify_into, _synthesize_into, _run_into])
@pytest.mark.parametrize("where", ["file", "below-file"])
def test_output_that_is_a_file_is_one_line(tmp_path, mistral_style, stage, where):  # noqa: F811
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    target = blocker if where == "file" else blocker / "sub"
    with pytest.raises(UsageError, match="is a file"):
        stage(str(target), tmp_path, mistral_style)
    assert blocker.read_text() == "not a folder\n"


# -- C. a killed mix leaves no worker behind ---------------------------------------------------

ENCODER_SCRIPT = textwrap.dedent(
    """
    import itertools, sys, time
    from instructpt.mixing.tokenize import Encoder, TargetTokenizer

    if __name__ == "__main__":
        tok = TargetTokenizer("t", open(sys.argv[1]).read(), "<s>", "</s>", 600)
        encoder = Encoder(tok, workers=2)
        batch = ["river lake water city report market price study growth energy " * 50] * 256
        if sys.argv[2] == "idle":  # the parent reads input (here: sleeps), its workers wait
            list(encoder.map(iter([batch] * 4)))
        else:  # each worker busy for half a minute on one long batch
            words = "river lake water city report market price study growth energy ".split()
            long = " ".join(itertools.islice(itertools.cycle(words), 300_000))
            results = encoder.map(iter([[long] * 16] * 2))
            time.sleep(3)
        print("ready", flush=True)
        time.sleep(600)
    """
)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_killed_mix_leaves_no_workers(tmp_path, mode):
    from instructpt.testing import train_tokenizer

    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(train_tokenizer(texts(50, 0), 600).to_str())
    script = tmp_path / "encode.py"
    script.write_text(ENCODER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tokenizer), mode], stdout=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == b"ready"
        workers = _children(proc.pid)
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "orphaned workers"
    finally:
        try:  # the test's own process group (start_new_session): the script and its workers
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
