"""Budgets: what a run config will cost before a GPU is booked (`instructpt plan CONFIG`), and
the training-token estimate behind `synthesize --target-tokens`.

The plan reads the corpus (all of it, or the first `--sample N` documents, scaled to the whole
by a cheap record count), counts raw tokens with the synthesizer's tokenizer and fits each
document into the prompt budget exactly as synthesis does (`synthesis/fitting.py`), so the
number of generations includes the parts of split long documents. With `synthesize.fraction`
only the documents it selects (by a hash of their ids, split.py) are counted, as synthesis
converts only those; a sample's selection is by id too, and scaled by the share it read.
Everything after that is an estimate from the constants below, each stated with where it comes from.

The mix totals (planning_mix.py) are counted with `mix.tokenizer` (the trained model's), as
`instructpt mix` counts them: an unweighted source's documents with its BOS/EOS text around each,
exactly (fine-tuning records rendered, the scratch raw share less the converted documents); the
augmented texts' estimate scaled by the corpus' tokens with that tokenizer per synthesizer token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .config import RunConfig
    from .tokenization import Tokenizer

# Synthesis throughput in raw (document) tokens per second per GPU; see BENCHMARKS.md § GPU.
# The paper's figure: about 1 billion raw tokens a day on one A100-80GB with vLLM (docs/method.md §1).
PAPER_A100_VLLM_TOK_PER_S = 11_600
# This project's hf engine on one H200 with the memory-derived default batch budget
# (benchmarks/synthesize_gpu.py, Mistral-7B-shaped model, 600-token documents, 2 rounds).
MEASURED_H200_HF_TOK_PER_S = 5_561
THROUGHPUTS: dict[str, float] = {
    "A100 + vllm engine, the paper": PAPER_A100_VLLM_TOK_PER_S,
    "H200 + hf engine, measured here": MEASURED_H200_HF_TOK_PER_S,
}
# Expected generated tokens per generation as a share of --max-new-tokens: an assumption, not a
# measurement (a finished run's summary.json has the real figure: tokens.generated / entries).
DEFAULT_GENERATED_SHARE = 0.5
# Training tokens of the templified texts per token of document + generation. Measured as
# characters of `templating.render.templify` output over characters of document + raw generation:
# 0.89 on /work fixtures of real synthesizer output (tests/data/synthesizer_outputs.jsonl, 200
# seeds) and 0.99 on examples/corpus.jsonl with `testing.scripted_pairs` (20 seeds): templates
# add words, the wire-format tags and unparsed text go.
TEMPLATE_OVERHEAD = 0.95


def training_tokens(raw_tokens: int, generated_tokens: int) -> int:
    """Estimated training tokens of the augmented texts made from these synthesis tokens."""
    return round((raw_tokens + generated_tokens) * TEMPLATE_OVERHEAD)


def marker_training_tokens(counts: Mapping[str, Any]) -> int:
    """`training_tokens` of one finished synthesize shard, from its marker's counts."""
    return training_tokens(int(counts.get("raw_tokens", 0)), int(counts.get("generated_tokens", 0)))


@dataclass
class _Budget:
    """What `synthesis.rounds._prepare` reads of an engine: its tokenizer and context length."""

    tokenizer: Tokenizer
    max_model_len: int


@dataclass
class CorpusCount:
    """Documents and raw tokens read, and the estimated documents of the whole corpus."""

    documents: int = 0
    rejects: int = 0
    left_out: int = 0  # documents read that `fraction` did not select / `keep_of` refused
    raw_tokens: int = 0
    generations: int = 0
    long_docs_split: int = 0
    long_doc_parts: int = 0
    total_documents: float = 0.0  # estimate for the whole corpus (== documents when all read)
    total_left_out: float = 0.0  # the same for `left_out`

    @property
    def scale(self) -> float:
        return self.total_documents / self.documents if self.documents else 0.0


# A raw source's filter per input file (mixing/split.py `keep_filter`): None keeps every document.
KeepOf = Callable[[Any], Callable[[str], bool] | None]


