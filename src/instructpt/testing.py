"""Tiny offline models for tests, demos and benchmarks (no Hub access needed).

`build_tiny_model(folder)` trains a small Mistral-style tokenizer (BPE with byte
fallback, `<s>`/`</s>`/`<unk>`, SentencePiece-like "▁" spaces) on the given texts and
saves it next to a random-weight `MistralForCausalLM`, loadable with
`from_pretrained(folder)` exactly like the real synthesizer. Needs the `[hf]` extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .format import Pair as _Pair
from .format import build_prompt, serialize_pairs

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]

# Text in the wire format so the tokenizer learns its tags as a real one would.
_FORMAT_SAMPLE = build_prompt("A short document about tokenizers.") + serialize_pairs(
    [_Pair("What is this about?", "Tokenizers."), _Pair("Is it long?\nOptions:\n- Yes\n- No", "No")]
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A Mistral-like BPE tokenizer (`tokenizers.Tokenizer`) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + byte_tokens, show_progress=False
    )
    tok.train_from_iterator([*texts, _FORMAT_SAMPLE], trainer)
    return tok


def build_tiny_model(
    folder: str | Path,
    texts: Iterable[str] = (),
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_position_embeddings: int = 4096,
    seed: int = 0,
    num_heads: int = 4,
    num_kv_heads: int = 2,
) -> Path:
    """Save a random-weight Mistral model and its tokenizer to `folder`; returns it."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    texts = list(texts) or [_FORMAT_SAMPLE]
    backend = train_tokenizer(texts, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = MistralConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,  # vLLM's CPU attention wants head_dim >= 32: hidden 128, 2 heads
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=backend.token_to_id("<s>"),
        eos_token_id=backend.token_to_id("</s>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
