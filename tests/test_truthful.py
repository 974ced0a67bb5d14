"""Figures that tell the truth: the rules engine's token counts and finish reasons, the loss
`train-synthesizer` reports, what a rerun of a finished run says, and `status`'s ETA."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.engines.base import Request
from instructpt.engines.rules import RulesEngine, mine_pairs, respond
from instructpt.executor.progress import this_run_text
from instructpt.executor.status import STALLED_AFTER, estimate_eta, eta_text, run_status
from instructpt.finetune.train import first_and_last_loss, training_loss
from instructpt.synthesis.format import build_prompt, parse_generation, serialize_pairs

from .conftest import EXAMPLES

# A document the rules engine mines many pairs from: a title, definitions, connectives.
RICH = """Levers and the mechanical advantage of simple machines
A lever is defined as a rigid bar that turns about a fixed point called the fulcrum.
Mechanical advantage refers to the ratio of the output force to the input force of a machine.
A longer lever arm lets a small force lift a heavy load. Therefore, builders moved huge stones.
The fulcrum must hold the whole load. However, a weak fulcrum breaks under heavy stones.
Levers appear in scissors, pliers and seesaws. Moreover, the human arm works as a lever.
The work done stays the same with a lever. In other words, force is traded for distance."""


@pytest.fixture
def rules(tokenizer) -> RulesEngine:
    return RulesEngine(tokenizer)


def complete(engine: RulesEngine, text: str, budget: int):
    prompt = build_prompt(text)
    (completion,) = engine.generate([Request(prompt, engine.tokenizer.encode(prompt), budget)])
    return completion


def test_rules_engine_counts_what_it_writes_and_stops_normally(rules):
    full = respond(build_prompt(RICH))
    assert len(mine_pairs(RICH)) >= 5
    completion = complete(rules, RICH, 4000)
    assert completion.text == full
    assert completion.finish_reason == "stop"
    assert completion.n_tokens == len(rules.tokenizer.encode(full)) + 1  # + the EOS


def test_rules_engine_keeps_the_whole_pairs_that_fit_the_budget(rules):
    pairs = mine_pairs(RICH)
    need = len(rules.tokenizer.encode(serialize_pairs(pairs))) + 1
    budget = len(rules.tokenizer.encode(serialize_pairs(pairs[:3]))) + 1
    assert budget < need
    completion = complete(rules, RICH, budget)
    assert completion.finish_reason == "stop" and completion.n_tokens <= budget
    parsed = parse_generation(completion.text)
    assert parsed.pairs == pairs[:3] and not parsed.dropped  # nothing half written


def test_rules_engine_cuts_at_max_new_tokens_only_when_no_pair_fits(rules):
    first = serialize_pairs(mine_pairs(RICH)[:1])
    budget = len(rules.tokenizer.encode(first)) // 2
    completion = complete(rules, RICH, budget)
    assert completion.finish_reason == "length" and completion.n_tokens == budget
    assert first.startswith(completion.text) and completion.text
    assert parse_generation(completion.text).dropped == {"unfinished_last_pair": 1}


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(min_value=1, max_value=400), cut=st.integers(min_value=0, max_value=8))
def test_rules_engine_never_passes_its_budget(tokenizer, budget, cut):
    engine = RulesEngine(tokenizer)
    lines = RICH.splitlines()
    text = "\n".join(lines[: len(lines) - cut]) or "Short."
    completion = complete(engine, text, budget)
    assert completion.n_tokens <= budget
    if completion.finish_reason == "stop":
        assert completion.n_tokens == len(tokenizer.encode(completion.text)) + 1
        assert not parse_generation(completion.text).dropped
    else:
        assert completion.finish_reason == "length" and completion.n_tokens == budget
        assert respond(build_prompt(text)).startswith(completion.text)


def test_the_demo_run_records_no_false_cut(tmp_path, tokenizer):
    """The example corpus through the rules engine at the default 400 new tokens: every entry's
    count is within the budget and says "stop", so the report opens with no cut alert."""
    from instructpt import synthesize

    docs = [json.loads(line) for line in open(EXAMPLES / "corpus.jsonl")]
    entries = list(synthesize(docs, RulesEngine(tokenizer), rounds=2, max_new_tokens=400))
    assert entries and all(0 < e.generated_tokens <= 400 for e in entries)
    assert {e.finish_reason for e in entries} == {"stop"}
    assert sum(len(e.pairs) for e in entries) / len(entries) > 1.5


# --- train-synthesizer's loss -------------------------------------------------------------


def test_losses_come_from_the_steps_logged_and_the_train_output():
    class Output:
        training_loss = 2.5

    history = [{"loss": 4.0, "step": 1}, {"loss": 3.0, "step": 10}, {"train_loss": 2.5, "step": 12}]
    assert first_and_last_loss(history) == ((1, 4.0), (10, 3.0))
    assert training_loss(Output(), history) == 2.5
    # a run shorter than logging_steps logs no per-step loss: the mean still comes through
    short = [{"train_loss": 6.1, "step": 3, "train_runtime": 1.0}]
    assert first_and_last_loss(short) == ((None, None), (None, None))
    assert training_loss(object(), short) == 6.1


def test_loss_line_never_prints_none():
    from instructpt.cli.finetune import loss_line

    full = {
        "train_loss": 2.5,
        "first_loss": 4.0,
        "first_loss_step": 1,
        "last_loss": 3.0,
        "last_loss_step": 10,
    }
    assert loss_line(full) == "mean loss 2.5000, loss 4.0000 (step 1) -> 3.0000 (step 10)"
    one = {**full, "last_loss": 4.0, "last_loss_step": 1}
    assert loss_line(one) == "mean loss 2.5000, loss 4.0000 at step 1"
    none = {"train_loss": None, "first_loss": None, "last_loss": None}
    assert loss_line(none) == "no loss logged"


@pytest.mark.slow
def test_a_three_step_training_reports_its_loss(tmp_path, tiny_model):
    pytest.importorskip("accelerate")
    from .test_finetune import records

    data = tmp_path / "ft"
    data.mkdir()
    (data / "d.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records(4)))
    args = ["train-synthesizer", "--base", str(tiny_model), "--data", str(data), "-o", str(tmp_path / "o"),
            "--max-len", "256", "--max-steps", "3", "--grad-accum", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert re.match(r"trained 3 steps, mean loss \d+\.\d{4}, loss \d+\.\d{4} at step 1; saved to ", line), (
        line
    )
    assert "None" not in line
    figures = CliRunner().invoke(main, [*args, "--max-steps", "4", "--json"], catch_exceptions=False)
    report = json.loads(figures.stdout)
    assert report["steps"] == 4 and report["train_loss"] is not None


# --- a rerun of a finished run --------------------------------------------------------------


def synthesize_args(corpus: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["synthesize", str(corpus), "-o", str(out), "--engine", "rules", "--model", str(model),
            "--shard-size", "4", "--no-progress", *extra]  # fmt: skip


@pytest.fixture
def tok_file(tmp_path, tokenizer) -> Path:
    path = tmp_path / "tokenizer.json"
    tokenizer.backend.save(str(path))
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    lines = (EXAMPLES / "corpus.jsonl").read_text().splitlines()[:16]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_rerun_of_a_finished_run_says_nothing_to_do(tmp_path, corpus, tok_file):
    out = tmp_path / "out"
    first = CliRunner().invoke(main, synthesize_args(corpus, out, tok_file), catch_exceptions=False)
    assert first.exit_code == 0 and "this run: 16 documents" in first.stderr and "docs/s" in first.stderr
    again = CliRunner().invoke(main, synthesize_args(corpus, out, tok_file), catch_exceptions=False)
    assert again.exit_code == 0
    assert "nothing to do: already complete" in again.stderr and "docs/s" not in again.stderr
    assert "16 documents" in again.stderr  # the folder's figures are still stated
    as_json = CliRunner().invoke(
        main, synthesize_args(corpus, out, tok_file, "--json"), catch_exceptions=False
    )
    this_run = json.loads(as_json.stdout)["this_run"]
    assert this_run["documents"] == 0 and this_run["documents_per_s"] == 0
    # the folder's own summary keeps the run that did the work
    assert json.loads((out / "summary.json").read_text())["this_run"]["documents"] == 16


def test_this_run_text():
    assert this_run_text(None) == "nothing to do: already complete"
    assert this_run_text({"documents": 0, "documents_per_s": 0.0}) == (
        "this run computed nothing (its shards were already done)"
    )
    busy = {
        "documents": 1200,
        "documents_per_s": 40.0,
        "raw_tokens_per_s": 9000.0,
        "generated_tokens_per_s": 10.0,
    }
    assert this_run_text(busy) == "this run: 1,200 documents, 40.0 docs/s, 9000 raw tok/s, 10 generated tok/s"


# --- status's ETA -------------------------------------------------------------------------------


def test_status_of_a_half_done_static_run_gives_no_false_eta(tmp_path, corpus, tok_file):
    out = tmp_path / "out"
    args = synthesize_args(corpus, out, tok_file, "--num-workers", "2", "--worker-index", "0")
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    info = run_status(out)  # at once: worker 1 never started
    assert info["shards_done"] == 2 and info["shards_total"] == 4 and not info["complete"]
    assert info["eta_seconds"] is None
    assert (
        info["eta_note"]
        == "shards left belong to workers not started yet: --worker-index 1 of --num-workers 2"
    )
    shown = CliRunner().invoke(main, ["status", str(out)], catch_exceptions=False).output
    assert "ETA unknown (shards left belong to workers not started" in shown and "ETA 0" not in shown
    # worker 1 started (its lock file) but no shard has finished for 10 minutes: stalled
    (out / ".lock-w1-of-2").touch()
    markers = [json.loads(p.read_text()) for p in (out / "shards").glob("part-*[0-9].json")]
    stalled = run_status(out, now=max(m["finished_at"] for m in markers) + 600)
    assert stalled["eta_seconds"] is None and "are the workers running?" in stalled["eta_note"]
    assert eta_text(stalled).startswith("unknown (no shard has finished for 10.0 min")
    # the other worker finishes: complete, and the ETA says so
    CliRunner().invoke(
        main, synthesize_args(corpus, out, tok_file, "--num-workers", "2", "--worker-index", "1")
    )
    done = run_status(out, now=time.time() + 3600)
    assert done["complete"] and done["eta_seconds"] == 0 and eta_text(done) == "done"


@pytest.mark.parametrize(
    "complete, remaining, rate, idle, shard_seconds, expected",
    [
        (True, 0, 1.0, 10.0, 1.0, 0.0),
        (False, None, 1.0, 1.0, 1.0, None),  # the shard count is not known yet
        (False, 5, 0.0, None, 0.0, None),  # nothing finished yet
        (False, 10, 0.01, 30.0, 100.0, 970.0),  # one shard per 100 s: 10 left, 30 s into the next
        (False, 1, 0.01, 150.0, 100.0, 0.0),  # the last shard is late but not stalled: any moment
        (False, 10, 0.01, STALLED_AFTER * 100 + 1, 100.0, None),  # stalled
    ],
)
def test_estimate_eta(complete, remaining, rate, idle, shard_seconds, expected):
    eta, note = estimate_eta(complete, remaining, rate, idle, shard_seconds)
    assert eta == expected, note
    assert note
