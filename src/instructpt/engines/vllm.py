"""vLLM, in process: continuous batching, prefix caching, chunked prefill, barrier-free.

Prompts go in as token ids (`TokensPrompt`), so there is exactly one BOS (docs/method.md §2); decoding is
greedy. Automatic prefix caching is on: a round r+1 prompt starts with round r's context, so
its prefix is already in the KV cache. The engine is vLLM's `AsyncLLM` (AsyncLLMEngine), run on
an event loop in a background thread; `agenerate` submits one request from any event loop, so
the barrier-free scheduler keeps requests from many chains, rounds and shards in flight
together, and `generate` (a whole round) uses the same path. Extra `[vllm]`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from ..errors import MissingExtraError, UsageError, first_line
from ..tokenization import load_tokenizer
from .base import Completion, Engine, Request
from .options import EngineOptions


class VLLMOptions(EngineOptions):
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model is split across.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of GPU memory for weights and KV cache."
    )
    quantization: str | None = Field(None, description="e.g. fp8, awq, gptq.")
    max_num_seqs: int = Field(256, ge=1, description="Most sequences batched at once.")


class VLLMEngine(Engine):
    name = "vllm"
    Options = VLLMOptions
    concurrent = True  # AsyncLLM: requests from many chains in flight, no round barriers

    def __init__(self, options: VLLMOptions) -> None:
        options = self.options_of(options)
        try:
            from vllm import SamplingParams  # noqa: F401
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError:
            raise MissingExtraError("the vllm engine", "vllm", "vllm") from None
        super().__init__(load_tokenizer(options.tokenizer or options.model), options.max_model_len)
        args = AsyncEngineArgs(
            model=options.model,
            tokenizer=options.tokenizer or options.model,
            dtype=options.dtype if options.dtype != "auto" else "auto",
            max_model_len=options.max_model_len,
            tensor_parallel_size=options.tensor_parallel_size,
            gpu_memory_utilization=options.gpu_memory_utilization,
            quantization=options.quantization,
            max_num_seqs=options.max_num_seqs,
            enable_prefix_caching=True,
            enable_chunked_prefill=True,
            trust_remote_code=options.trust_remote_code,
            seed=0,
        )
        self.model_name = options.model
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-loop", daemon=True)
        self._thread.start()

        async def build() -> Any:
            return AsyncLLM.from_engine_args(args)

        try:
            self.llm = asyncio.run_coroutine_threadsafe(build(), self._loop).result()
        except Exception as exc:  # noqa: BLE001 - an unloadable model is the user's to fix
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise UsageError(f"vLLM cannot load {options.model}: {first_line(exc)}") from None

    @classmethod
    def from_options(cls, options: VLLMOptions) -> VLLMEngine:
        return cls(options)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model_name, "prefix_caching": True}

    async def _generate_one(self, request: Request) -> Completion:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(temperature=0.0, max_tokens=request.max_new_tokens, skip_special_tokens=True,
                                output_kind=RequestOutputKind.FINAL_ONLY)  # fmt: skip
        final = None
        async for output in self.llm.generate(TokensPrompt(prompt_token_ids=list(request.prompt_ids)), params,
                                              request_id=f"ipt-{next(self._ids)}"):  # fmt: skip
            final = output
        assert final is not None
        out = final.outputs[0]
        reason = "length" if out.finish_reason == "length" else "stop"
        return Completion(out.text, len(out.token_ids), reason)

    async def agenerate(self, request: Request) -> Completion:
        future = asyncio.run_coroutine_threadsafe(self._generate_one(request), self._loop)
        return await asyncio.wrap_future(future)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        async def all_of() -> list[Completion]:
            return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

        return asyncio.run_coroutine_threadsafe(all_of(), self._loop).result()

    def close(self) -> None:
        llm, self.llm = self.llm, None
        try:
            if llm is not None:
                llm.shutdown()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
