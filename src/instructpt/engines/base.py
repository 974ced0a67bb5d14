"""The engine protocol: token-id prompts in, generated text out.

An engine is anything that can continue a batch of prompts greedily. The rounds
logic builds every prompt, tokenizes it exactly once with `engine.tokenizer` (no
special tokens added) and guarantees `len(prompt_ids) + max_new_tokens <=
engine.max_model_len`; the engine only generates. Write your own by subclassing
`Engine` and implementing `generate`, then `register_engine` it (see registry.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..tokenization import Tokenizer


@dataclass(frozen=True, slots=True)
class Request:
    prompt: str  # the prompt text, starting with the literal BOS "<s>"
    prompt_ids: list[int]  # its exact tokenization, no special tokens added
    max_new_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    text: str  # generated text, without the EOS
    n_tokens: int  # generated tokens, EOS included when one was generated
    finish_reason: str = "stop"  # "stop" (EOS) or "length" (max_new_tokens reached)


class Engine(ABC):
    """Base class for synthesizer backends."""

    name: ClassVar[str] = "engine"

    def __init__(self, tokenizer: Tokenizer, max_model_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Greedy continuations of `requests`, in the same order."""

    def describe(self) -> dict[str, Any]:
        """What produced the output, recorded in manifest.json."""
        return {"engine": self.name, "tokenizer": self.tokenizer.name}

    def close(self) -> None:
        """Release model memory; the engine is not used afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EngineError(RuntimeError):
    """An engine broke its contract (wrong number of outputs, a crash mid-batch)."""
