"""transformers engine: static batches of greedy `generate` calls.

Prompts arrive as exact token ids (one BOS). They are sorted by length so a batch holds
prompts of similar length (less padding), left-padded, and batches are bounded by a token
budget: batch_size * (longest prompt + max_new_tokens) <= max_batch_tokens, which bounds the
KV cache. On a GPU the default budget is what half of the free memory holds in KV cache after
the weights are loaded (decoding is bound by per-step overhead, so larger batches raise
throughput until the GPU is busy); on CPU it is 16,384 tokens. bf16 (fp16 where bf16 is
unsupported) on GPU, fp32 on CPU. Generation stops at EOS. `static_cache` pre-allocates the
KV cache, which lets transformers compile the decoding step (CUDA graphs); prompt widths are
then rounded up to a multiple of 128 tokens so few shapes are compiled. `continuous_batching`
uses transformers' continuous batching instead: one manager for the engine's life
(hf_continuous.py), stopped by `close`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import UsageError, first_line
from ..tokenization import Tokenizer
from .base import Completion, Engine, Request
from .options import DEFAULT_MAX_MODEL_LEN, EngineOptions

if TYPE_CHECKING:
    from .hf_continuous import ContinuousBatcher

# Default token budgets per batch. On a GPU a 7B Mistral keeps 128 KiB of KV cache
# per token in bf16, so 65,536 tokens is ~8 GiB of cache next to ~14.5 GiB of weights.
GPU_BATCH_TOKENS = 65_536  # the floor of the memory-derived GPU default
CPU_BATCH_TOKENS = 16_384
MAX_BATCH_SIZE = 256
KV_MEMORY_SHARE = 0.5  # of the free GPU memory, for the KV cache of one batch
STATIC_WIDTH_STEP = 128


class HFOptions(EngineOptions):
    continuous_batching: bool = Field(
        False, description="transformers' continuous batching (paged attention) instead of static batches."
    )
    max_batch_size: int = Field(MAX_BATCH_SIZE, gt=0, description="Most sequences in one static batch.")
    static_cache: bool = Field(
        False, description="Static KV cache: transformers compiles the decoding step (CUDA graphs)."
    )


class HFEngine(Engine):
    name = "hf"
    Options = HFOptions

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        max_batch_tokens: int | None = None,
        model_name: str = "",
    ) -> None:
        import torch

        super().__init__(
            tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer), max_model_len
        )
        self.torch = torch
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.model_name = model_name
        on_gpu = self.device.type != "cpu"
        if max_batch_tokens is None:
            max_batch_tokens = gpu_batch_tokens(torch, model) if on_gpu else CPU_BATCH_TOKENS
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = MAX_BATCH_SIZE
        self.static_cache = False
        backend = self.tokenizer.backend
        self.eos_id = getattr(backend, "eos_token_id", None)
        if self.eos_id is None:
            self.eos_id = self.tokenizer.token_id("</s>")
        pad = getattr(backend, "pad_token_id", None)
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        self.ignore_eos = False  # benchmarks force full-length generations
        # transformers' continuous batching (paged attention, `generate_batch`) instead of static
        # length-sorted batches: no padding, finished sequences leave the batch at once.
        self.continuous_batching = False
        self._batcher: ContinuousBatcher | None = None  # its manager, started on first use

    def _stop_continuous(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None

    @classmethod
    def from_options(cls, options: HFOptions) -> HFEngine:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        options = cls.options_of(options)
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = _pick_dtype(torch, options.dtype, device)
        from ..hub import locate

        tok_source, model_source = locate(options.tokenizer or options.model), locate(options.model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                tok_source.name, trust_remote_code=options.trust_remote_code,
                local_files_only=tok_source.local_only,
            )  # fmt: skip
            model = AutoModelForCausalLM.from_pretrained(
                model_source.name, dtype=dtype, trust_remote_code=options.trust_remote_code,
                local_files_only=model_source.local_only,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's to fix
            raise UsageError(f"cannot load the model {options.model}: {first_line(exc)}") from None
        model.to(device)
        tok = Tokenizer(tokenizer, name=options.tokenizer or options.model)
        engine = cls(model, tok, options.max_model_len, options.max_batch_tokens, options.model)
        engine.continuous_batching = options.continuous_batching
        engine.max_batch_size = options.max_batch_size
        engine.static_cache = options.static_cache
        return engine

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": self.model_name,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "max_batch_tokens": self.max_batch_tokens,
        }

    def batches(self, requests: Sequence[Request]) -> list[list[int]]:
        """Indices of `requests` grouped into length-sorted, token-bounded batches."""
        order = sorted(range(len(requests)), key=lambda i: (len(requests[i].prompt_ids), i))
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            need = len(requests[i].prompt_ids) + requests[i].max_new_tokens
            width = max(longest, need)
            if current and (
                width * (len(current) + 1) > self.max_batch_tokens or len(current) >= self.max_batch_size
            ):
                batches.append(current)
                current, width = [], need
            current.append(i)
            longest = width
        if current:
            batches.append(current)
        return batches

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self.continuous_batching:
            return self._generate_continuous(requests)
        self._stop_continuous()  # the manager switched the attention implementation: switch it back
        out: list[Completion | None] = [None] * len(requests)
        for batch in self.batches(requests):
            for i, completion in zip(batch, self._generate_batch([requests[i] for i in batch])):
                out[i] = completion
        return out  # type: ignore[return-value]

    def _generate_batch(self, requests: list[Request]) -> list[Completion]:
        torch = self.torch
        width = max(len(r.prompt_ids) for r in requests)
        if self.static_cache:  # few distinct shapes: each one is compiled once
            width = -(-width // STATIC_WIDTH_STEP) * STATIC_WIDTH_STEP
        max_new = max(r.max_new_tokens for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, r in enumerate(requests):  # left padding: the prompt ends at the last column
            n = len(r.prompt_ids)
            ids[row, width - n :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        with torch.inference_mode():
            generated = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=None if self.ignore_eos else self.eos_id,
                pad_token_id=self.pad_id,
                **({"cache_implementation": "static"} if self.static_cache else {}),
            )
        new_tokens = generated[:, width:].tolist()
        return [self._completion(row[: r.max_new_tokens]) for r, row in zip(requests, new_tokens)]

    def _generate_continuous(self, requests: Sequence[Request]) -> list[Completion]:
        from .hf_continuous import ContinuousBatcher

        if self._batcher is None:  # one manager for the engine's life (see hf_continuous.py)
            cache_tokens = self.max_batch_tokens if self.device.type == "cpu" else None
            self._batcher = ContinuousBatcher(self.model, self.pad_id, self.max_model_len, cache_tokens)
        eos = -1 if self.ignore_eos or self.eos_id is None else self.eos_id  # -1: never stop
        outputs = self._batcher.run([(r.prompt_ids, r.max_new_tokens) for r in requests], eos)
        completions = []
        for i, (r, result) in enumerate(zip(requests, outputs)):
            if result is None:  # transformers' worker thread died before answering
                raise RuntimeError(
                    f"continuous batching returned no result for request {i} of {len(requests)} "
                    "(transformers' generation thread ended early)"
                )
            if result.error:
                raise RuntimeError(f"continuous batching failed on a request: {result.error}")
            completions.append(self._completion(list(result.generated_tokens)[: r.max_new_tokens]))
        return completions

    def _completion(self, row: list[int]) -> Completion:
        """One generation's new token ids (at most max_new_tokens) as a Completion, cut at EOS."""
        if self.eos_id is not None and self.eos_id in row and not self.ignore_eos:
            cut = row.index(self.eos_id)
            return Completion(self.tokenizer.decode(row[:cut]), cut + 1, "stop")
        return Completion(self.tokenizer.decode(row), len(row), "length")

    def close(self) -> None:
        self._stop_continuous()
        self.model = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


def gpu_batch_tokens(torch: Any, model: Any) -> int:
    """The default token budget on a GPU: KV cache for half the free memory (at least 65,536)."""
    config = getattr(model, "config", None)
    try:
        free, _ = torch.cuda.mem_get_info(next(model.parameters()).device)
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        per_token = 2 * layers * kv_heads * head_dim * next(model.parameters()).element_size()
    except (AttributeError, TypeError, RuntimeError):  # an unusual model: the fixed default
        return GPU_BATCH_TOKENS
    return max(GPU_BATCH_TOKENS, int(free * KV_MEMORY_SHARE / per_token))


def _pick_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype != "auto":
        try:
            return {
                "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16,
                "fp16": torch.float16,
                "float16": torch.float16,
                "fp32": torch.float32,
                "float32": torch.float32,
            }[dtype]
        except KeyError:
            raise UsageError(f"unknown --dtype {dtype!r}; use auto, bf16, fp16 or fp32") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
