"""The hf engine's GPU token budget: KV cache for half the free memory, never under 65,536."""

from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from instructpt.engines.hf import GPU_BATCH_TOKENS, KV_MEMORY_SHARE, gpu_batch_tokens  # noqa: E402


def fake_torch(free: int):
    cuda = types.SimpleNamespace(mem_get_info=lambda device=None: (free, 2 * free))
    return types.SimpleNamespace(cuda=cuda)


def tiny_model():
    config = transformers.MistralConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
    )
    return transformers.MistralForCausalLM(config)


def test_budget_is_kv_cache_for_half_the_free_memory():
    model = tiny_model()
    per_token = 2 * 2 * 2 * 16 * 4  # K and V x layers x KV heads x head_dim x fp32 bytes
    free = 100 * 2**30
    assert gpu_batch_tokens(fake_torch(free), model) == int(free * KV_MEMORY_SHARE / per_token)


def test_budget_never_falls_under_the_old_default():
    assert gpu_batch_tokens(fake_torch(2**20), tiny_model()) == GPU_BATCH_TOKENS


def test_an_unusual_model_gets_the_fixed_default():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 2)

    assert gpu_batch_tokens(fake_torch(100 * 2**30), Odd()) == GPU_BATCH_TOKENS
