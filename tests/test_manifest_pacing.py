"""The manifest's shard table is rewritten at a pace, not once per shard (quadratic on big runs),
and never left behind: a stop or an error writes the shards done so far."""

from __future__ import annotations

import json

import pytest

from instructpt.executor import local
from instructpt.io.output import OutputDir
from instructpt.templating import stage as templify_stage
from instructpt.templating.stage import run_templify

from .test_executor import quiet, synth  # noqa: F401 - the fixture


@pytest.fixture
def writes(monkeypatch) -> list[int]:
    """The number of finished shards in each manifest written."""
    seen: list[int] = []
    original = OutputDir.write_manifest

    def counting(self, manifest):
        seen.append(len(manifest.get("shards") or {}))
        original(self, manifest)

    monkeypatch.setattr(OutputDir, "write_manifest", counting)
    return seen


def test_a_fast_run_of_many_shards_writes_its_manifest_a_few_times(tmp_path, synth, writes):  # noqa: F811
    run_templify(synth, tmp_path / "t", progress=False, **quiet())
    manifest = json.loads((tmp_path / "t/manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 12
    progress = [n for n in writes if 0 < n < 12]
    assert len(progress) <= 2, writes  # was one rewrite per shard: 11 of them
    assert writes[-1] == 12


def test_every_shard_rewrites_it_when_rewrites_are_due(tmp_path, synth, writes, monkeypatch):  # noqa: F811
    monkeypatch.setattr(local, "MANIFEST_EVERY_S", 0.0)
    monkeypatch.setattr(local, "MANIFEST_TIME_SHARE", 1e9)
    run_templify(synth, tmp_path / "t", progress=False, **quiet())
    assert [n for n in writes if 0 < n < 12] == list(range(1, 12))


def test_a_run_that_fails_leaves_the_shards_done_in_its_manifest(tmp_path, synth, monkeypatch):  # noqa: F811
    real = templify_stage.TemplifyStage.run

    def failing(self, index, work):
        if index == 7:
            raise RuntimeError("disk on fire")
        return real(self, index, work)

    monkeypatch.setattr(templify_stage.TemplifyStage, "run", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_templify(synth, tmp_path / "t", progress=False, **quiet())
    manifest = json.loads((tmp_path / "t/manifest.json").read_text())
    assert sorted(int(k) for k in manifest["shards"]) == list(range(7))
    assert not manifest.get("complete")
