"""The engine protocol: token-id prompts in, generated text out.

An engine is anything that can continue a batch of prompts greedily. The rounds
logic builds every prompt, tokenizes it exactly once with `engine.tokenizer` (no
special tokens added) and guarantees `len(prompt_ids) + max_new_tokens <=
engine.max_model_len`; the engine only generates. Write your own by subclassing
`Engine` and implementing `generate`, then `register_engine` it (see registry.py).

Engines that serve many independent requests at once (a server, vLLM's async engine) set
`concurrent = True` (implementing `agenerate` does so by itself): the synthesize loop then
keeps every chain's next request in flight through `agenerate` instead of running round
by round through `generate`. Both paths give the same output; engines that batch statically
(hf) keep `concurrent = False`. An engine's own settings are a pydantic model, `Options`
(see options.py).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..tokenization import Tokenizer
from .options import DEFAULT_MAX_MODEL_LEN, EngineOptions, build_options


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
    # The engine's options (`-O key=value`, `synthesize.engine_options:`): EngineOptions or a subclass.
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    # True: the synthesize loop sends single requests through `agenerate`, many in flight, with no
    # barrier between rounds; False: whole rounds through `generate`. A subclass that implements
    # `agenerate` is concurrent unless it says otherwise.
    concurrent: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "agenerate" in cls.__dict__ and "concurrent" not in cls.__dict__:
            cls.concurrent = True

    @classmethod
    def options_of(cls, options: Any) -> Any:
        """`options` as this engine's `Options` (a plain EngineOptions or a mapping is validated)."""
        return options if isinstance(options, cls.Options) else build_options(cls.name, cls.Options, options)

    def __init__(self, tokenizer: Tokenizer, max_model_len: int = DEFAULT_MAX_MODEL_LEN) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Greedy continuations of `requests`, in the same order."""

    async def agenerate(self, request: Request) -> Completion:
        """One request, awaitable (default: `generate` on it in a worker thread)."""
        (completion,) = await asyncio.to_thread(self.generate, [request])
        return completion

    async def aclose(self) -> None:
        """Release what `agenerate` opened on the running event loop (default: nothing)."""

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