def count_corpus(inputs: Sequence[Any], tokenizer: Tokenizer, *, text_field: str = "text",
                 id_field: str = "id", response_field: str | None = None, sample: int | None = None,
                 limit: int | None = None, max_model_len: int | None = None, max_new_tokens: int = 400,
                 long_docs: str = "split", max_doc_chars: int | None = None, batch: int = 1000,
                 wrap: tuple[str, str] = ("", ""), reject_duplicate_ids: bool = True, fraction: float = 1.0,
                 keep_of: KeepOf | None = None) -> CorpusCount:  # fmt: skip
    """Count documents, raw tokens and generations of `inputs` (the first `sample` documents,
    scaled). With `max_model_len` None, documents are only counted (no fitting: a raw source),
    each as `wrap[0] + text + wrap[1]` (mix's BOS and EOS text). Only the documents synthesis
    converts are counted: `fraction` selects them as `synthesize --fraction` does (split.py);
    `keep_of(file)` filters a file's ids as mix does (one reader per file, as mix reads)."""
    from .io.corpus import CorpusReader, estimate_records, expand_inputs
    from .records import Reject
    from .split import select
    from .synthesis.rounds import RoundSettings, _prepare

    if sample is not None and sample < 1:
        raise UsageError(f"--sample must be at least 1, got {sample}")
    files = expand_inputs(inputs)
    left_out = [0]

    def reader(some: Sequence[Any]) -> CorpusReader:
        return CorpusReader(some, text_field, id_field, response_field, max_doc_chars=max_doc_chars,
                            reject_duplicate_ids=reject_duplicate_ids)  # fmt: skip

    def read() -> Iterator[Any]:
        left_out[0] = 0
        if keep_of is None:  # as synthesis reads: one reader, then --fraction's selection
            yield from reader(files) if fraction >= 1 else select(reader(files), fraction, left_out)
            return
        for f in files:  # as mix reads a source: file by file, less what its filter refuses
            keep = keep_of(f)
            for item in reader([f]):
                if keep is not None and not isinstance(item, Reject) and not keep(item.id):
                    left_out[0] += 1
                    continue
                yield item

    cap = min(x for x in (sample, limit) if x is not None) if (sample or limit) else None
    settings = RoundSettings(max_new_tokens=max_new_tokens, long_docs=long_docs)
    engine = _Budget(tokenizer, max_model_len) if max_model_len is not None else None
    count = CorpusCount()
    docs: list[Any] = []

    def flush() -> None:
        if engine is not None:
            result, fitted, _ = _prepare(docs, engine, settings)  # type: ignore[arg-type]
            count.raw_tokens += result.counts["raw_tokens"]
            count.generations += len(fitted)
            count.long_docs_split += result.counts["long_docs_split"]
            count.long_doc_parts += result.counts["long_doc_parts"]
        else:
            texts = [f"{wrap[0]}{d.text}{wrap[1]}" for d in docs]
            count.raw_tokens += sum(len(ids) for ids in tokenizer.encode_batch(texts))
        docs.clear()

    for item in read():
        if isinstance(item, Reject):
            count.rejects += 1
            continue
        if cap is not None and count.documents >= cap:
            break
        count.documents += 1
        docs.append(item)
        if len(docs) >= batch:
            flush()
    if docs:
        flush()
    count.left_out = left_out[0]
    count.total_documents, count.total_left_out = float(count.documents), float(count.left_out)
    if sample is not None and count.documents >= sample:  # maybe more: scale by a cheap record count
        records = estimate_records(files)
        seen = count.documents + count.rejects + count.left_out
        if records is None:  # compressed or remote: count the documents without tokenizing
            total = sum(1 for item in read() if not isinstance(item, Reject))
            out = left_out[0]
        else:  # the same shares of the records as of those read: by id, so an even draw
            total = records * count.documents / seen if seen else 0
            out = records * count.left_out / seen if seen else 0
        if limit is not None:
            total = min(total, limit)
        count.total_documents = max(float(count.documents), float(total))
        count.total_left_out = max(float(count.left_out), float(out))
    return count


