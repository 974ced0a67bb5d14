"""`instructpt evaluate`: suites, local tasks through lm-eval, scores and comparison, offline."""

from __future__ import annotations

import json

import pytest

from instructpt.errors import UsageError
from instructpt.finetune.model_eval import SUITES, markdown_table, resolve_suite


def test_named_suites_follow_the_paper():
    names, local = resolve_suite("general")
    assert names == ["arc_easy", "arc_challenge", "boolq", "siqa", "winogrande", "piqa", "openbookqa",
                     "hellaswag", "mmlu"] and local == []  # fmt: skip
    assert SUITES["finance"][1] == ["ConvFinQA", "FPB", "FiQA_SA", "Headline", "NER"]
    with pytest.raises(UsageError, match="--data-dir"):
        resolve_suite("biomedicine")
    with pytest.raises(UsageError, match="unknown suite"):
        resolve_suite("chemistry")


def test_domain_suite_reads_local_task_files(tmp_path):
    for task in ("ChemProt", "RCT", "MQP"):
        (tmp_path / task).mkdir()
        (tmp_path / task / "test.json").write_text("[]")
    names, local = resolve_suite("biomedicine", str(tmp_path))
    assert names == ["pubmedqa", "medqa_4options"]
    assert [t.name for t in local] == ["instructpt_chemprot", "instructpt_rct", "instructpt_mqp"]
    assert local[0].config()["output_type"] == "multiple_choice"


def test_comparison_table():
    a = {"model": "base", "scores": {"t": {"acc": 0.5, "acc_norm": 0.6}}}
    b = {"model": "ipt", "scores": {"t": {"acc": 0.7, "acc_norm": 0.65}}}
    table = markdown_table([a, b])
    assert "| t | acc_norm | 0.6000 | 0.6500 | +0.0500 |" in table


@pytest.mark.slow
def test_custom_local_task_on_the_tiny_model(tmp_path, tiny_model, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [{"input": f"Question {i}: is the river long?", "options": [" yes", " no"], "gold_index": i % 2}
            for i in range(8)]  # fmt: skip
    (tmp_path / "river.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - {name: river_qa, path: river.jsonl}\n")
    from click.testing import CliRunner

    from instructpt.cli import main

    out = tmp_path / "scores"
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_model), "--compare", str(tiny_model),
                                       "--suite", str(suite), "--batch-size", "4", "--device", "cpu",
                                       "-o", str(out)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "scores-1.json").read_text())
    acc = scores["scores"]["river_qa"]["acc"]
    assert 0.0 <= acc <= 1.0 and scores["n_samples"]["river_qa"]["effective"] == 8
    assert "| river_qa | acc_norm |" in (out / "scores.md").read_text()
    assert "+0.0000" in result.stdout  # the same model twice: no difference
