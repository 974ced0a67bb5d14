"""A model-free synthesizer: reading-comprehension tasks mined from the text by rules.

After the mining of Cheng et al., "Adapting Large Language Models via Reading
Comprehension" (ICLR 2024), which the Instruction Pre-Training paper uses as its rule-based
ablation. From the document alone it writes:

* **summarization**: the title (a short first line) as the answer to "what is this about?",
  and "write an article about <title>" answered with the opening of the body;
* **word-to-text**: "X is defined as Y" / "X refers to Y" / "X is known as Y" -> "What does X
  mean?" -> Y;
* **natural language inference** from sentence pairs joined by connectives: therefore / thus /
  hence / as a result -> entailment ("yes"), however / but -> contradiction ("no"), moreover /
  also / in addition -> neutral ("it is not possible to tell"), as multiple-choice pairs;
* **cause and effect** from the same "therefore" pairs, and **paraphrase** from "in other
  words / that is / namely";
* **text completion** at a sentence boundary.

It is a cheaper and much weaker baseline than the LLM synthesizer: its pairs are shallow,
templated and only as varied as the text's own wording. It exists for runs without a GPU,
for the offline demo and tests, and as the paper's ablation. It is deterministic and runs at
thousands of documents per second (BENCHMARKS.md).

Its figures are true, as a model's would be: it writes the whole pairs that fit in
`max_new_tokens` with the closing EOS, counts the tokens it wrote (EOS included) and ends
with `finish_reason="stop"`; only when not even its first pair fits is the generation cut
at `max_new_tokens` tokens, with `finish_reason="length"`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..synthesis.format import CON_CLOSE, CON_OPEN, Pair, serialize_pairs
from .base import Completion, Request
from .function import FunctionEngine, load_tokenizer_for
from .options import DEFAULT_MAX_MODEL_LEN

MAX_PAIRS = 8
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_DEFINITION = re.compile(
    r"^(?:(?:The|A|An)\s+)?(?P<term>[A-Z]?[\w'’ -]{2,60}?)(?:\s*\([^)]*\))?,?\s+"
    r"(?P<verb>is defined as|refers to|is known as|is called|means)\s+(?P<body>.{8,})$"
)
_CONNECTIVES = (
    ("entailment", ("Therefore", "Thus", "Hence", "As a result", "Consequently", "So")),
    ("contradiction", ("However", "But", "Yet", "Nevertheless", "In contrast")),
    ("neutral", ("Moreover", "In addition", "Also", "Furthermore", "Additionally")),
    ("paraphrase", ("In other words", "That is", "Namely", "Put simply")),
)
_LEADS = {word: relation for relation, words in _CONNECTIVES for word in words}
_LEAD = re.compile(r"^(" + "|".join(sorted(map(re.escape, _LEADS), key=len, reverse=True)) + r")\b,?\s+(.+)$")
NLI_OPTIONS = ("yes", "it is not possible to tell", "no")
_NLI_ANSWER = {"entailment": "yes", "neutral": "it is not possible to tell", "contradiction": "no"}


def sentences(text: str) -> list[str]:
    """Sentences of a paragraph-structured text (lines kept apart, then split at . ! ?)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def _title_and_body(text: str) -> tuple[str | None, str]:
    first, _, rest = text.strip().partition("\n")
    first = first.strip()
    if rest.strip() and 2 <= len(first.split()) <= 16 and not first.endswith((".", ":", ";", ",")):
        return first, rest.strip()
    return None, text.strip()


def _clause(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:] if sentence else sentence


