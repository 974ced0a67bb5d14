"""Realistic benchmark inputs: prose documents of ~600 tokens and varied synthesizer output.

Documents are built from the sentences of the bundled example corpus (real prose: history,
science, finance, medicine...), shuffled per document into paragraphs until the document
holds about `tokens` tokens of the benchmark tokenizer. Generations follow the synthesizer's
wire format (SPEC §2 / docs/method.md) with 3-6 pairs per document of every kind (free-form,
multiple choice with `Options:`, chain of thought, multiple choice with CoT), built about
each document's own sentences and words, so no two documents get the same generation; the
real fixture generations (tests/data/synthesizer_outputs.jsonl) supply question stems and
whole pairs, and their failure shapes (an unfinished last pair, a repeated question, a
fragment without <QUE>, an abandoned question, garbage) occur at fixed small rates.
Everything is deterministic: the same document always gets the same generation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "corpus.jsonl"
FIXTURES = ROOT / "tests" / "data" / "synthesizer_outputs.jsonl"

# Failure shapes of real generations, per document (rates from the fixtures' kinds).
UNFINISHED_RATE = 0.08  # cut off mid-pair by max_new_tokens
DUPLICATE_RATE = 0.04  # the same question asked twice (different case)
MALFORMED_RATE = 0.02  # a fragment without <QUE>
ABANDONED_RATE = 0.02  # "<QUE> ... <QUE> ..." (an abandoned question)
GARBAGE_RATE = 0.01  # no pair at all
KIND_WEIGHTS = {"free": 40, "options": 25, "cot": 20, "options_cot": 15}

_STEMS = (
    "What does the text say about {a}?",
    "Why is {a} mentioned together with {b}?",
    "How many {a} does the passage describe?",
    "Which {a} is named first in the text?",
    "Who is responsible for the {a}?",
    "When did the {a} change, according to the passage?",
    "Where does the text place the {a}?",
    "What is the relationship between {a} and {b}?",
    "According to the article, what happened to the {a}?",
    "What can be inferred about {a} from the text?",
)
_UNANSWERABLE = ("None of the above choices", "None of the options fit", "Not enough information")


@functools.lru_cache(maxsize=1)
def corpus_sentences() -> tuple[str, ...]:
    """Every sentence of the example corpus with at least five words."""
    out = []
    for line in CORPUS.open():
        text = json.loads(line)["text"]
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 5]
    return tuple(out)


@functools.lru_cache(maxsize=1)
def fixture_pairs() -> tuple[tuple[str, str], ...]:
    """The valid (instruction, response) pairs of the real fixture generations."""
    from instructpt.synthesis.format import parse_pairs

    pairs = []
    for line in FIXTURES.open():
        pairs += [(p.instruction, p.response) for p in parse_pairs(json.loads(line)["prediction"])]
    return tuple(pairs)


def chars_per_token(tokenizer: Any) -> float:
    """Characters per token of `tokenizer` (an instructpt Tokenizer) on corpus prose."""
    sample = " ".join(corpus_sentences()[:400])
    return len(sample) / max(1, tokenizer.count(sample))


def prose_documents(n: int, tokens: int, tokenizer: Any, seed: int = 0) -> list[dict[str, str]]:
    """`n` documents of about `tokens` tokens of `tokenizer`, each its own shuffle of prose."""
    sentences = corpus_sentences()
    target_chars = tokens * chars_per_token(tokenizer)
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        paragraphs, paragraph, size = [], [], 0
        while size < target_chars:
            sentence = sentences[rng.randrange(len(sentences))]
            paragraph.append(sentence)
            size += len(sentence) + 1
            if len(paragraph) >= rng.randint(3, 7):
                paragraphs.append(" ".join(paragraph))
                paragraph = []
        if paragraph:
            paragraphs.append(" ".join(paragraph))
        docs.append({"id": f"doc-{i:07d}", "text": "\n\n".join(paragraphs)})
    return docs


def _words(text: str) -> list[str]:
    words = dict.fromkeys(w.strip(".,;:()\"'").lower() for w in text.split())
    return [w for w in words if len(w) > 4 and w.isalpha()] or ["text", "passage", "report"]


def _short(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    return " ".join(words[: rng.randint(3, min(12, len(words)))]).rstrip(".,;:")


def _pair(kind: str, sentences: list[str], words: list[str], rng: random.Random) -> tuple[str, str]:
    a, b, c, d = (rng.choice(words) for _ in range(4))
    question = rng.choice(_STEMS).format(a=a, b=b)
    sentence = rng.choice(sentences)
    if kind == "free":
        return question, sentence if rng.random() < 0.6 else _short(sentence, rng)
    rationale = " ".join(rng.sample(sentences, min(len(sentences), rng.randint(1, 3))))
    if kind == "cot":
        return f"{question}\nLet's think step by step.", (
            f"{rationale}\nTherefore, the answer is {_short(sentence, rng)}"
        )
    options = list(dict.fromkeys([a.capitalize(), b.capitalize(), c.capitalize(), d.capitalize()]))
    options = options[: rng.randint(2, 4)]
    answer = rng.choice(options)
    if rng.random() < 0.06:  # the answer is an unanswerable option, listed
        answer = rng.choice(_UNANSWERABLE)
        options.append(answer)
    listed = "\n- ".join(options)
    if kind == "options":
        return f"{question}\nOptions:\n- {listed}", answer
    return f"{question}\nOptions:\n- {listed}\nLet's think step by step.", (
        f"{rationale}\nTherefore, the answer is {answer}"
    )


def varied_generation(text: str) -> str:
    """The synthesizer's generation for `text` (without EOS): 3-6 pairs of all kinds."""
    from instructpt.synthesis.format import ANS, END, QUE, Pair, serialize_pair

    rng = random.Random(hashlib.blake2b(text.encode(), digest_size=8).digest())
    if rng.random() < GARBAGE_RATE:
        return "lorem ipsum </CON> <CON> ANS QUE END"
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 5] or [text]
    words = _words(text)
    kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=rng.randint(3, 6))
    pairs = [_pair(kind, sentences, words, rng) for kind in kinds]
    if rng.random() < 0.2:  # a real pair from the fixtures, verbatim
        pairs[rng.randrange(len(pairs))] = rng.choice(fixture_pairs())
    parts = [serialize_pair(Pair(q, r)) for q, r in pairs]
    if rng.random() < DUPLICATE_RATE:
        q, r = pairs[0]
        parts.insert(rng.randint(1, len(parts)), serialize_pair(Pair(q.lower(), r)))
    if rng.random() < MALFORMED_RATE:
        parts.insert(rng.randrange(len(parts)), f"{_short(sentences[0], rng)}? {ANS} Yes. {END}")
    if rng.random() < ABANDONED_RATE:
        parts[0] = parts[0].replace(f"{QUE} ", f"{QUE} Is this the first question? {QUE} ", 1)
    generation = "\n\n".join(parts)
    if rng.random() < UNFINISHED_RATE:  # the last pair is cut off mid-answer
        q, r = _pair("free", sentences, words, rng)
        generation += f"\n\n{QUE} {q} {ANS} {r[: len(r) // 2]}"
    return generation


def varied_generate(prompts: list[str]) -> list[str]:
    """A synthesizer stand-in for `from_function`: `varied_generation` of each prompt's
    last document (the one after the last `<CON>`)."""
    out = []
    for prompt in prompts:
        start = prompt.rfind("<CON> ") + len("<CON> ")
        out.append(varied_generation(prompt[start : prompt.rfind(" </CON>")]))
    return out


def bench_tokenizer(vocab: int = 8000) -> tuple[Any, str]:
    """(`tokenizers.Tokenizer`, name): Mistral-7B-v0.1's when mistral-common is installed
    (see common.mistral_v01_tokenizer), else a Mistral-like BPE trained on the corpus."""
    from common import mistral_v01_tokenizer
    from instructpt.testing import train_tokenizer

    mistral = mistral_v01_tokenizer()
    if mistral is not None:
        return mistral, "mistral-7b-v0.1 (from mistral-common)"
    texts = [json.loads(line)["text"] for line in CORPUS.open()]
    return train_tokenizer(texts, vocab), f"bpe-{vocab}-trained-on-examples"


def save_tokenizer(rust: Any, folder: Path) -> Path:
    """A tokenizer folder the CLI can load (`--model`/`--tokenizer`)."""
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_object=rust, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    return folder
