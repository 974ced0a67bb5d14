"""docs/method.md §3: groups, chains, context, exact budgets and long documents."""

from __future__ import annotations

import pytest

from instructpt.errors import UsageError
from instructpt.records import Document
from instructpt.synthesis.fitting import split_to_fit
from instructpt.synthesis.format import CON_CLOSE, CON_OPEN, Pair, parse_pairs, serialize_pairs
from instructpt.synthesis.rounds import RoundSettings, synthesize_batch, synthesize_batch_async


def docs(n: int, words: int = 6) -> list[Document]:
    return [Document(f"d{i}", " ".join(f"word{i}" for _ in range(words)) + ".") for i in range(n)]


def last_doc(prompt: str) -> str:
    return prompt[prompt.rfind(CON_OPEN) + len(CON_OPEN) : prompt.rfind(CON_CLOSE)].strip()


def two_pairs(prompt: str) -> str:
    d = last_doc(prompt)
    return serialize_pairs([Pair(f"What is {d}?", "It is a doc."), Pair(f"Why {d}?", "Because.")])


@pytest.mark.parametrize("n, m", [(1, 1), (1, 3), (2, 3), (6, 4), (7, 2), (8, 2), (9, 3), (10, 4), (3, 5)])
def test_every_document_gets_exactly_one_entry_in_order(scripted, n, m):
    engine = scripted(two_pairs)
    result = synthesize_batch(docs(n), engine, RoundSettings(rounds=m))
    assert [e.id for e in result.entries] == [f"d{i}" for i in range(n)]
    group = -(-n // m)
    for k, entry in enumerate(result.entries):  # document k sits in group k // g, chain k % g
        assert entry.round == entry.position == k // group
        assert entry.chain_id == str(k % group)


def test_empty_batch(scripted):
    result = synthesize_batch([], scripted(two_pairs), RoundSettings())
    assert result.entries == [] and result.counts["documents"] == 0


def test_context_walks_back_through_inheriting_entries(scripted):
    engine = scripted(two_pairs)
    result = synthesize_batch(docs(6), engine, RoundSettings(rounds=3))
    by_id = {e.id: e for e in result.entries}
    # chain 0 = d0 (round 0), d2 (round 1), d4 (round 2)
    assert [by_id[i].n_context for i in ("d0", "d2", "d4")] == [0, 1, 2]
    assert [by_id[i].inherits for i in ("d0", "d2", "d4")] == [False, True, True]
    prompt = next(r.prompt for r in engine.requests if last_doc(r.prompt) == by_id["d4"].text)
    assert prompt.startswith("<s> <CON> " + by_id["d0"].text)
    assert prompt.count("</s><s>") == 2 and prompt.count("<s>") == 3
    assert prompt.index(by_id["d0"].text) < prompt.index(by_id["d2"].text) < prompt.index(by_id["d4"].text)


def test_entry_without_pairs_breaks_the_chain(scripted):
    def respond(prompt: str) -> str:
        return "garbage" if last_doc(prompt).startswith("word2") else two_pairs(prompt)

    result = synthesize_batch(docs(6), scripted(respond), RoundSettings(rounds=3))
    by_id = {e.id: e for e in result.entries}
    assert by_id["d2"].n_context == 1 and not by_id["d2"].inherits and by_id["d2"].pairs == []
    assert by_id["d4"].n_context == 0 and not by_id["d4"].inherits  # last entry had no pairs
    assert result.counts["entries_without_pairs"] == 1


def test_context_that_would_overflow_starts_fresh(scripted, tokenizer):
    engine = scripted(two_pairs, max_model_len=140)
    settings = RoundSettings(rounds=2, max_new_tokens=40)
    result = synthesize_batch(docs(2, words=12), engine, settings)
    second = result.entries[1]
    assert second.n_context == 0 and result.counts["context_over_budget"] == 1
    # and with room, the same document is prompted with context
    roomy = synthesize_batch(docs(2, words=12), scripted(two_pairs, max_model_len=4096), settings)
    assert roomy.entries[1].n_context == 1


def test_prompt_token_counts_are_exact_and_within_budget(scripted, tokenizer):
    engine = scripted(two_pairs, max_model_len=300)
    settings = RoundSettings(rounds=3, max_new_tokens=60)
    result = synthesize_batch(docs(30, words=10), engine, settings)
    for request in engine.requests:
        assert request.prompt_ids == tokenizer.encode(request.prompt)
        assert len(request.prompt_ids) + settings.max_new_tokens <= 300
        assert request.prompt_ids.count(tokenizer.token_id("<s>")) == request.prompt.count("<s>")
        assert request.prompt_ids[0] == tokenizer.token_id("<s>") != request.prompt_ids[1]
    assert {e.prompt_tokens for e in result.entries} <= {len(r.prompt_ids) for r in engine.requests}


def long_text(paragraphs: int = 8) -> str:
    para = "This sentence talks about rivers and lakes. Another sentence follows here with more words."
    return "\n\n".join(f"Paragraph {k}. {para}" for k in range(paragraphs))


def test_split_long_document_into_parts_that_fit(scripted, tokenizer):
    engine = scripted(two_pairs, max_model_len=200)
    settings = RoundSettings(rounds=2, max_new_tokens=60)
    doc = Document("long", long_text(), "src:1")
    result = synthesize_batch([Document("a", "Short one."), doc], engine, settings)
    parts = [e for e in result.entries if e.doc_id == "long"]
    assert len(parts) > 1 and result.counts["long_docs_split"] == 1
    assert [p.id for p in parts] == [f"long#{k}" for k in range(len(parts))]
    assert all(p.n_parts == len(parts) and p.source == "src:1" for p in parts)
    assert " ".join(p.text for p in parts).split() == doc.text.split()  # nothing lost
    assert all(p.text.startswith("Paragraph") for p in parts)  # cut at paragraph breaks
    assert all(len(r.prompt_ids) <= 140 for r in engine.requests)


def test_truncate_and_skip_long_documents(scripted):
    settings = dict(rounds=1, max_new_tokens=60)
    doc = Document("long", long_text(), "src:1")
    truncated = synthesize_batch(
        [doc], scripted(two_pairs, max_model_len=200), RoundSettings(long_docs="truncate", **settings)
    )
    (entry,) = truncated.entries
    assert entry.truncated and doc.text.startswith(entry.text) and len(entry.text) < len(doc.text)
    skipped = synthesize_batch(
        [doc, Document("ok", "Fine.")],
        scripted(two_pairs, max_model_len=200),
        RoundSettings(long_docs="skip", **settings),
    )
    assert [e.id for e in skipped.entries] == ["ok"]
    assert [(r.id, r.reason) for r in skipped.rejects] == [("long", "too_long")]
    assert skipped.counts["long_docs_skipped"] == 1


def test_split_without_any_boundary_cuts_by_characters(tokenizer):
    text = "x" * 3000
    pieces = split_to_fit(text, tokenizer, budget=50)
    assert "".join(pieces) == text
    assert all(len(tokenizer.encode(f"<s> <CON> {p} </CON>\n\n")) <= 50 for p in pieces)


def test_budget_too_small_is_a_usage_error(scripted):
    with pytest.raises(UsageError, match="leaves no room"):
        synthesize_batch(docs(1), scripted(two_pairs, max_model_len=100), RoundSettings(max_new_tokens=95))


@pytest.mark.parametrize("bad", [dict(rounds=0), dict(max_new_tokens=0), dict(long_docs="drop")])
def test_bad_settings(bad):
    with pytest.raises(UsageError):
        RoundSettings(**bad)


def test_parse_stats_are_counted(scripted):
    respond = lambda p: "<QUE> a <ANS> b </END>\n\n<QUE> A <ANS> c </END>\n\n<QUE> x <ANS> y"  # noqa: E731
    result = synthesize_batch(docs(2), scripted(respond), RoundSettings(rounds=1))
    assert result.counts["pairs"] == 2
    assert result.counts["parse_dropped.duplicate_instruction"] == 2
    assert result.counts["parse_dropped.unfinished_last_pair"] == 2
    assert parse_pairs(respond("")) == result.entries[0].pairs


class PlainEncoder:
    """A tokenizer with only `encode`: prompts are tokenized whole (no concatenation path)."""

    def __init__(self, inner):
        self.inner = inner

    def encode(self, text, add_special_tokens=False):
        return self.inner.encode(text)


@pytest.mark.parametrize("fast_path", [True, False])
def test_concatenated_prompt_ids_equal_whole_prompt_tokenization(tokenizer, fast_path):
    from instructpt.tokenization import Tokenizer

    assert tokenizer.splits_at_bos_eos  # the test tokenizer registers <s> and </s> as special
    tok = tokenizer if fast_path else Tokenizer(PlainEncoder(tokenizer))
    assert tok.splits_at_bos_eos is fast_path
    from tests.conftest import ScriptedEngine

    engine = ScriptedEngine(tok, two_pairs)
    texts = [Document(f"d{i}", f"Line one of {i}.\nLine  two\n\nPara {'é' * i} end ") for i in range(12)]
    synthesize_batch(texts, engine, RoundSettings(rounds=4))
    with_context = [r for r in engine.requests if r.prompt.count("<s>") > 1]
    assert len(with_context) == 9
    for request in engine.requests:
        assert request.prompt_ids == tokenizer.encode(request.prompt)


@pytest.mark.parametrize("with_offsets", [True, False])
def test_split_long_text_with_and_without_token_offsets(tokenizer, with_offsets):
    from instructpt.tokenization import Tokenizer

    tok = tokenizer if with_offsets else Tokenizer(PlainEncoder(tokenizer))
    assert (tok.char_offsets("a b") is not None) is with_offsets
    text = " ".join(f"Sentence number {i} talks about lakes." for i in range(200))
    pieces = split_to_fit(text, tok, budget=120)
    assert " ".join(pieces).split() == text.split()
    assert all(len(tokenizer.encode(f"<s> <CON> {p} </CON>\n\n")) <= 120 for p in pieces)
    assert all(p.endswith(".") for p in pieces)  # cut at sentence ends


def test_barrier_free_scheduler_gives_exactly_the_round_by_round_result(tokenizer):
    import asyncio
    import random

    from tests.conftest import ScriptedEngine

    def respond(prompt: str) -> str:
        return "garbage" if last_doc(prompt).startswith("word4") else two_pairs(prompt)

    class AsyncScripted(ScriptedEngine):
        order: list[int] = []

        async def agenerate(self, request):
            await asyncio.sleep(random.Random(request.prompt).random() / 200)  # finish out of order
            self.order.append(len(request.prompt_ids))
            return self.generate([request])[0]

    settings = RoundSettings(rounds=3, max_new_tokens=40)
    docs_ = docs(17, words=9)
    sync = synthesize_batch(docs_, ScriptedEngine(tokenizer, respond, max_model_len=300), settings, "s-")
    engine = AsyncScripted(tokenizer, respond, max_model_len=300)
    result = asyncio.run(synthesize_batch_async(docs_, engine, settings, "s-"))
    assert result.entries == sync.entries and result.counts.to_dict() == sync.counts.to_dict()
    assert engine.order != sorted(engine.order)  # requests really completed out of round order
