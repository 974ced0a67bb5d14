"""A model-free engine: deterministic pairs made from the document by rules.

It is not a synthesizer. It exists so that `make demo`, tests and the overhead
benchmark can run the whole pipeline offline in milliseconds, with output that
looks like the synthesizer's (free-form, multiple choice and chain-of-thought
pairs in the SPEC §2 wire format). Each pair is a cloze question about one
sentence of the document currently being read.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..format import CON_CLOSE, CON_OPEN, Pair, serialize_pairs
from .function import FunctionEngine, load_tokenizer_for

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def _digest(text: str) -> int:
    # hashlib, not hash(): str hashes change between processes.
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def rule_pairs(text: str, max_pairs: int = 3) -> list[Pair]:
    """Up to `max_pairs` cloze pairs about `text`, the same every time."""
    sentences = [s.strip() for s in _SENTENCE.split(text) if len(s.split()) >= 5]
    pairs: list[Pair] = []
    for k, sentence in enumerate(sentences[:max_pairs]):
        words = _WORD.findall(sentence)
        if not words:
            continue
        seed = _digest(sentence)
        answer = max(words, key=lambda w: (len(w), w))
        cloze = sentence.replace(answer, "____", 1)
        if k % 3 == 1 and len(set(words)) >= 3:
            options = sorted(set(words), key=lambda w: (_digest(f"{seed}:{w}"), w))[:3]
            if answer not in options:
                options[seed % len(options)] = answer
            listed = "\n".join(f"- {o}" for o in options)
            pairs.append(Pair(f"Fill in the blank: {cloze}\nOptions:\n{listed}", answer))
        elif k % 3 == 2:
            pairs.append(
                Pair(
                    f"Which word completes the sentence? {cloze}\nLet's think step by step.",
                    f"The passage states: {sentence}\nTherefore, the answer is {answer}",
                )
            )
        else:
            pairs.append(Pair(f"Fill in the blank: {cloze}", answer))
    return pairs


def respond(prompt: str) -> str:
    """The rules engine's generation for one prompt: pairs about its last document."""
    start = prompt.rfind(CON_OPEN)
    end = prompt.rfind(CON_CLOSE)
    text = prompt[start + len(CON_OPEN) : end].strip() if 0 <= start < end else ""
    return serialize_pairs(rule_pairs(text))


class RulesEngine(FunctionEngine):
    name = "rules"

    def __init__(self, tokenizer: Any, max_model_len: int = 4096) -> None:
        super().__init__(lambda prompts: [respond(p) for p in prompts], tokenizer, max_model_len)

    @classmethod
    def from_options(cls, options: Any) -> RulesEngine:
        return cls(load_tokenizer_for(options), options.max_model_len)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "tokenizer": self.tokenizer.name}
