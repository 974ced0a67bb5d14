"""The llama.cpp engine on a GGUF of the tiny model, converted offline (`make test-gguf`).

llama-cpp-python has no wheel here (its sdist builds in ~6 minutes); the GGUF converter ships in
that sdist (vendor/llama.cpp/convert_hf_to_gguf.py), found through INSTRUCTPT_LLAMA_CPP_DIR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed; `make test-gguf` runs these tests"
)
CONVERTER = Path(os.environ.get("INSTRUCTPT_LLAMA_CPP_DIR", "/nonexistent")) / "convert_hf_to_gguf.py"
if not CONVERTER.is_file():
    pytest.skip(
        "set INSTRUCTPT_LLAMA_CPP_DIR to llama.cpp's source (`make test-gguf` does)", allow_module_level=True
    )

from instructpt.engines import EngineOptions, create_engine  # noqa: E402
from instructpt.engines.base import Request  # noqa: E402
from instructpt.synthesis.format import build_prompt  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from instructpt.testing import build_tiny_model

    texts = [json.loads(line)["text"] for line in open(EXAMPLES / "corpus.jsonl")]
    folder = build_tiny_model(tmp_path_factory.mktemp("ltiny") / "model", texts, vocab_size=1000,
                              hidden_size=128, num_heads=2, num_kv_heads=1)  # fmt: skip
    gguf = folder.parent / "tiny.gguf"
    subprocess.run([sys.executable, str(CONVERTER), str(folder), "--outfile", str(gguf), "--outtype", "f32"],
                   check=True, capture_output=True)  # fmt: skip
    return folder, gguf


def test_same_greedy_tokens_as_the_hf_engine(models):
    import torch

    folder, gguf = models
    hf = create_engine("hf", EngineOptions(model=str(folder), max_model_len=512, dtype="float32"))
    engine = create_engine(
        "llamacpp", EngineOptions(model=str(gguf), tokenizer=str(folder), max_model_len=512)
    )
    texts = [json.loads(line)["text"][:300] for line in open(EXAMPLES / "corpus.jsonl")][:6]
    for prompt in map(build_prompt, texts):
        request = Request(prompt, hf.tokenizer.encode(prompt), 24)
        with torch.inference_mode():
            ids = torch.tensor([request.prompt_ids])
            expected = hf.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=24, do_sample=False, pad_token_id=hf.pad_id,
                                         eos_token_id=hf.eos_id)  # fmt: skip
        assert (
            engine.generate_ids(request) == expected[0, ids.shape[1] :].tolist()
        )  # same ids in, same ids out
    (completion,) = engine.generate([request])
    assert completion.n_tokens == 24 and completion.finish_reason == "length"
    engine.close()


def test_synthesize_through_the_cli_with_a_gguf(models, tmp_path):
    from click.testing import CliRunner

    from instructpt.cli import main

    from .test_pipeline import make_corpus

    folder, gguf = models
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=6)
    args = ["synthesize", str(corpus), "-o", str(tmp_path / "out"), "--engine", "llamacpp",
            "--model", str(gguf), "--max-new-tokens", "16", "--max-model-len", "512", "--json"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 6
