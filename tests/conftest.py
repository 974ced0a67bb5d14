"""Shared fixtures: a tiny trained tokenizer, a tiny random Mistral model, scripted engines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from instructpt.engines.base import Completion, Engine, Request
from instructpt.tokenization import Tokenizer

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parent.parent / "examples"

TOKENIZER_TEXTS = [
    "The kettle boils water in about three minutes when it is full.",
    "New Yorkers may fish for free without a license in any of the state's lakes.",
    "Water freezes at zero degrees Celsius at sea level. The museum opens at 9 a.m.",
    "Genetically and medically susceptible workers face hazardous conditions.",
] * 4


def load_fixture_generations() -> list[dict]:
    """Realistic synthesizer generations (copied from the project's shared fixtures)."""
    with open(DATA / "synthesizer_outputs.jsonl") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    from instructpt.testing import train_tokenizer

    return Tokenizer(train_tokenizer(TOKENIZER_TEXTS, vocab_size=600), name="test-bpe")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from instructpt.testing import build_tiny_model

    texts = TOKENIZER_TEXTS
    if (EXAMPLES / "corpus.jsonl").is_file():
        texts = [json.loads(line)["text"] for line in open(EXAMPLES / "corpus.jsonl")]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=1000)


class ScriptedEngine(Engine):
    """A test double: `respond(prompt) -> generation`, recording every request it saw."""

    name = "scripted"

    def __init__(
        self,
        tokenizer: Tokenizer,
        respond: Callable[[str], str],
        max_model_len: int = 4096,
        fail_after_calls: int | None = None,
    ) -> None:
        super().__init__(tokenizer, max_model_len)
        self.respond = respond
        self.requests: list[Request] = []
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.requests.extend(requests)
        texts = [self.respond(r.prompt) for r in requests]
        counts = [len(ids) for ids in self.tokenizer.encode_batch(texts)]
        return [Completion(t, n + 1, "stop") for t, n in zip(texts, counts)]


@pytest.fixture
def scripted(tokenizer) -> Callable[..., ScriptedEngine]:
    def make(respond: Callable[[str], str], **kwargs) -> ScriptedEngine:
        return ScriptedEngine(tokenizer, respond, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _isolated_engine_registry():
    """Engines a test registers are gone after it (the registry is process-wide)."""
    from instructpt.engines.registry import registry

    with registry().isolated():
        yield


@pytest.fixture
def servers(tokenizer: Tokenizer) -> Iterator[Callable[..., tuple[str, list[dict]]]]:
    """`servers(**kwargs) -> (url, request bodies)`: fake OpenAI-compatible servers
    (tests/fake_openai.py, `serve`'s keyword arguments), all shut down after the test."""
    from .fake_openai import serve

    made = []

    def make(**kwargs: Any) -> tuple[str, list[dict]]:
        server, url, seen = serve(tokenizer, **kwargs)
        made.append(server)
        return url, seen

    yield make
    for server in made:
        server.shutdown()