def mine_pairs(text: str, max_pairs: int = MAX_PAIRS) -> list[Pair]:
    """Reading-comprehension pairs mined from `text` (deterministic, never raises)."""
    title, body = _title_and_body(text)
    sents = sentences(body)
    pairs: list[Pair] = []
    if title:
        pairs.append(Pair("What is the most suitable title for this text?", title))
    for s in sents:
        m = _DEFINITION.match(s)
        if m and len(pairs) < max_pairs:
            term = m.group("term").strip()
            body_text = m.group("body").rstrip(" .")
            if len(term.split()) <= 6:
                pairs.append(
                    Pair(f'What does "{term}" mean, according to the text?', _clause(body_text) + ".")
                )
    for prev, cur in zip(sents, sents[1:]):
        if len(pairs) >= max_pairs:
            break
        m = _LEAD.match(cur)
        if not m or len(prev.split()) < 4:
            continue
        relation = _LEADS[m.group(1)]
        claim = _clause(m.group(2))
        lead = _LEAD.match(prev)  # a premise that itself opens with a connective loses it
        prev = _clause(lead.group(2)) if lead else prev
        if relation == "paraphrase":
            pairs.append(Pair(f'Rephrase this sentence: "{prev}"', claim))
            continue
        options = "\n".join(f"- {o}" for o in NLI_OPTIONS)
        pairs.append(Pair(
            f"Premise: \"{prev}\"\nHypothesis: \"{claim}\"\nDoes the premise entail the hypothesis?\n"
            f"Options:\n{options}",
            _NLI_ANSWER[relation],
        ))  # fmt: skip
        if relation == "entailment" and len(pairs) < max_pairs:
            pairs.append(Pair(f'"{prev}" What is the result of this?', claim))
    if len(sents) >= 3 and len(pairs) < max_pairs:
        k = len(sents) // 2
        pairs.append(Pair(f'Complete the text: "{sents[k - 1]}" What comes next?', sents[k]))
    if title and len(pairs) < max_pairs and sents:
        opening = " ".join(sents[:2])
        pairs.append(Pair(f'Write the opening of an article titled "{title}".', opening))
    return pairs[:max_pairs]


def prompt_pairs(prompt: str) -> list[Pair]:
    """The pairs the rules engine mines for one prompt: about its last document."""
    start = prompt.rfind(CON_OPEN)
    end = prompt.rfind(CON_CLOSE)
    text = prompt[start + len(CON_OPEN) : end].strip() if 0 <= start < end else ""
    return mine_pairs(text)


def respond(prompt: str) -> str:
    """The rules engine's generation for one prompt, with no token budget."""
    return serialize_pairs(prompt_pairs(prompt))


class RulesEngine(FunctionEngine):
    name = "rules"

    def __init__(self, tokenizer: Any, max_model_len: int = DEFAULT_MAX_MODEL_LEN) -> None:
        super().__init__(lambda prompts: [respond(p) for p in prompts], tokenizer, max_model_len)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        mined = [prompt_pairs(r.prompt) for r in requests]
        texts = [serialize_pairs(pairs) for pairs in mined]
        counts = [len(ids) for ids in self.tokenizer.encode_batch(texts)]
        out = []
        for request, pairs, text, n in zip(requests, mined, texts, counts):
            if n + 1 <= request.max_new_tokens:  # + 1: the EOS that ends it
                out.append(Completion(text, n + 1, "stop"))
            else:
                out.append(self._within_budget(pairs, request.max_new_tokens))
        return out

    def _within_budget(self, pairs: list[Pair], budget: int) -> Completion:
        """The most leading pairs that fit in `budget` tokens with the EOS, or, when not even the
        first does, the generation cut after its first `budget` tokens."""
        for k in range(len(pairs) - 1, 0, -1):
            text = serialize_pairs(pairs[:k])
            n = self.tokenizer.count(text)
            if n + 1 <= budget:
                return Completion(text, n + 1, "stop")
        text = serialize_pairs(pairs[:1])
        ids = self.tokenizer.encode(text)
        if budget <= 0:
            return Completion("", 0, "length")
        offsets = self.tokenizer.char_offsets(text)
        if offsets is not None and len(offsets) == len(ids):
            cut = text[: offsets[budget - 1][1]]
        else:
            cut = self.tokenizer.decode(ids[:budget])
        return Completion(cut, budget, "length")

    @classmethod
    def from_options(cls, options: Any) -> RulesEngine:
        return cls(load_tokenizer_for(options), options.max_model_len)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "tokenizer": self.tokenizer.name}
