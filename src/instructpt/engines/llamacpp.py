"""llama.cpp through llama-cpp-python: GGUF models on a laptop CPU (GPU offload where built).

Prompts go in as token ids from the GGUF's own vocabulary, so the one BOS is the `<s>` at the
start of the prompt text (docs/method.md §2); decoding is greedy (temperature 0) and stops at EOS.
Budgets use the GGUF's tokenizer through llama.cpp (`--tokenizer` may point to the original
model's folder instead: its token counts must match). Requests run one after another: a
laptop CPU gains little from batching with llama.cpp. Extra `[gguf]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from ..errors import MissingExtraError, UsageError, first_line
from ..tokenization import Tokenizer, load_tokenizer
from .base import Completion, Engine, Request
from .options import EngineOptions


class _LlamaTokenizer:
    """`encode(text, add_special_tokens=False)` with llama.cpp's own tokenizer."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.llama.detokenize(ids).decode("utf-8", errors="replace")


class LlamaCppOptions(EngineOptions):
    n_gpu_layers: int = Field(
        0, ge=-1, description="Layers offloaded to the GPU (-1: all) where llama.cpp is built for one."
    )
    n_threads: int | None = Field(None, ge=1, description="CPU threads [default: llama.cpp's choice].")


class LlamaCppEngine(Engine):
    name = "llamacpp"
    Options = LlamaCppOptions

    def __init__(self, options: LlamaCppOptions) -> None:
        options = self.options_of(options)
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingExtraError("the llamacpp engine", "gguf", "llama_cpp") from None
        try:
            self.llama = Llama(model_path=options.model, n_ctx=options.max_model_len, seed=0, verbose=False,
                               n_gpu_layers=options.n_gpu_layers,
                               n_threads=options.n_threads)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a missing or bad GGUF is the user's to fix
            raise UsageError(f"llama.cpp cannot load {options.model}: {first_line(exc)}") from None
        tokenizer = (
            load_tokenizer(options.tokenizer)
            if options.tokenizer
            else Tokenizer(_LlamaTokenizer(self.llama), name=f"{options.model} (gguf)")
        )
        super().__init__(tokenizer, options.max_model_len)
        self.model_name = options.model
        self.eos_id = self.llama.token_eos()

    @classmethod
    def from_options(cls, options: LlamaCppOptions) -> LlamaCppEngine:
        return cls(options)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model_name}

    def generate_ids(self, request: Request) -> list[int]:
        """Greedy continuation ids of one request, EOS excluded."""
        ids: list[int] = []
        for token in self.llama.generate(list(request.prompt_ids), top_k=1, top_p=1.0, temp=0.0,
                                         repeat_penalty=1.0, reset=True):  # fmt: skip
            if token == self.eos_id:
                break
            ids.append(token)
            if len(ids) >= request.max_new_tokens:
                break
        return ids

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out = []
        for request in requests:
            ids = self.generate_ids(request)
            reason = "length" if len(ids) >= request.max_new_tokens else "stop"
            text = self.llama.detokenize(ids).decode("utf-8", errors="replace")
            out.append(Completion(text, len(ids) + (reason == "stop"), reason))
        return out

    def close(self) -> None:
        llama, self.llama = self.llama, None
        if llama is not None:
            llama.close()
