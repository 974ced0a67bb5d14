"""Multi-round (M-shot) synthesis over one batch of documents (docs/method.md §3).

The batch's documents are split into M consecutive groups of ceil(N/M); document i
of group r continues chain i. A prompt carries the chain's earlier examples only if
the chain's last entry produced pairs *and* the exact token count (the engine's own
tokenizer, no special tokens added) leaves room for `max_new_tokens`; otherwise the
document starts fresh. Documents that alone exceed the budget are split at
paragraph/sentence boundaries, truncated, or skipped, as the caller chooses.

This module knows nothing about files, shards or resumption; it turns a list of
`Document`s into `Entry`s (in document order) with counted statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..engines.base import Completion, Engine, EngineError, Request
from ..errors import UsageError
from ..records import Counts, Document, Entry, Reject
from ..tokenization import Tokenizer
from .fitting import _PIECE_BATCH, _shared, fit_documents
from .format import build_prompt, parse_generation, reading_material, serialize_example

LONG_DOC_MODES = ("split", "truncate", "skip")


@dataclass(frozen=True)
class RoundSettings:
    rounds: int = 2
    max_new_tokens: int = 400
    long_docs: str = "split"
    keep_generations: bool = False

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.long_docs not in LONG_DOC_MODES:
            raise UsageError(f"--long-docs must be one of {', '.join(LONG_DOC_MODES)}")


@dataclass
class BatchResult:
    entries: list[Entry]  # in document order
    rejects: list[Reject] = field(default_factory=list)  # documents skipped as too long
    counts: Counts = field(default_factory=Counts)


def prompt_budget(engine: Engine, settings: RoundSettings) -> int:
    """The most prompt tokens any request may have."""
    budget = engine.max_model_len - settings.max_new_tokens
    if budget < 16:
        raise UsageError(
            f"--max-model-len {engine.max_model_len} minus --max-new-tokens "
            f"{settings.max_new_tokens} leaves no room for a document"
        )
    return budget


def _prepare(docs: Sequence[Document], engine: Engine, settings: RoundSettings
             ) -> tuple[BatchResult, list[tuple[Document, list[int]]], int]:  # fmt: skip
    """Budget, long-document handling and raw-token counts shared by both schedulers."""
    budget = prompt_budget(engine, settings)
    result = BatchResult(entries=[])
    result.counts.add("documents", len(docs))
    fitted = fit_documents(docs, engine.tokenizer, budget, settings.long_docs, result)
    overhead = _tag_overhead(engine.tokenizer)
    for _, ids in fitted:
        result.counts.add("raw_tokens", max(len(ids) - overhead, 0))
    return result, fitted, budget


def _context_of(chain: list[Entry], r: int) -> list[Entry]:
    """The chain's entries a round-r prompt may carry (docs/method.md §3), oldest first; [] for none."""
    if r == 0 or not chain or not chain[-1].pairs:
        return []
    start = len(chain) - 1  # walk back while each entry inherits from its predecessor
    while start > 0 and chain[start].inherits:
        start -= 1
    return chain[start:]


def _check(request: Request, engine: Engine) -> None:
    if len(request.prompt_ids) + request.max_new_tokens > engine.max_model_len:
        raise EngineError("internal error: a prompt exceeds the model length budget")


def _record(result: BatchResult, doc: Document, request: Request, completion: Completion, chain_id: str,
            r: int, n_ctx: int, settings: RoundSettings) -> Entry:  # fmt: skip
    """The entry for one generation, with its counters."""
    counts = result.counts
    parsed = parse_generation(completion.text)
    for reason, k in parsed.dropped.items():
        counts.add(f"parse_dropped.{reason}", k)
    entry = Entry(
        id=doc.id,
        doc_id=doc.doc_id,
        part=doc.part,
        n_parts=doc.n_parts,
        text=doc.text,
        pairs=parsed.pairs,
        chain_id=chain_id,
        round=r,
        inherits=n_ctx > 0 and bool(parsed.pairs),
        n_context=n_ctx,
        prompt_tokens=len(request.prompt_ids),
        generated_tokens=completion.n_tokens,
        finish_reason=completion.finish_reason,
        truncated=doc.truncated,
        source=doc.source,
        generation=completion.text if settings.keep_generations else None,
    )
    counts.add("entries")
    counts.add("pairs", len(parsed.pairs))
    counts.add("prompt_tokens", entry.prompt_tokens)
    counts.add("generated_tokens", entry.generated_tokens)
    if not parsed.pairs:
        counts.add("entries_without_pairs")
    if entry.inherits:
        counts.add("entries_inheriting")
    if completion.finish_reason == "length":
        counts.add("generations_hit_max_new_tokens")
    return entry


