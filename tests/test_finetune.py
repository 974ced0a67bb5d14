"""Synthesizer fine-tuning data, label masking, training, and evaluation (docs/method.md §6-§7)."""

from __future__ import annotations

import json

import pytest

from instructpt.finetune.data import ConvertStats, Fields, FtRecord, convert_row, convert_rows
from instructpt.finetune.evaluate import evaluate_synthesizer, exact_match, groundedness, token_f1
from instructpt.finetune.train import IGNORE, build_sequences, example_text
from instructpt.synthesis.format import Pair, parse_pairs

F = Fields()
NLI_Q = 'Does the passage support this statement: "H."?\nOptions:\n- yes\n- it is not possible to tell\n- no'


@pytest.mark.parametrize(
    "kind, row, expected",
    [
        ("extractive", {"context": "C.", "question": "Q?", "answer": {"text": ["x", "y"]}}, Pair("Q?", "x")),
        ("abstractive", {"context": "C.", "question": "Q?", "answer": "Long."}, Pair("Q?", "Long.")),
        ("multiple-choice", {"context": "C.", "question": "Q?", "options": ["a", "b", "c"], "label": "B"},
         Pair("Q?\nOptions:\n- a\n- b\n- c", "b")),
        ("multiple-choice", {"context": "C.", "question": "Q?", "options": ["a", "b"], "label": 0},
         Pair("Q?\nOptions:\n- a\n- b", "a")),
        ("multiple-choice", {"context": "C.", "question": "Q?", "options": ["a", "b"], "label": "b"},
         Pair("Q?\nOptions:\n- a\n- b", "b")),
        ("cot", {"context": "C.", "question": "Q?", "answer": "4", "rationale": "2+2."},
         Pair("Q?\nLet's think step by step.", "2+2.\nTherefore, the answer is 4")),
        ("cot", {"context": "C.", "question": "Q?", "options": ["3", "4"], "label": 1, "rationale": "2+2."},
         Pair("Q?\nOptions:\n- 3\n- 4\nLet's think step by step.", "2+2.\nTherefore, the answer is 4")),
        ("yes-no", {"context": "C.", "question": "Q?", "answer": "Maybe"},
         Pair("Q?\nOptions:\n- yes\n- no\n- maybe", "maybe")),
        ("nli", {"context": "C.", "hypothesis": "H.", "label": "entailment"}, Pair(NLI_Q, "yes")),
        ("extractive", {"question": "Q?", "answer": "x"}, "missing_context"),
        ("multiple-choice", {"context": "C.", "question": "Q?", "options": ["a", "b"], "label": "Z"},
         "label_not_an_option"),
        ("cot", {"context": "C.", "question": "Q?", "answer": "4"}, "missing_rationale"),
        ("yes-no", {"context": "C.", "question": "Q?", "answer": "perhaps"}, "answer_not_yes_no_maybe"),
    ],
)  # fmt: skip
def test_convert_row(kind, row, expected):
    result = convert_row(row, kind, F)
    assert (result if isinstance(result, str) else result[1]) == expected


def test_converted_pairs_follow_the_wire_conventions():
    from instructpt.synthesis.classify import classify

    mc = convert_row(
        {"context": "C.", "question": "Q?", "options": ["a", "b"], "label": 1}, "multiple-choice", F
    )
    cot = convert_row({"context": "C.", "question": "Q?", "answer": "4", "rationale": "R."}, "cot", F)
    assert classify(mc[1]).kind == "options" and classify(cot[1]).kind == "cot"


def test_rows_sharing_a_context_become_one_record_and_collection_loader():
    rows = [
        {"context": "A.", "question": "1?", "answer": "x"},
        {"context": "A.", "question": "2?", "answer": "y"},
        {"context": "B.", "question": "3?", "answer": "z"},
        {"context": "B.", "question": "", "answer": "z"},
    ]
    stats = ConvertStats()
    records = list(convert_rows(rows, "abstractive", "d", F, stats))
    assert [(r.context, len(r.pairs)) for r in records] == [("A.", 2), ("B.", 1)]
    assert stats.skipped == {"missing_question": 1} and stats.pairs == 3
    published = [{"context": "C.", "QA_list": [{"Q": "q?", "A": "a"}, {"Q": "", "A": "b"}]}]
    (record,) = convert_rows(published, "collection", "pub", F, ConvertStats())
    assert record.pairs == [Pair("q?", "a")]


def records(n: int = 6) -> list[FtRecord]:
    return [
        FtRecord(f"Document {i} says the river is {i} km long.",
                 [Pair(f"How long is river {i}?", f"{i} km"), Pair("Is it a river?", "Yes")],
                 dataset="d" if i % 2 else "e", kind="abstractive")
        for i in range(n)
    ]  # fmt: skip


def test_labels_cover_exactly_the_pairs_and_closing_eos(tokenizer):
    from instructpt.finetune.train import encode_with_labels

    rust = tokenizer.backend
    texts, spans, offset = [], [], 0
    for record in records(3):
        text, (start, end) = example_text(record)
        texts.append(text)
        spans.append((offset + start, offset + end))
        offset += len(text)
    text = "".join(texts)
    ids, labels = encode_with_labels(text, spans, rust)
    encoding = rust.encode(text, add_special_tokens=False)
    assert ids == encoding.ids
    bos, eos = rust.token_to_id("<s>"), rust.token_to_id("</s>")
    for token, label, (start, end) in zip(ids, labels, encoding.offsets):  # token by token
        inside = any(s0 <= start < s1 for s0, s1 in spans)
        assert label == (token if inside else IGNORE), (text[start:end], label)
        if token == eos:
            assert label == eos  # the closing EOS is trained on
        if token == bos:
            assert label == IGNORE
    kept = "".join(text[s:e] for (s, e), lab in zip(encoding.offsets, labels) if lab != IGNORE)
    masked = "".join(text[s:e] for (s, e), lab in zip(encoding.offsets, labels) if lab == IGNORE)
    assert "CON>" not in kept and "QUE>" not in masked and "ANS>" not in masked
    assert kept.count("</s>") == 3 and kept.count("ANS>") == 6 and "river is" in masked
    # this small vocabulary merges "\n\n<QUE" into one token that starts before the pairs: it is
    # not trained on (Mistral's byte-level newlines never merge, so there every <QUE> is)
    assert kept.count("QUE>") >= 3


