"""Tiny offline models for tests, demos and benchmarks (no Hub access needed).

`build_tiny_model(folder)` trains a small Mistral-style tokenizer (BPE with byte
fallback, `<s>`/`</s>`/`<unk>`, SentencePiece-like "▁" spaces) on the given texts and
saves it next to a random-weight `MistralForCausalLM`, loadable with
`from_pretrained(folder)` exactly like the real synthesizer. Needs the `[hf]` extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .synthesis.format import Pair as _Pair
from .synthesis.format import build_prompt, serialize_pairs

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


def save_tiny_tokenizer(folder: str | Path, texts: Iterable[str] = (), vocab_size: int = 2000) -> Path:
    """Save only the tokenizer of `build_tiny_model` to `folder` (tokenizer.json and a
    tokenizer_config.json naming <s>/</s>/<unk>): needs `tokenizers` only, no torch or
    transformers, and loads with either. Enough for `--engine rules` and `mix --tokenizer`."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_tokenizer(list(texts) or [_FORMAT_SAMPLE], vocab_size).save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "model_max_length": 32768}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


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


# -- scripted generations (templify tests and benchmarks/templify_distribution.py) ---------------
_DISTRACTORS = ("quartz", "meadow", "lantern", "harbor", "velvet", "orbit", "saffron", "glacier", "copper")


def scripted_pairs(text: str) -> list[_Pair]:
    """Pairs of all four kinds (free-form, multiple choice, CoT, multiple choice with CoT) about
    `text`, as a synthesizer writes them, chosen deterministically from the text: 1 to 5 pairs,
    a few of them with an unanswerable answer or a "None of the above" option."""
    import hashlib
    import random
    import re

    rng = random.Random(hashlib.blake2b(text.encode(), digest_size=8).digest())
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3] or [text]
    words = list(dict.fromkeys(w.strip(".,;:()\"'").lower() for w in text.split()))
    words = [w for w in words if len(w) > 3 and w.isalpha()] or ["text"]
    pairs: list[_Pair] = []
    for k in range(rng.choice((1, 2, 3, 3, 4, 4, 5, 5))):
        sentence = sentences[k % len(sentences)]
        word = words[(k * 7) % len(words)]
        distractors = rng.sample(_DISTRACTORS, 2)
        kind = rng.choice(("free", "free", "options", "options", "cot", "options_cot"))
        if kind == "free":
            pairs.append(_Pair(f"What does sentence {k + 1} of the text say?", sentence))
        elif kind == "options":
            opts = [word, *distractors]
            rng.shuffle(opts)
            answer = word
            roll = rng.random()
            if roll < 0.05:  # the answer is "none of the above", listed
                opts = [o for o in opts if o != word] + ["None of the above"]
                answer = "None of the above"
            elif roll < 0.1:  # "the text does not say", not listed
                answer = "Not enough information"
            listed = "\n".join(f"- {o}" for o in opts)
            question = f"Which of these words appears in part {k + 1} of the text?"
            pairs.append(_Pair(f"{question}\nOptions:\n{listed}", answer))
        elif kind == "cot":
            n = len(sentence.split())
            final = f"\nTherefore, the answer is {n}" if rng.random() > 0.05 else ""  # 5%: no final answer
            pairs.append(_Pair(
                f"How many words does sentence {k + 1} have?\nLet's think step by step.",
                f"Sentence {k + 1} reads: {sentence} Counting them gives {n}.{final}",
            ))  # fmt: skip
        else:
            first = sentence.split()[0].strip(".,;:()\"'") or "The"
            opts = [first, *distractors]
            rng.shuffle(opts)
            listed = "\n".join(f"- {o}" for o in opts)
            pairs.append(_Pair(
                f"Which word starts sentence {k + 1}?\nOptions:\n{listed}\nLet's think step by step.",
                f"Sentence {k + 1} begins with '{first}'.\nTherefore, the answer is {first}",
            ))  # fmt: skip
    return pairs


def scripted_generate(prompts: list[str]) -> list[str]:
    """A synthesizer stand-in for `from_function`: `scripted_pairs` about each prompt's last
    document, in the wire format (docs/method.md §2)."""
    out = []
    for prompt in prompts:
        start = prompt.rfind("<CON> ") + len("<CON> ")
        document = prompt[start : prompt.rfind(" </CON>")]
        generation = serialize_pairs(scripted_pairs(document))
        if len(document) % 8 == 0:  # now and then an abandoned question glued to the first one
            generation = generation.replace("<QUE> ", "<QUE> Is this the first question? <QUE> ", 1)
        out.append(generation)
    return out