def plan(config: RunConfig, sample: int | None = None, tok_per_s: float | None = None,
         generated_share: float = DEFAULT_GENERATED_SHARE) -> dict[str, Any]:  # fmt: skip
    """The budget of `config`: documents, raw tokens, generations, generated tokens (bound and
    expected), augmented and mixed training tokens, GPU-hours. Figures scaled from a sample say so."""
    from .planning_mix import MixCounter, mix_budget, scratch_refusal
    from .tokenization import load_tokenizer

    if tok_per_s is not None and not (math.isfinite(tok_per_s) and tok_per_s > 0):
        raise UsageError(f"--tok-per-s must be a positive number, got {tok_per_s}")
    if not 0 < generated_share <= 1:
        raise UsageError(f"--generated-share must be in (0, 1], got {generated_share}")
    s = config.synthesize
    tokenizer = load_tokenizer(s.tokenizer or s.model, hint="set synthesize.tokenizer to a local folder")
    c = count_corpus(s.inputs, tokenizer, text_field=s.text_field, id_field=s.id_field, sample=sample,
                     limit=s.limit, max_model_len=s.max_model_len, max_new_tokens=s.max_new_tokens,
                     long_docs=s.long_docs, max_doc_chars=s.max_doc_chars, batch=s.shard_size,
                     fraction=s.fraction)  # fmt: skip
    k = c.scale
    raw = round(c.raw_tokens * k)
    generations = round(c.generations * k)
    expected_generated = round(generations * s.max_new_tokens * generated_share)
    augmented = training_tokens(raw, expected_generated)
    result: dict[str, Any] = {
        "tokenizer": str(s.tokenizer or s.model),
        "sampled": c.documents < c.total_documents,
        "documents_read": c.documents,
        "documents": round(c.total_documents),
        **({"fraction": s.fraction, "not_selected": round(c.total_left_out)} if s.fraction < 1 else {}),
        "raw_tokens": raw,
        "generations": generations,
        "long_docs": {"split": round(c.long_docs_split * k), "parts": round(c.long_doc_parts * k)},
        "generated_tokens": {
            "max": generations * s.max_new_tokens,
            "expected": expected_generated,
            "expected_share_of_max": generated_share,
        },  # fmt: skip
        "template_overhead": TEMPLATE_OVERHEAD,
        "augmented_tokens": augmented,
        "mix": mix_budget(config, augmented, MixCounter.load(config, tokenizer, sample), c),
        "warnings": [w for w in (scratch_refusal(config),) if w],  # what would fail after the GPU hours
    }
    rates = {"--tok-per-s": tok_per_s} if tok_per_s is not None else THROUGHPUTS
    result["gpu_hours"] = [{"at": name, "raw_tok_per_s": rate, "hours": raw / rate / 3600}
                           for name, rate in rates.items()]  # fmt: skip
    return result


def _n(x: float) -> str:
    return f"{x:,.0f}"


def format_plan(p: Mapping[str, Any]) -> str:
    """The plan as the lines `instructpt plan` prints."""
    from .planning_mix import MIX_META

    approx = "~" if p["sampled"] else ""
    read = (f"scaled from the first {p['documents_read']:,} documents" if p["sampled"]
            else "every document read")  # fmt: skip
    g = p["generated_tokens"]
    which = "documents"
    if "fraction" in p:  # synthesize.fraction: the documents it converts; the rest is left for the mix
        which = (f"documents to convert (synthesize.fraction {p['fraction']:g}; {approx}"
                 f"{_n(p['not_selected'])} left unconverted)")  # fmt: skip
    lines = [
        f"corpus:       {approx}{_n(p['documents'])} {which}, {approx}{_n(p['raw_tokens'])} raw tokens "
        f"({read}; tokenizer {p['tokenizer']})",
        f"generations:  {approx}{_n(p['generations'])} (documents after the long-document split: "
        f"{_n(p['long_docs']['split'])} split into {_n(p['long_docs']['parts'])} parts)",
        f"generated:    at most {_n(g['max'])} tokens (max_new_tokens x generations); expected "
        f"~{_n(g['expected'])} ({g['expected_share_of_max']:g} of the maximum, an assumption)",
        f"augmented:    ~{_n(p['augmented_tokens'])} training tokens after templify "
        f"((raw + generated) x {p['template_overhead']:g} template overhead; synthesizer's tokenizer)",
    ]
    if (mix := p.get("mix")) is not None:
        parts = ", ".join(f"{k} {_n(v)}" for k, v in mix.items() if k not in MIX_META)
        lines.append(f"mix ({mix['recipe']}): ~{_n(mix['total'])} training tokens ({parts}; tokenizer "
                     f"{mix['tokenizer']}, vocabulary {mix['vocab_size']:,})")  # fmt: skip
        if mix.get("tokens_per_synthesizer_token", 1) != 1:
            lines.append(f"  augmented in the mix: ~{_n(mix['augmented_synthesizer_tokens'])} synthesizer "
                         f"tokens x {mix['tokens_per_synthesizer_token']:g}, the corpus' tokens with the mix "
                         "tokenizer per synthesizer token")  # fmt: skip
        lines.extend(f"  note: {note}" for note in mix.get("notes", []))
    for rate in p["gpu_hours"]:
        hours = f"{rate['hours']:,.1f}" if rate["hours"] >= 10 else f"{rate['hours']:.2g}"
        lines.append(f"GPU-hours:    {hours} at {rate['raw_tok_per_s']:,.0f} raw tok/s ({rate['at']})")
    lines.extend(f"warning: {w}" for w in p.get("warnings", []))
    return "\n".join(lines)
