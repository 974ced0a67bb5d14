"""executor/launch.py: the folder opening and dispatch every stage's `run_*` function shares."""

from __future__ import annotations

import pytest

from instructpt.errors import SettingsChanged, UsageError
from instructpt.executor import launch, open_locked, open_output
from instructpt.io.output import OutputDir
from instructpt.templating.stage import run_templify

from .test_executor import synth  # noqa: F401 - fixture


def test_open_output_continues_the_run_in_the_folder(tmp_path, synth):  # noqa: F811
    run_templify(synth, tmp_path / "aug", fmt="jsonl", progress=False, log=lambda m: None)
    out = OutputDir(tmp_path / "aug", "jsonl")
    settings = out.read_manifest()["settings"]
    manifest = open_output(out, settings, "templify")
    assert manifest["complete"] and manifest["shards"]


def test_other_settings_refused_unless_rebuild_which_starts_afresh_locked(tmp_path, synth):  # noqa: F811
    run_templify(synth, tmp_path / "aug", fmt="jsonl", progress=False, log=lambda m: None)
    out = OutputDir(tmp_path / "aug", "jsonl")
    other = {**out.read_manifest()["settings"], "seed": 7}
    with pytest.raises(SettingsChanged, match="seed"):
        open_output(out, other, "templify")
    with open_locked(out, other, "templify", rebuild=True, num_workers=2, worker_index=1) as manifest:
        assert manifest["settings"] == other and not manifest["shards"]
        with pytest.raises(UsageError, match="another instructpt run"), out.locked(".lock-w1-of-2"):
            pass  # this worker's lock is held


def test_an_unknown_executor_is_a_user_error_naming_the_choices(tmp_path, synth):  # noqa: F811
    with pytest.raises(UsageError, match="'local' or 'ray'"):
        run_templify(synth, tmp_path / "aug", executor="spark", log=lambda m: None)


def test_launch_runs_a_stage_here(tmp_path, synth):  # noqa: F811
    done = run_templify(synth, tmp_path / "aug", fmt="jsonl", progress=False, log=lambda m: None)
    again = launch(_reopened(tmp_path / "aug"), progress=False, log=lambda m: None)
    assert again == done  # a finished folder: its summary, nothing recomputed


def _reopened(folder):
    from instructpt.executor.status import open_folder, reopen

    return reopen(*open_folder(folder))
