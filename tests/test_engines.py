"""Engines: the registry, the function adapter, the rules engine and the transformers engine."""

from __future__ import annotations

import pytest

from instructpt.engines import EngineOptions, create_engine, from_function, register_engine
from instructpt.engines.base import EngineError, Request
from instructpt.engines.registry import engine_specs, resolve_engine_name
from instructpt.engines.rules import mine_pairs, respond
from instructpt.errors import MissingExtraError, UsageError
from instructpt.synthesis.format import Pair, build_prompt, parse_pairs
from instructpt.synthesis.stage import synthesize


def test_function_adapter_counts_tokens_and_flags_length(tokenizer):
    engine = from_function(lambda prompts: ["<QUE> q <ANS> a </END>" for _ in prompts], tokenizer)
    ids = tokenizer.encode(build_prompt("Doc."))
    (done,) = engine.generate([Request(build_prompt("Doc."), ids, 400)])
    assert done.n_tokens == len(tokenizer.encode("<QUE> q <ANS> a </END>")) and done.finish_reason == "stop"
    (short,) = engine.generate([Request(build_prompt("Doc."), ids, 2)])
    assert short.finish_reason == "length"


def test_function_adapter_rejects_wrong_output_count(tokenizer):
    engine = from_function(lambda prompts: [], tokenizer)
    with pytest.raises(EngineError, match="returned 0 outputs for 1 prompts"):
        engine.generate([Request("<s> x", [1], 4)])


def test_function_adapter_in_batches(tokenizer):
    sizes = []
    engine = from_function(lambda ps: sizes.append(len(ps)) or ["" for _ in ps], tokenizer, batch_size=2)
    engine.generate([Request("p", [1], 4)] * 5)
    assert sizes == [2, 2, 1]


@pytest.mark.parametrize(
    "text, instruction, response",
    [
        (
            "Tidal power\nTidal power refers to electricity from tides. It is old.",
            "What is the most suitable title for this text?",
            "Tidal power",
        ),
        (
            "Tidal power refers to electricity from the tides of the sea.",
            'What does "Tidal power" mean, according to the text?',
            "Electricity from the tides of the sea.",
        ),
        (
            "A barrage is defined as a dam built across an estuary mouth.",
            'What does "barrage" mean, according to the text?',
            "A dam built across an estuary mouth.",
        ),
        (
            "The station opened in 1966 in France. Therefore, it is the oldest one.",
            'Premise: "The station opened in 1966 in France."\nHypothesis: "It is the oldest one."\n'
            "Does the premise entail the hypothesis?\nOptions:\n- yes\n- it is not possible to tell\n- no",
            "yes",
        ),
        (
            "The station opened in 1966 in France. Therefore, it is the oldest one.",
            '"The station opened in 1966 in France." What is the result of this?',
            "It is the oldest one.",
        ),
        (
            "Tidal ranges vary widely along coasts. However, few exceed five metres.",
            'Premise: "Tidal ranges vary widely along coasts."\nHypothesis: "Few exceed five metres."\n'
            "Does the premise entail the hypothesis?\nOptions:\n- yes\n- it is not possible to tell\n- no",
            "no",
        ),
        (
            "Turbines sit in a barrage here. Moreover, output can follow demand.",
            'Premise: "Turbines sit in a barrage here."\nHypothesis: "Output can follow demand."\n'
            "Does the premise entail the hypothesis?\nOptions:\n- yes\n- it is not possible to tell\n- no",
            "it is not possible to tell",
        ),
        (
            "Water is held back at high tide. In other words, the basin fills up.",
            'Rephrase this sentence: "Water is held back at high tide."',
            "The basin fills up.",
        ),
        (
            "One sentence here. Two sentences here. Three sentences here.",
            'Complete the text: "One sentence here." What comes next?',
            "Two sentences here.",
        ),
    ],
)
def test_rules_engine_patterns(text, instruction, response):
    pairs = mine_pairs(text)
    assert Pair(instruction, response) in pairs
    assert parse_pairs(respond(build_prompt(text))) == pairs


def test_rules_engine_on_text_without_patterns_and_kinds():
    from instructpt.synthesis.classify import classify

    assert mine_pairs("short") == []
    text = "Title here\nA is one thing now. Therefore, B follows from it. But C is not so sure."
    kinds = {getattr(classify(p), "kind", None) for p in mine_pairs(text)}
    assert {"free", "options"} <= kinds


def test_registry_plugins_and_auto(tokenizer):
    register_engine(
        "unit-test-engine", lambda opts: from_function(lambda ps: ps, tokenizer), description="test"
    )
    assert "unit-test-engine" in engine_specs()
    engine = create_engine("unit-test-engine", EngineOptions())
    assert engine.generate([Request("x", [1], 1)])[0].text == "x"
    with pytest.raises(UsageError, match="unknown engine 'nope'"):
        resolve_engine_name("nope")
    assert resolve_engine_name("auto") == "hf"  # the only auto engine installed in tests


def test_missing_extra_names_the_pip_command():
    register_engine("needs-missing", "x:y", requires=("surely_not_installed_pkg",), extra="fancy")
    with pytest.raises(MissingExtraError, match=r"pip install 'instructpt\[fancy\]'"):
        create_engine("needs-missing", EngineOptions())