def synthesize_batch(
    docs: Sequence[Document],
    engine: Engine,
    settings: RoundSettings,
    chain_prefix: str = "",
) -> BatchResult:
    """Run the M rounds of docs/method.md §3 over `docs` and return their entries in order.

    Round by round: each round's prompts go to the engine as one batch.
    """
    tokenizer = engine.tokenizer
    result, fitted, budget = _prepare(docs, engine, settings)
    counts = result.counts
    n, m = len(fitted), settings.rounds
    group = -(-n // m) if n else 0
    chains: list[list[Entry]] = [[] for _ in range(group)]
    example_ids: dict[int, list[int]] = {}  # id(entry) -> ids of it as a finished example
    for r in range(m):
        members = fitted[r * group : (r + 1) * group]
        if not members:
            continue
        prompts, prompt_ids, contexts = _build_round(
            members, chains, example_ids, tokenizer, budget, r, counts
        )
        requests = [Request(p, ids, settings.max_new_tokens) for p, ids in zip(prompts, prompt_ids)]
        for req in requests:  # the invariant every engine relies on
            _check(req, engine)
        completions = engine.generate(requests)
        if len(completions) != len(requests):
            raise EngineError(f"engine returned {len(completions)} completions for {len(requests)} requests")
        for i, ((doc, _), req, completion, n_ctx) in enumerate(zip(members, requests, completions, contexts)):
            entry = _record(result, doc, req, completion, f"{chain_prefix}{i}", r, n_ctx, settings)
            chains[i].append(entry)
            result.entries.append(entry)
    return result


async def synthesize_batch_async(
    docs: Sequence[Document],
    engine: Engine,
    settings: RoundSettings,
    chain_prefix: str = "",
) -> BatchResult:
    """The same as `synthesize_batch`, without barriers between rounds.

    Each chain runs on its own: round r+1 of a chain is submitted as soon as round r of *that*
    chain is back (through `engine.agenerate`). A prompt depends only on its own chain's
    earlier entries, so the entries, ids and counts are exactly those of the round-by-round
    path; only the order in which requests reach the engine differs.
    """
    import asyncio

    tokenizer = engine.tokenizer
    result, fitted, budget = _prepare(docs, engine, settings)
    counts = result.counts
    n, m = len(fitted), settings.rounds
    group = -(-n // m) if n else 0
    slots: list[Entry | None] = [None] * n
    example_ids: dict[int, list[int]] = {}

    async def run_chain(i: int) -> None:
        chain: list[Entry] = []
        for r in range(m):
            pos = r * group + i
            if pos >= n:
                break
            doc, ids = fitted[pos]
            prompt, prompt_ids, n_ctx = reading_material(doc.text), ids, 0
            context = _context_of(chain, r)
            if context:
                text = build_prompt(doc.text, [(e.text, e.pairs) for e in context])
                if tokenizer.splits_at_bos_eos:
                    for e in context:
                        if id(e) not in example_ids:
                            example_ids[id(e)] = tokenizer.encode(serialize_example(e.text, e.pairs))
                    candidate = [t for e in context for t in example_ids[id(e)]] + ids
                else:
                    candidate = tokenizer.encode(text)
                if len(candidate) <= budget:
                    prompt, prompt_ids, n_ctx = text, candidate, len(context)
                    counts.add("prompts_with_context")
                else:
                    counts.add("context_over_budget")
            request = Request(prompt, prompt_ids, settings.max_new_tokens)
            _check(request, engine)
            completion = await engine.agenerate(request)  # type: ignore[attr-defined]
            entry = _record(result, doc, request, completion, f"{chain_prefix}{i}", r, n_ctx, settings)
            chain.append(entry)
            slots[pos] = entry

    await asyncio.gather(*(run_chain(i) for i in range(group)))
    result.entries = [e for e in slots if e is not None]
    return result


def _build_round(
    members: list[tuple[Document, list[int]]],
    chains: list[list[Entry]],
    example_ids: dict[int, list[int]],
    tokenizer: Tokenizer,
    budget: int,
    r: int,
    counts: Counts,
) -> tuple[list[str], list[list[int]], list[int]]:
    """Prompts (text and exact ids) for one round, and how many context entries each has.

    When the tokenizer cuts text at `<s>`/`</s>` before anything else, a prompt's ids are
    its finished examples' ids followed by the document's reading-material ids, so each
    example is tokenized once (cached in `example_ids` by entry) and never the whole
    prompt; otherwise the whole prompt is tokenized. Both give the same ids.
    """
    prompts = [reading_material(doc.text) for doc, _ in members]
    prompt_ids = [ids for _, ids in members]
    contexts = [0] * len(members)
    candidates = [(i, ctx) for i in range(len(members)) if (ctx := _context_of(chains[i], r))]
    texts = [build_prompt(members[i][0].text, [(e.text, e.pairs) for e in ctx]) for i, ctx in candidates]
    if tokenizer.splits_at_bos_eos:  # (in batches, shared ints, one candidate at a time: memory)
        missing = list({id(e): e for _, ctx in candidates for e in ctx if id(e) not in example_ids}.items())
        for start in range(0, len(missing), _PIECE_BATCH):
            batch = missing[start : start + _PIECE_BATCH]
            fresh = tokenizer.encode_batch([serialize_example(e.text, e.pairs) for _, e in batch])
            example_ids.update((key, _shared(ids)) for (key, _), ids in zip(batch, fresh))
        encoded = ([t for e in ctx for t in example_ids[id(e)]] + prompt_ids[i] for i, ctx in candidates)
    else:
        encoded = tokenizer.encode_batch(texts)
    for (i, ctx), text, ids in zip(candidates, texts, encoded):
        if len(ids) <= budget:
            prompts[i], prompt_ids[i], contexts[i] = text, ids, len(ctx)
            counts.add("prompts_with_context")
        else:
            counts.add("context_over_budget")
    return prompts, prompt_ids, contexts


def _tag_overhead(tokenizer: Tokenizer) -> int:
    """Tokens the reading-material tags add around a document (for raw-token figures)."""
    return len(tokenizer.encode(reading_material("")))
