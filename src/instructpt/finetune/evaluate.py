"""How good is a synthesizer, on held-out fine-tuning records (docs/method.md §7).

1. **Response accuracy**: prompt with the document and the gold instruction
   (`<s> <CON> context </CON>\\n\\n<QUE> instruction <ANS>`), decode greedily, keep the text up
   to `</END>`, and score it against the gold response with exact match and token F1
   (SQuAD normalization: lowercase, no punctuation or articles, whitespace collapsed).
2. **Generated pairs**: prompt with the document alone, parse the generation (docs/method.md §2), and
   report parse rate, pairs per document, the kind mix, how grounded responses are in the
   document (share of a response's normalized tokens that occur in it) and the share of
   duplicate instructions across documents.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..engines.base import Engine, Request
from ..synthesis.format import ANS, END, QUE, parse_generation, reading_material
from .data import FtRecord

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction), normalize(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def groundedness(response: str, document: str) -> float:
    """Share of the response's normalized tokens that occur in the document."""
    tokens = normalize(response)
    if not tokens:
        return 0.0
    vocabulary = set(normalize(document))
    return sum(t in vocabulary for t in tokens) / len(tokens)


def response_prompt(context: str, instruction: str) -> str:
    return f"{reading_material(context)}{QUE} {instruction} {ANS}"


def cut_response(generation: str) -> str:
    return generation.split(END, 1)[0].strip()


def _generate(engine: Engine, prompts: list[str], max_new_tokens: int) -> list[str]:
    budget = engine.max_model_len - max_new_tokens
    encoded = engine.tokenizer.encode_batch(prompts)
    requests = [Request(p, ids, max_new_tokens) for p, ids in zip(prompts, encoded) if len(ids) <= budget]
    if len(requests) != len(prompts):
        raise ValueError("a held-out prompt is longer than the model length budget")
    return [c.text for c in engine.generate(requests)]


def evaluate_synthesizer(records: Sequence[FtRecord], engine: Engine, max_new_tokens: int = 400,
                         response_tokens: int = 128) -> dict[str, Any]:  # fmt: skip
    """Both evaluations on `records` with `engine`; returns the JSON report."""
    from ..synthesis.classify import classify

    budget = engine.max_model_len - max(max_new_tokens, response_tokens)
    lengths = engine.tokenizer.encode_batch([reading_material(r.context) for r in records])
    usable = [r for r, ids in zip(records, lengths) if len(ids) + 64 <= budget]
    skipped = len(records) - len(usable)

    items = [(r, p) for r in usable for p in r.pairs]
    predictions = _generate(
        engine, [response_prompt(r.context, p.instruction) for r, p in items], response_tokens
    )
    em = [exact_match(cut_response(g), p.response) for (_, p), g in zip(items, predictions)]
    f1 = [token_f1(cut_response(g), p.response) for (_, p), g in zip(items, predictions)]
    by_dataset: dict[str, list[float]] = {}
    for (r, _), score in zip(items, f1):
        by_dataset.setdefault(r.dataset, []).append(score)

    generations = _generate(engine, [reading_material(r.context) for r in usable], max_new_tokens)
    pairs_total = fragments = 0
    kinds: Counter[str] = Counter()
    grounded: list[float] = []
    instructions: Counter[str] = Counter()
    zero = 0
    for record, generation in zip(usable, generations):
        parsed = parse_generation(generation)
        dropped = sum(v for k, v in parsed.dropped.items() if k != "duplicate_instruction")
        pairs_total += len(parsed.pairs)
        fragments += len(parsed.pairs) + dropped
        zero += not parsed.pairs
        for pair in parsed.pairs:
            view = classify(pair)
            kinds[view if isinstance(view, str) else view.kind] += 1
            grounded.append(groundedness(pair.response, record.context))
            instructions[pair.instruction.casefold()] += 1
    duplicates = sum(n - 1 for n in instructions.values())
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else 0.0  # noqa: E731
    return {
        "documents": len(usable),
        "skipped_too_long": skipped,
        "response_accuracy": {
            "pairs": len(items), "exact_match": mean(em), "token_f1": mean(f1),
            "token_f1_by_dataset": {k: mean(v) for k, v in sorted(by_dataset.items())},
        },
        "generated_pairs": {
            "pairs": pairs_total,
            "pairs_per_document": round(pairs_total / len(usable), 4) if usable else 0.0,
            "parse_rate": round(pairs_total / fragments, 4) if fragments else 0.0,
            "documents_without_pairs": zero, "kinds": dict(sorted(kinds.items())),
            "groundedness": mean(grounded),
            "duplicate_instruction_rate": round(duplicates / pairs_total, 4) if pairs_total else 0.0,
        },
    }  # fmt: skip


def summary_text(report: dict[str, Any]) -> str:
    ra, gp = report["response_accuracy"], report["generated_pairs"]
    return "\n".join([
        f"Synthesizer evaluation on {report['documents']} held-out documents "
        f"({report['skipped_too_long']} skipped as too long).",
        f"Response accuracy on {ra['pairs']} gold instructions: exact match {ra['exact_match']:.1%}, "
        f"token F1 {ra['token_f1']:.1%}.",
        f"Generated pairs: {gp['pairs_per_document']:.2f} per document, parse rate {gp['parse_rate']:.1%}, "
        f"{gp['documents_without_pairs']} documents without pairs, groundedness {gp['groundedness']:.1%}, "
        f"duplicate instructions {gp['duplicate_instruction_rate']:.1%}.",
        "Kinds: " + (", ".join(f"{k} {v}" for k, v in gp["kinds"].items()) or "none"),
    ])  # fmt: skip
