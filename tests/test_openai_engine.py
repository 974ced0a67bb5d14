"""The OpenAI-compatible engine against local HTTP servers: token-id prompts, fan-out, failover."""

from __future__ import annotations

import pytest

from instructpt.engines.base import Request
from instructpt.engines.openai import OpenAIEngine
from instructpt.engines.rules import respond
from instructpt.errors import UsageError
from instructpt.synthesis.format import build_prompt

from .test_pipeline import make_corpus, snapshot


def test_prompts_go_as_token_ids_with_greedy_settings(servers, tokenizer):
    url, seen = servers()
    engine = OpenAIEngine([url], "tiny", tokenizer, max_model_len=4096)
    prompt = build_prompt("The river Elbe flows through Dresden. Therefore, it is a big river.")
    (completion,) = engine.generate([Request(prompt, tokenizer.encode(prompt), 100)])
    assert completion.text == respond(
        tokenizer.backend.decode(tokenizer.encode(prompt), skip_special_tokens=False)
    )
    body = seen[0]
    assert body["prompt"] == tokenizer.encode(prompt) and body["prompt"].count(tokenizer.token_id("<s>")) == 1
    assert body["temperature"] == 0.0 and body["max_tokens"] == 100 and "add_special_tokens" not in body


def test_a_failing_endpoint_is_retried_elsewhere_with_identical_output(servers, tokenizer, tmp_path):
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    good, _ = servers()
    bad, bad_seen = servers(fail=503)
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=20)

    def run(out, urls):
        engine = OpenAIEngine(urls, "tiny", tokenizer, concurrency=4, max_retries=6)
        config = SynthesisConfig(inputs=[str(corpus)], output=str(tmp_path / out), model="tiny",
                                 engine="openai", shard_size=10)  # fmt: skip
        run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)
        return engine

    run("one", [good])
    engine = run("two", [bad, good])
    assert bad_seen and engine.stats["failovers"] > 0
    assert snapshot(tmp_path / "two") == snapshot(tmp_path / "one")


def test_model_and_context_mismatch_are_clear_errors(servers, tokenizer):
    url, _ = servers(model="other", max_model_len=2048)
    with pytest.raises(UsageError, match=r"serves \['other'\], not 'tiny'"):
        OpenAIEngine([url], "tiny", tokenizer)
    with pytest.raises(UsageError, match="context of 2048 tokens"):
        OpenAIEngine([url], "other", tokenizer, max_model_len=4096)
    with pytest.raises(UsageError, match="cannot reach the server"):
        OpenAIEngine(["http://127.0.0.1:9/v1"], "tiny", tokenizer)


def test_async_scheduler_and_sync_batches_write_the_same_bytes(servers, tokenizer, tmp_path):
    from instructpt.engines.base import Engine
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    url, _ = servers()
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=30)

    class SyncOnly(Engine):  # the same server, without agenerate: round-by-round batches
        def __init__(self, inner):
            super().__init__(inner.tokenizer, inner.max_model_len)
            self.inner = inner

        def generate(self, requests):
            return self.inner.generate(requests)

    def run(out, engine):
        config = SynthesisConfig(inputs=[str(corpus)], output=str(tmp_path / out), model="tiny",
                                 engine="openai", shard_size=7, rounds=RoundSettings(rounds=3))  # fmt: skip
        run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)

    from instructpt.synthesis.rounds import RoundSettings

    run("async", OpenAIEngine([url], "tiny", tokenizer, concurrency=3))
    run("sync", SyncOnly(OpenAIEngine([url], "tiny", tokenizer)))
    assert snapshot(tmp_path / "async") == snapshot(tmp_path / "sync")


@pytest.mark.slow
def test_text_prompts_on_transformers_serve_match_the_hf_engine(tiny_model, tmp_path):
    """`transformers serve` takes text only and refuses vLLM's extra fields: the engine notices,
    sends standard fields, and checks the server's prompt-token count (no second BOS)."""
    pytest.importorskip("fastapi")
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from instructpt.engines import EngineOptions, create_engine

    # The venv's bin folder is not on PATH when pytest runs as .venv/bin/python -m pytest.
    beside = Path(sys.executable).parent / "transformers"
    cli = str(beside) if beside.is_file() else shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers CLI is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "hub").mkdir()  # it must exist: /v1/models scans it
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    server = subprocess.Popen([cli, "serve", str(tiny_model), "--port", str(port), "--host", "127.0.0.1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        hf = create_engine("hf", EngineOptions(model=str(tiny_model), max_model_len=512))
        url = f"http://127.0.0.1:{port}/v1"
        engine = OpenAIEngine([url], str(tiny_model), hf.tokenizer, max_model_len=512, prompt_format="text",
                              concurrency=2)  # fmt: skip
        texts = ["The river Elbe flows through Dresden.", "Water boils at 100 degrees.", "A short note."]
        requests = [Request(p, hf.tokenizer.encode(p), 12) for p in map(build_prompt, texts)]
        got = engine.generate(requests)
        assert not engine.send_extras  # it fell back to the standard fields
        assert [(c.text.strip(), c.n_tokens) for c in got] == [(c.text.strip(), c.n_tokens)
                                                                 for c in hf.generate(requests)]  # fmt: skip
    finally:
        server.kill()
        server.wait()
