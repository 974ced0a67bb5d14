"""benchmarks/synthesize_gpu.py --small, on CPU with a tiny model: every mode a GPU session runs
(eager, static_cache, continuous) must work, and a mode that overruns, a deadline or a kill from
outside must leave a valid JSON with what was measured, and no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "synthesize_gpu.py"
MODES = ["eager", "static_cache", "continuous"]
TINY = ["--tiny", "--small", "3", "--doc-tokens", "120", "--gen-tokens", "6"]


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), *TINY, "--out", str(out), *extra]


def parts(out: Path) -> list[dict]:
    return json.loads((out / "gpu-small.json").read_text())["parts"]


def modes_of(out: Path) -> dict[str, dict]:
    return {r["mode_key"]: r for r in parts(out) if r.get("part") == "synthesize"}


def assert_group_gone(pid: int) -> None:
    """The mode's process and whatever it started (its process group) no longer exist."""
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def run_modes(tmp_path: Path, modes: str, backend: str) -> subprocess.CompletedProcess:
    """The benchmark on CPU for `modes` (with --compile-backend `backend`), within the time limits."""
    return subprocess.run(
        command(tmp_path, "--modes", modes, "--compile-backend", backend, "--mode-timeout", "150",
                "--deadline", "400"),
        capture_output=True, text=True, timeout=450,
    )  # fmt: skip


@pytest.mark.slow
def test_every_gpu_mode_runs_on_cpu(tmp_path):
    done = run_modes(tmp_path, "static_cache,continuous", "eager")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = modes_of(tmp_path)
    assert list(rows) == MODES  # the eager baseline first, added although not listed
    for key, row in rows.items():
        assert "error" not in row and "exit_note" not in row, (key, row)
        assert row["documents"] == 3 and row["device"] == "cpu" and row["transformers"]
        # every document's generation forced to --gen-tokens (EOS ignored) in every mode
        assert row["generated_tokens"] == 3 * 6 and row["raw_tokens"] > 0, (key, row)
        assert row["raw_tokens_per_s"] > 0, (key, row)
        assert row["warmup_seconds"] > 0 and row["wall_seconds"] >= row["seconds"]
    static = rows["static_cache"]
    # dynamo traced the static-cache decoding step in the warm-up, and nothing new was compiled
    # in the measured pass: compile time stands apart from the steady-state figures
    assert static["compiled_graphs"] > 0 and static["graphs_compiled_in_measured_pass"] == 0, static
    assert static["compile_seconds"] >= 0 and "warm-up pass" in static["timing"], static
    assert static["raw_vs_eager"] > 0 and rows["continuous"]["raw_vs_eager"] > 0, rows
    env = parts(tmp_path)[0]
    assert env["part"] == "env" and env["torch"] and env["transformers"]
    last = parts(tmp_path)[-1]
    assert last["part"] == "run" and last["done"] is True


@pytest.mark.slow
def test_a_mode_that_fails_is_recorded_and_the_run_goes_on(tmp_path):
    done = run_modes(tmp_path, "static_cache", "no-such-backend")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = modes_of(tmp_path)
    assert rows["static_cache"]["error"].startswith("exit status 1 during warm-up: ")
    assert "no-such-backend" in rows["static_cache"]["error"] and rows["static_cache"]["build_seconds"] > 0
    assert "error" not in rows["eager"] and rows["eager"]["raw_tokens_per_s"] > 0
    assert parts(tmp_path)[-1]["done"] is True  # the run went on to its end


def test_a_mode_over_its_time_is_killed_and_recorded(tmp_path):
    started = time.perf_counter()
    done = subprocess.run(
        command(tmp_path, "--modes", "eager,continuous", "--mode-timeout", "1.5", "--deadline", "120"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - started < 60
    rows = modes_of(tmp_path)
    assert list(rows) == ["eager", "continuous"]
    for row in rows.values():  # a tiny model does not even import in 1.5 s: both killed, both recorded
        assert row["error"].startswith("timeout: not done within 1.5 s (during: ")
        assert_group_gone(row["child_pid"])
    assert parts(tmp_path)[-1]["done"] is True


def test_modes_that_do_not_fit_the_deadline_are_skipped(tmp_path):
    done = subprocess.run(command(tmp_path, "--deadline", "3"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = modes_of(tmp_path)
    assert list(rows) == MODES and all(r["skipped"].startswith("deadline: ") for r in rows.values())


def test_a_kill_from_outside_keeps_the_json_and_ends_the_mode(tmp_path):
    parent = subprocess.Popen(
        command(tmp_path, "--mode-timeout", "300", "--deadline", "400"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    progress = tmp_path / "modes" / "eager.progress.json"
    deadline = time.monotonic() + 60
    while not progress.is_file() and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.1)
    assert progress.is_file(), "the first mode's process never started"
    child_pid = json.loads(progress.read_text())["pid"]
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 143
    assert_group_gone(child_pid)
    assert parts(tmp_path)[0]["part"] == "env"
    assert parts(tmp_path)[-1]["interrupted"] == "SystemExit"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--modes", "eager,compiled"], "unknown mode(s) compiled in --modes"),
        (["--mode-timeout", "0"], "--mode-timeout must be positive"),
        (["--gen-tokens", "0", "--deadline", "-1"], "--gen-tokens, --deadline must be positive"),
    ],
)
def test_a_wrong_flag_is_one_line_not_a_traceback(tmp_path, extra, message):
    done = subprocess.run(command(tmp_path, *extra), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
