"""The collapse guard: a synthesizer that writes no parsable pairs stops the run early with a
clear error; finished shards stay valid and resumable; real output does not trip it."""

from __future__ import annotations

import json
from collections import deque

import pytest

from instructpt.engines.rules import RulesEngine
from instructpt.errors import UsageError
from instructpt.executor.status import run_status
from instructpt.io.integrity import check_run
from instructpt.records import Entry
from instructpt.synthesis.format import CON_CLOSE, CON_OPEN, Pair, serialize_pairs
from instructpt.synthesis.guard import GUARD_WARMUP, CollapseGuard, SynthesisCollapsed
from instructpt.synthesis.rounds import RoundSettings
from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

from .conftest import EXAMPLES, load_fixture_generations

CHAT = "Sure! Here is a short summary of the document you shared. It talks about {topic}. Let me know!"


def chat_prose(prompt: str) -> str:
    """What a chat model writes when handed the synthesizer's prompt: friendly prose, no pairs."""
    doc = prompt[prompt.rfind(CON_OPEN) + 5 : prompt.rfind(CON_CLOSE)].strip()
    return CHAT.format(topic=doc[:40])


def good(prompt: str) -> str:
    doc = prompt[prompt.rfind(CON_OPEN) + 5 : prompt.rfind(CON_CLOSE)].strip()
    return serialize_pairs([Pair(f"What does '{doc[:20]}' say?", doc[:30])])


def corpus(path, n: int):
    lines = [
        json.dumps({"id": f"d{i}", "text": f"Lake {i} lies north of town {i}. It is deep."}) for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def cfg(tmp_path, **kw) -> SynthesisConfig:
    base = dict(inputs=[str(corpus(tmp_path / "c.jsonl", 200))], output=str(tmp_path / "out"), model="t",
                engine="scripted", shard_size=20, rounds=RoundSettings(rounds=2))  # fmt: skip
    return SynthesisConfig(**{**base, **kw})


def synth(config, scripted, respond):
    return run_synthesis(config, lambda: scripted(respond), progress=False, log=lambda m: None)


def test_chat_prose_stops_early_with_the_causes_and_one_generation(tmp_path, scripted):
    config = cfg(tmp_path)
    with pytest.raises(SynthesisCollapsed) as caught:
        synth(config, scripted, chat_prose)
    message = str(caught.value)
    assert isinstance(caught.value, UsageError)  # the CLI prints it without a traceback
    assert "0% of the last" in message and "--min-parse-rate 0.5" in message
    for cause in ("wrong model", "chat", "tokenizer", "--max-new-tokens"):
        assert cause in message
    assert "Sure! Here is a short summary" in message  # one raw generation
    # stopped at the first shard after the warm-up (20 documents a shard), not at the end (10 shards)
    done = check_run(tmp_path / "out").good
    assert sorted(done) == list(range(-(-GUARD_WARMUP // 20)))
    status = run_status(tmp_path / "out")
    assert status["shards_done"] == len(done) and status["complete"] is False
    # the shards hold no generations (not asked for): the guard kept them in memory only
    data = (tmp_path / "out" / "data").glob("*.parquet")
    import pyarrow.parquet as pq

    assert all("generation" not in pq.read_schema(p).names for p in data)


def test_after_a_fix_the_run_resumes_keeping_the_finished_shards(tmp_path, scripted):
    with pytest.raises(SynthesisCollapsed):
        synth(cfg(tmp_path), scripted, chat_prose)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "data").iterdir()}
    summary = synth(cfg(tmp_path), scripted, good)
    assert summary["complete"] and summary["documents"] == 200
    after = {p.name: p.read_bytes() for p in (tmp_path / "out" / "data").iterdir()}
    assert all(after[name] == data for name, data in before.items())  # not recomputed


def test_zero_disables_the_guard(tmp_path, scripted):
    summary = synth(cfg(tmp_path, min_parse_rate=0.0), scripted, chat_prose)
    assert summary["complete"] and summary["pairs"] == 0


def test_the_rules_engine_on_the_bundled_corpus_does_not_trip_it(tmp_path, tokenizer):
    config = cfg(tmp_path, inputs=[str(EXAMPLES / "corpus.jsonl")], shard_size=8)
    summary = run_synthesis(config, lambda: RulesEngine(tokenizer), progress=False, log=lambda m: None)
    assert summary["complete"] and summary["entries"] > GUARD_WARMUP


def test_real_synthesizer_output_does_not_trip_it(tmp_path, scripted):
    fixtures = deque(r["prediction"] for r in load_fixture_generations())

    def replay(prompt: str) -> str:  # the fixtures in turn, failure shapes and garbage included
        fixtures.rotate(-1)
        return fixtures[0]

    summary = synth(cfg(tmp_path), scripted, replay)
    assert summary["complete"] and summary["entries_without_pairs"] > 0


def entry(pairs: int) -> Entry:
    return Entry(id="e", doc_id="e", part=0, n_parts=1, text="t", pairs=[Pair("q", "a")] * pairs,
                 chain_id="c", round=0, inherits=False, n_context=0, prompt_tokens=5, generated_tokens=3,
                 finish_reason="stop", generation="" if not pairs else None)  # fmt: skip


def test_the_window_rolls_and_waits_for_the_warm_up():
    guard = CollapseGuard(0.5, window=10, warmup=5)
    guard.add([entry(0)] * 4)
    guard.check("out", lambda: 0)  # 4 < warm-up: no verdict yet
    guard.add([entry(0)])
    with pytest.raises(SynthesisCollapsed):
        guard.check("out", lambda: 0)
    guard.add([entry(2)] * 6)  # the window now holds 4 bad, 6 good
    guard.check("out", lambda: 0)
    assert guard.parse_rate() == 0.6 and guard.pairs_per_generation() == 1.2


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_0_1_is_a_usage_error(rate):
    with pytest.raises(UsageError, match="--min-parse-rate"):
        CollapseGuard(rate)


def test_the_cli_reports_the_collapse_as_one_error(tmp_path):
    from click.testing import CliRunner

    from instructpt.cli import main
    from instructpt.testing import save_tiny_tokenizer

    tok = save_tiny_tokenizer(tmp_path / "tok")
    corpus(tmp_path / "c.jsonl", 120)
    result = CliRunner().invoke(main, ["synthesize", str(tmp_path / "c.jsonl"), "-o", str(tmp_path / "o"),
                                       "--engine", "rules", "--model", str(tok), "--shard-size", "30",
                                       "--min-parse-rate", "1.0", "--no-progress"])  # fmt: skip
    # the rules engine finds pairs in few of these one-line documents: with the bar at 1.0 it stops
    assert result.exit_code == 1, result.output
    assert "Error: synthesis stopped" in result.output and "Traceback" not in result.output