def test_sequences_have_one_bos_per_example_and_labels_only_where_trained(tokenizer):
    rust = tokenizer.backend
    seqs = build_sequences(records(), rust, max_len=200)
    assert sum(s.n_examples for s in seqs) == 6
    for seq in seqs:
        assert seq.input_ids.count(rust.token_to_id("<s>")) == seq.n_examples
        assert seq.labels.count(rust.token_to_id("</s>")) == seq.n_examples
        assert all(label in (token, IGNORE) for token, label in zip(seq.input_ids, seq.labels))


def test_sequences_pack_same_dataset_examples_up_to_max_len(tokenizer):
    one, _ = example_text(records()[0])
    n = len(tokenizer.encode(one))
    seqs = build_sequences(records(), tokenizer.backend, max_len=2 * n + 5)
    assert all(len(s.input_ids) <= 2 * n + 5 for s in seqs) and max(s.n_examples for s in seqs) == 2
    assert build_sequences(records(), tokenizer.backend, max_len=n - 5) == []


def test_metrics_on_known_cases():
    assert exact_match("The 5 km.", "5 km") == 1.0 and exact_match("6 km", "5 km") == 0.0
    assert token_f1("five km long", "five km") == pytest.approx(0.8)
    assert token_f1("", "x") == 0.0
    assert groundedness("river is long", "The river is 5 km long.") == 1.0
    assert groundedness("ocean blue", "The river is long.") == 0.0


def test_evaluate_with_a_scripted_engine(scripted):
    def respond(prompt: str) -> str:
        if prompt.endswith("<ANS>"):
            return " 1 km </END>\n\n<QUE> more" if "river 1?" in prompt else " no idea </END>"
        return "<QUE> What is long? <ANS> the river </END>\n\n<QUE> What is long? <ANS> it </END>\n\n<QUE> x"

    report = evaluate_synthesizer(records(2), scripted(respond))
    ra, gp = report["response_accuracy"], report["generated_pairs"]
    assert ra["pairs"] == 4 and ra["exact_match"] == 0.25  # only "How long is river 1?" -> "1 km" is right
    assert gp["pairs_per_document"] == 1.0 and gp["parse_rate"] == 0.5  # one kept, one unfinished
    assert gp["groundedness"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_training_lowers_the_loss_and_the_model_loads_in_the_hf_engine(tmp_path, tiny_model, lora):
    from click.testing import CliRunner

    from instructpt.cli import main
    from instructpt.engines import EngineOptions, create_engine
    from instructpt.engines.base import Request
    from instructpt.synthesis.format import build_prompt

    data = tmp_path / "ft"
    data.mkdir()
    (data / "d.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records(8)))
    out = tmp_path / "synth"
    lr = "5e-2" if lora else "5e-3"
    args = ["train-synthesizer", "--base", str(tiny_model), "--data", str(data), "-o", str(out),
            "--max-len", "256", "--max-steps", "80", "--lr", lr, "--batch-size", "2", "--grad-accum", "1",
            "--json"]  # fmt: skip
    if lora:
        args += ["--lora", "--merge"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["steps"] == 80 and figures["merged"] is lora
    # measured: full 5.66 -> 0.15; LoRA (rank 16 on a random 64-wide model, frozen embeddings and
    # head) learns slowly: 6.76 -> 6.47
    assert figures["last_loss"] < (1.0 if lora else 0.2) * figures["first_loss"]
    if lora:  # the merged model carries the adapters in its weights
        from safetensors.numpy import load_file

        base = load_file(str(tiny_model / "model.safetensors"))
        merged = load_file(str(out / "model.safetensors"))
        key = next(k for k in base if k.endswith("self_attn.q_proj.weight"))
        assert set(merged) == set(base) and abs(merged[key] - base[key]).max() > 1e-4
    engine = create_engine("hf", EngineOptions(model=str(out), max_model_len=512))
    assert engine.tokenizer.backend.bos_token == "<s>" and engine.tokenizer.backend.eos_token == "</s>"
    prompt = build_prompt("Document 3 says the river is 3 km long.")
    (completion,) = engine.generate([Request(prompt, engine.tokenizer.encode(prompt), 40)])
    assert completion.n_tokens > 0
    if not lora:  # full fine-tuning memorizes the tiny set well enough to write a parseable pair
        assert parse_pairs(completion.text)


@pytest.mark.slow
def test_training_resumes_from_its_last_checkpoint(tmp_path, tiny_model):
    from instructpt.finetune.train import TrainConfig, train_synthesizer

    data = tmp_path / "ft"
    data.mkdir()
    (data / "d.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records(4)))
    config = TrainConfig(base=str(tiny_model), data=str(data), output=str(tmp_path / "o"), max_len=256,
                         max_steps=6, save_steps=3, batch_size=1, grad_accum=1)  # fmt: skip
    first = train_synthesizer(config, log=lambda m: None)
    assert not first["resumed"] and (tmp_path / "o" / "checkpoint-6").is_dir()
    config.max_steps = 9
    second = train_synthesizer(config, log=lambda m: None)
    assert second["resumed"] and second["steps"] == 9
