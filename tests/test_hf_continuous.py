"""The hf engine's continuous batching around transformers' manager: a dead worker thread is a
clear error and the next call starts a new manager; an engine never closed lets Python exit."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from instructpt.engines.base import Request  # noqa: E402
from instructpt.engines.hf import HFEngine  # noqa: E402


class DeadManager:
    """A manager whose worker thread ended at once: requests are accepted, nothing comes back."""

    warmed_up = True

    def __init__(self) -> None:
        self.added: list[str] = []
        self.stopped = False

    def start(self) -> None:
        pass

    def is_running(self) -> bool:
        return False

    def add_request(self, input_ids: list[int], request_id: str, **kw: Any) -> str:
        self.added.append(request_id)
        return request_id

    def get_result(self, timeout: float | None = None) -> None:
        return None

    def stop(self, **kw: Any) -> None:
        self.stopped = True

    def destroy(self) -> None:
        pass


def random_model() -> Any:
    config = transformers.MistralConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=100,
    )  # fmt: skip
    return transformers.MistralForCausalLM(config)


def test_a_dead_worker_thread_is_a_clear_error_and_the_next_call_starts_anew(tokenizer):
    model = random_model()
    managers: list[DeadManager] = []
    model.init_continuous_batching = lambda **kw: managers.append(DeadManager()) or managers[-1]
    engine = HFEngine(model, tokenizer, 512)
    engine.continuous_batching = True
    for call in (1, 2):
        with pytest.raises(RuntimeError, match="no result for request 0 of 2 .*thread ended early"):
            engine.generate([Request("p", [5, 6, 7], 4), Request("q", [5, 8], 4)])
        assert len(managers) == call and managers[-1].stopped
    ids = managers[0].added + managers[1].added
    assert len(set(ids)) == 4  # request ids never repeat over the engine's life


@pytest.mark.slow
def test_an_engine_never_closed_lets_python_exit(tiny_model):
    script = (
        "from instructpt.engines import EngineOptions, create_engine\n"
        "from instructpt.engines.base import Request\n"
        f"engine = create_engine('hf', EngineOptions(model={str(tiny_model)!r}, max_model_len=256),"
        " continuous_batching=True)\n"
        "print(engine.generate([Request('p', [5, 6, 7], 3)])[0].n_tokens)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() in {"1", "2", "3"}, done.stderr[-2000:]