@pytest.fixture(scope="module")
def hf_engine(tiny_model):
    return create_engine("hf", EngineOptions(model=str(tiny_model), max_model_len=512))


@pytest.mark.slow
def test_hf_engine_prompts_have_one_bos(hf_engine):
    ids = hf_engine.tokenizer.encode(build_prompt("A document about kettles."))
    bos = hf_engine.tokenizer.backend.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1


@pytest.mark.slow
def test_hf_batched_generation_equals_one_by_one(hf_engine):
    texts = [
        "Short.",
        "A somewhat longer document about rivers and lakes in the north.",
        "Middle length document here, about kettles.",
    ]
    requests = [Request(p, hf_engine.tokenizer.encode(p), 12) for p in map(build_prompt, texts)]
    batched = hf_engine.generate(requests)
    single = [hf_engine.generate([r])[0] for r in requests]
    assert batched == single
    assert all(0 < c.n_tokens <= 12 for c in batched)
    assert all(c.finish_reason == ("length" if c.n_tokens == 12 else "stop") for c in batched)


@pytest.mark.slow
def test_hf_batches_respect_the_token_budget(hf_engine):
    requests = [Request("p", [1] * n, 10) for n in (5, 50, 7, 30, 12, 40)]
    hf_engine.max_batch_tokens = 100
    try:
        batches = hf_engine.batches(requests)
    finally:
        hf_engine.max_batch_tokens = 16384
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        widest = max(len(requests[i].prompt_ids) + 10 for i in batch)
        assert widest * len(batch) <= 100 or len(batch) == 1
        assert [len(requests[i].prompt_ids) for i in batch] == sorted(
            len(requests[i].prompt_ids) for i in batch
        )


@pytest.mark.slow
def test_hf_engine_is_deterministic(hf_engine):
    docs = [f"Document {i} about the weather in town {i}." for i in range(6)]
    first = list(synthesize(docs, hf_engine, rounds=2, max_new_tokens=16, keep_generations=True))
    second = list(synthesize(docs, hf_engine, rounds=2, max_new_tokens=16, keep_generations=True))
    assert first == second


@pytest.mark.slow
def test_prompt_ids_match_the_transformers_tokenizer(hf_engine):
    from instructpt.synthesis.format import CON_CLOSE, CON_OPEN, Pair, serialize_pairs

    tok = hf_engine.tokenizer
    assert tok.splits_at_bos_eos  # the fast path (concatenated ids) is the one under test
    seen = []

    def respond(prompts):
        seen.extend(prompts)
        docs = [p[p.rfind(CON_OPEN) + 5 : p.rfind(CON_CLOSE)].strip() for p in prompts]
        return [serialize_pairs([Pair(f"What about {d[:12]}?", d[-8:])]) for d in docs]

    engine = from_function(respond, tok)
    requests = []
    original = engine.generate
    engine.generate = lambda reqs: requests.extend(reqs) or original(reqs)
    docs = [f"Doc {i}: rivers\nand lakes.\n\nMore  text, é {i}." for i in range(9)]
    list(synthesize(docs, engine, rounds=3))
    assert sum(r.prompt.count("<s>") > 1 for r in requests) == 6
    for r in requests:
        assert r.prompt_ids == tok.backend(r.prompt, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_hf_continuous_batching_equals_static_batches(hf_engine):
    texts = ["Short.", "A somewhat longer document about rivers and lakes.", "Kettles boil water."]
    requests = [Request(p, hf_engine.tokenizer.encode(p), 12) for p in map(build_prompt, texts)]
    static = hf_engine.generate(requests)
    hf_engine.continuous_batching = True
    try:
        assert hf_engine.generate(requests) == static
    finally:
        hf_engine.continuous_batching = False


@pytest.mark.slow
def test_hf_continuous_batching_keeps_one_manager_until_close(tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    engine = create_engine("hf", EngineOptions(model=str(tiny_model), max_model_len=512))
    encode = engine.tokenizer.encode
    first = [Request(p, encode(p), 12) for p in map(build_prompt, ["Short.", "Rivers and lakes up north."])]
    second = [Request(p, encode(p), n) for p, n in zip(map(build_prompt, ["Kettles.", "Ice."]), (5, 9))]
    static = [engine.generate(first), engine.generate(second)]
    attention = engine.model.config._attn_implementation
    managers = []
    init = engine.model.init_continuous_batching
    engine.model.init_continuous_batching = lambda **kw: managers.append(init(**kw)) or managers[-1]
    engine.continuous_batching = True
    try:
        assert [engine.generate(first), engine.generate(second)] == static
        with ThreadPoolExecutor(2) as pool:  # two callers at once share the manager's output queue
            assert list(pool.map(engine.generate, [first, second] * 2)) == static * 2
        assert len(managers) == 1 and managers[0].is_running()
    finally:
        engine.close()
    assert not managers[0].is_running()
    assert managers[0].model.config._attn_implementation == attention


@pytest.mark.slow
def test_hf_options_reach_the_engine(tiny_model):
    engine = create_engine(
        "hf", EngineOptions(model=str(tiny_model), max_model_len=512), continuous_batching=True
    )
    assert engine.continuous_batching and engine.max_model_len == 512 and not engine.concurrent
    with pytest.raises(UsageError, match="unknown option 'max_num_seqs' for the hf engine"):
        create_engine("hf", EngineOptions(model=str(tiny_model)), max_num_seqs=4)
