"""Adapt a plain Python function into an engine.

`FunctionEngine(fn, tokenizer)` wraps `fn(prompts: list[str]) -> list[str]`: any
model call, an HTTP client, or a scripted fake in tests. The tokenizer (object or
path) gives the exact length budgets; it should be the one `fn`'s model uses.
`fn` may also return `Completion`s when it knows its own token counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UsageError
from ..tokenization import Tokenizer, load_tokenizer
from .base import Completion, Engine, EngineError, Request
from .options import DEFAULT_MAX_MODEL_LEN

PromptFunction = Callable[[list[str]], Sequence["str | Completion"]]


class FunctionEngine(Engine):
    name = "function"

    def __init__(
        self,
        fn: PromptFunction,
        tokenizer: Any,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(load_tokenizer(tokenizer), max_model_len)
        self.fn = fn
        self.batch_size = batch_size

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        step = self.batch_size or max(len(requests), 1)
        out: list[Completion] = []
        for start in range(0, len(requests), step):
            chunk = requests[start : start + step]
            results = list(self.fn([r.prompt for r in chunk]))
            if len(results) != len(chunk):
                raise EngineError(
                    f"the engine function returned {len(results)} outputs for {len(chunk)} prompts"
                )
            out.extend(self._completions(chunk, results))
        return out

    def _completions(self, chunk: Sequence[Request], results: list) -> list[Completion]:
        texts = [r for r in results if isinstance(r, str)]
        counts = iter(len(ids) for ids in self.tokenizer.encode_batch(texts))
        done: list[Completion] = []
        for request, result in zip(chunk, results):
            if isinstance(result, Completion):
                done.append(result)
            elif isinstance(result, str):
                n = next(counts)
                reason = "length" if n >= request.max_new_tokens else "stop"
                done.append(Completion(result, n, reason))
            else:
                raise EngineError(f"the engine function returned {type(result).__name__}, expected str")
        return done

    def describe(self) -> dict[str, Any]:
        fn_name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return {**super().describe(), "function": fn_name}


def from_function(
    fn: PromptFunction,
    tokenizer: Any,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    batch_size: int | None = None,
) -> FunctionEngine:
    """An engine that calls `fn(prompts) -> generations` (see `FunctionEngine`)."""
    if not callable(fn):
        raise UsageError(f"from_function needs a function fn(prompts: list[str]) -> list[str], "
                         f"not a {type(fn).__name__}")  # fmt: skip
    return FunctionEngine(fn, tokenizer, max_model_len=max_model_len, batch_size=batch_size)


def load_tokenizer_for(options: Any) -> Tokenizer:
    return load_tokenizer(options.tokenizer or options.model)
