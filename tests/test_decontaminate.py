"""Decontamination (quality/): normalised n-grams, the index, eval sets, the stage, CLI and `run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.errors import UsageError
from instructpt.quality.decontaminate import (
    DecontaminateOptions,
    build_index,
    cut_document,
    run_decontaminate,
)
from instructpt.quality.evalsets import EvalSetSpec, parse_eval_set
from instructpt.quality.ngrams import NgramIndex, tokens, tokens_with_spans
from instructpt.synthesis.format import Pair, serialize_pairs
from instructpt.testing import scripted_generate

# 25 words; every 13-gram of it is a benchmark n-gram
BENCH_Q = (
    "Which planet in our solar system has the longest day of all the planets that orbit the sun "
    "and why does it rotate so slowly"
)
FILLER = (
    "The harbour town keeps a small museum of old maps, ropes and ship bells, and the volunteers who "
    "run it open the doors every morning at nine for visitors from the coast. "
)
QUIET = lambda m: None  # noqa: E731


def find(index: NgramIndex, *texts: str) -> list[str]:
    return [h.benchmark for h in index.find([tokens(t) for t in texts])]


# -- normalisation and the index -------------------------------------------------------------


def test_tokens_lowercase_and_strip_punctuation():
    assert tokens("Don't PANIC -- it's well-known: 42, (really)!") == [
        "dont",
        "panic",
        "its",
        "well",
        "known",
        "42",
        "really",
    ]
    assert tokens("Ünïcode Straße, naïve café") == ["ünïcode", "straße", "naïve", "café"]


@pytest.mark.parametrize("text", ["a''b c", "rock 'n' roll", "İstanbul’s ÉTÉ", "x\u2019\u2019y", "_a_b_"])
def test_spans_agree_with_tokens_on_edge_cases(text):
    assert [w for w, _, _ in tokens_with_spans(text)] == tokens(text)


@given(st.text(alphabet=st.sampled_from("aBİé1_ '\u2019.-\u0307"), max_size=60) | st.text(max_size=200))
def test_spans_agree_with_tokens(text):
    spans = tokens_with_spans(text)
    assert [w for w, _, _ in spans] == tokens(text)
    for word, start, end in spans:
        assert tokens(text[start:end]) == [word]


@given(
    st.lists(st.sampled_from(["alpha", "Beta", "gamma", "DELTA", "eps"]), min_size=13, max_size=30),
    st.sampled_from([" ", ", ", "! ", " - ", "; "]),
)
def test_case_and_punctuation_do_not_change_a_match(words, sep):
    index = NgramIndex.build([("b", " ".join(words))])
    assert find(index, sep.join(w.upper() for w in words)) == ["b"] * (len(words) - 12)


@pytest.mark.parametrize(
    "text, matches",
    [
        (BENCH_Q, True),
        (BENCH_Q.upper().replace(" ", ", "), True),  # changed case and punctuation
        ("Intro words here. " + BENCH_Q.replace("sun", "Sun!") + " More after.", True),
        (" ".join(BENCH_Q.split()[:12]), False),  # 12 shared words: a near miss
        (" ".join(BENCH_Q.split()[6:18]) + " or then something else entirely", False),
        (BENCH_Q.replace("all the planets", "all those planets"), False),  # one word changed: the middle one
    ],
)
def test_near_misses(text, matches):
    index = NgramIndex.build([("qa", BENCH_Q)])
    assert bool(find(index, text)) is matches


def test_short_eval_texts_are_matched_whole_and_counted():
    index = NgramIndex.build([("qa", "What is the capital city of France today?"), ("qa", "Too short.")])
    assert index.stats["qa"] == {"texts": 2, "ngrams": 1, "too_short": 1}
    assert find(index, "Quiz: what is the capital city of France today? Paris.") == ["qa"]
    assert find(index, "what is the capital city of France") == []  # 7 of its 8 words
    assert NgramIndex.build([("qa", "What is the capital city of France today?")], min_words=13).tables == {}


def test_ngrams_never_span_two_segments():
    index = NgramIndex.build([("qa", BENCH_Q)])
    words = BENCH_Q.split()
    assert find(index, " ".join(words[:7]), " ".join(words[7:14])) == []
    hits = index.find([tokens("nothing here"), tokens(BENCH_Q)])
    assert {h.segment for h in hits} == {1} and hits[0].start == 0 and hits[0].length == 13


def test_first_benchmark_wins_a_shared_ngram_and_digest_tracks_content():
    a = NgramIndex.build([("first", BENCH_Q), ("second", BENCH_Q)])
    assert set(find(a, BENCH_Q)) == {"first"}
    assert a.digest() == NgramIndex.build([("first", BENCH_Q), ("second", BENCH_Q)]).digest()
    assert a.digest() != NgramIndex.build([("first", BENCH_Q + " extra")]).digest()


def test_cut_document_removes_the_match_and_a_window():
    text = FILLER * 3 + BENCH_Q + ". " + FILLER * 3
    hits = [(h.start, h.length) for h in NgramIndex.build([("qa", BENCH_Q)]).find([tokens(text)])]
    cut = cut_document(text, hits, 200)
    assert cut is not None and "planet" not in cut and "harbour town" in cut
    assert len(cut) <= len(text) - len(BENCH_Q) - 2 * 200 + 4
    assert cut_document(BENCH_Q, [(0, 13)], 200) is None  # nothing left: drop
    assert cut_document("short " + BENCH_Q, [(1, 13), (13, 13)], 0) == "short"


# -- eval set specs and formats --------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("data/mmlu.jsonl", EvalSetSpec("mmlu", "data/mmlu.jsonl")),
        ("data/mmlu.jsonl:question", EvalSetSpec("mmlu", "data/mmlu.jsonl", ("question",))),
        (
            "mm=data/mmlu.jsonl:question, choices",
            EvalSetSpec("mm", "data/mmlu.jsonl", ("question", "choices")),
        ),
        ("gsm=data/gsm8k", EvalSetSpec("gsm", "data/gsm8k")),
    ],
)
def test_parse_eval_set(spec, expected):
    assert parse_eval_set(spec) == expected


@pytest.mark.parametrize("spec", ["", "  ", "x.jsonl:", "name=:q"])
def test_parse_eval_set_refuses(spec):
    with pytest.raises(UsageError):
        parse_eval_set(spec)


@given(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.lists(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), min_size=1, max_size=3),
)
def test_parse_eval_set_round_trip(name, fields):
    spec = parse_eval_set(f"{name}=sets/{name}.jsonl:{','.join(fields)}")
    assert spec == EvalSetSpec(name, f"sets/{name}.jsonl", tuple(fields))


def json_in(output: str) -> dict:
    """The JSON object printed by a command whose output also holds its log lines."""
    return json.JSONDecoder().raw_decode(output[output.index("{") :])[0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_set_formats_and_fields(tmp_path):
    pytest.importorskip("datasets")
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": BENCH_Q, "answer": "Venus", "note": "unrelated " * 20}]
    jsonl = write_jsonl(tmp_path / "qa.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "qa.parquet")
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "qa_hf"))
    for spec in [str(jsonl), f"pq={tmp_path / 'qa.parquet'}", f"hf={tmp_path / 'qa_hf'}:question"]:
        index = build_index([spec])
        assert set(find(index, "Tell me: " + BENCH_Q)) == {spec.split("=")[0] if "=" in spec else "qa"}, spec
    only_note = build_index([f"{jsonl}:note"])
    assert find(only_note, BENCH_Q) == [] and set(find(only_note, "unrelated " * 13)) == {"qa"}
    with pytest.raises(UsageError, match="no field 'nope'"):
        build_index([f"{jsonl}:nope"])
    with pytest.raises(UsageError, match="does not exist"):
        build_index([str(tmp_path / "missing.jsonl")])
    with pytest.raises(UsageError, match="two eval sets are named 'qa'"):
        build_index([str(jsonl), f"qa={tmp_path / 'qa.parquet'}"])


def test_lm_eval_local_yaml_task(tmp_path):
    pytest.importorskip("lm_eval")
    data = write_jsonl(
        tmp_path / "local_qa.json",
        [
            {"question": BENCH_Q, "answer": "Venus"},
            {"question": "How many legs has a spider?", "answer": "8"},
        ],
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "local_qa.yaml").write_text(
        "task: instructpt_local_qa\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {tmp_path / 'cache'}\n"
        "test_split: test\noutput_type: generate_until\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: exact_match\n    higher_is_better: true\n"
    )
    index = build_index(lm_eval_tasks=["instructpt_local_qa"], lm_eval_include=str(tasks))
    assert index.benchmarks == ["instructpt_local_qa"] and index.stats["instructpt_local_qa"]["texts"] >= 2
    assert set(find(index, "A quiz. " + BENCH_Q.lower())) == {"instructpt_local_qa"}
    with pytest.raises(UsageError, match="could not be loaded"):
        build_index(lm_eval_tasks=["no_such_task_anywhere"], lm_eval_include=str(tasks))


# -- the stage -----------------------------------------------------------------------------


def make_synthesized(tmp_path: Path, scripted, n: int = 10, shard_size: int = 4, name: str = "synth") -> Path:
    """A finished synthesize folder: doc3 holds the benchmark question, doc5's pairs ask it."""
    from instructpt.synthesis.stage import SynthesisConfig, run_synthesis

    lines = []
    for i in range(n):
        text = f"Document {i} tells of region {i}. " + FILLER * 2
        if i == 3:
            text += FILLER * 2 + BENCH_Q.upper() + "? " + FILLER * 4  # > 200 characters left each side
        if i == 5:
            text += "The lighthouse keeper also teaches astronomy to children."
        lines.append(json.dumps({"id": f"doc{i}", "text": text}))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")

    def respond(prompt: str) -> str:
        document = prompt[prompt.rfind("<CON> ") + 6 : prompt.rfind(" </CON>")]
        if "lighthouse" in document:
            return serialize_pairs(
                [Pair(BENCH_Q + "?", "Venus"), Pair("What does the keeper teach?", "Astronomy")]
            )
        return scripted_generate([prompt])[0]

    config = SynthesisConfig(
        inputs=[str(corpus)], output=str(tmp_path / name), model="m", engine="s", shard_size=shard_size
    )
    run_synthesis(config, lambda: scripted(respond, max_model_len=8192), progress=False, log=QUIET)
    return tmp_path / name


def read_out(folder: Path) -> list[dict]:
    from instructpt.io.shards import read_rows

    return [row for path in sorted((folder / "data").iterdir()) for row in read_rows(path)]


@pytest.mark.parametrize("action", ["cut", "drop"])
def test_stage_finds_planted_question_in_documents_and_pairs(tmp_path, scripted, action):
    synth = make_synthesized(tmp_path, scripted)
    evals = write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q, "answer": "Venus"}])
    out = tmp_path / "clean"
    summary = run_decontaminate(
        synth, out, [str(evals)], DecontaminateOptions(document_action=action), progress=False, log=QUIET
    )
    hits = [json.loads(line) for line in (out / "contamination.jsonl").read_text().splitlines()]
    assert {(h["doc_id"], h["pair"], h["action"]) for h in hits} == {
        ("doc3", None, "document_cut" if action == "cut" else "document_dropped"),
        ("doc5", 0, "pair_dropped"),
    }
    assert all(h["benchmark"] == "quiz" and len(h["ngram"].split()) == 13 for h in hits)
    assert summary["contamination"] == {"quiz": {"documents": 1, "pairs": 1}}
    assert summary["pairs_dropped"]["contaminated"] == 1
    rows = {r["doc_id"]: r for r in read_out(out)}
    assert "doc5" in rows and [p["instruction"] for p in rows["doc5"]["pairs"]] == [
        "What does the keeper teach?"
    ]
    if action == "cut":
        assert summary["documents_cut"] == 1 and "PLANET" not in rows["doc3"]["text"]
        assert "HARBOUR" not in rows["doc3"]["text"].upper() or "harbour" in rows["doc3"]["text"]
    else:
        assert summary["documents_dropped"] == 1 and "doc3" not in rows
    assert summary["documents_in"] == 10 and summary["documents_out"] == 10 - (action == "drop")
    # templify reads the output unchanged, and no text carries the benchmark question
    from instructpt.templating.stage import run_templify

    templified = run_templify(out, tmp_path / "aug", progress=False, log=QUIET)
    assert templified["documents"] == summary["documents_out"]
    texts = [r["text"] for r in read_out(tmp_path / "aug")]
    assert not NgramIndex.build([("q", BENCH_Q)]).find([tokens(t) for t in texts])


def test_stage_resumes_and_status_merge_work(tmp_path, scripted):
    synth = make_synthesized(tmp_path, scripted)
    evals = [str(write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q}]))]
    single = tmp_path / "single"
    run_decontaminate(synth, single, evals, progress=False, log=QUIET)
    logs: list[str] = []
    run_decontaminate(synth, single, evals, progress=False, log=logs.append)
    assert any("already complete" in line for line in logs)
    split = tmp_path / "split"
    run_decontaminate(synth, split, evals, progress=False, log=QUIET, num_workers=2, worker_index=1)
    status = json.loads(CliRunner().invoke(main, ["status", str(split), "--json"]).output)
    assert status["stage"] == "decontaminate" and status["shards_done"] == 1 and not status["complete"]
    run_decontaminate(synth, split, evals, progress=False, log=QUIET, num_workers=2, worker_index=0)
    merged = CliRunner().invoke(main, ["merge", str(split)])
    assert merged.exit_code == 0, merged.output
    for name in ("data/part-00000.parquet", "data/part-00002.parquet", "contamination.jsonl"):
        assert (split / name).read_bytes() == (single / name).read_bytes()
    assert json.loads((split / "summary.json").read_text()) == json.loads(
        (single / "summary.json").read_text()
    )
    changed = [str(write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q + " today"}]))]
    with pytest.raises(UsageError, match="other settings"):
        run_decontaminate(synth, single, changed, progress=False, log=QUIET)


def test_stage_refuses_bad_input(tmp_path, scripted):
    with pytest.raises(UsageError, match="not an `instructpt synthesize` output folder"):
        run_decontaminate(tmp_path / "nope", tmp_path / "out", progress=False, log=QUIET)
    synth = make_synthesized(tmp_path, scripted, n=3)
    with pytest.raises(UsageError, match="document-action"):
        run_decontaminate(synth, tmp_path / "out", options=DecontaminateOptions(document_action="keep"))


def test_cli_end_to_end(tmp_path, scripted):
    synth = make_synthesized(tmp_path, scripted)
    evals = write_jsonl(tmp_path / "quiz.jsonl", [{"question": BENCH_Q, "id": 1}])
    out = tmp_path / "clean"
    result = CliRunner().invoke(
        main,
        [
            "decontaminate",
            str(synth),
            "-o",
            str(out),
            "--eval-set",
            f"trivia={evals}:question",
            "--document-action",
            "drop",
            "--json",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json_in(result.output)
    assert summary["contamination"] == {"trivia": {"documents": 1, "pairs": 1}}
    assert (
        summary["options"]["document_action"] == "drop"
        and summary["index"]["benchmarks"]["trivia"]["texts"] == 1
    )
    bad = CliRunner().invoke(
        main, ["decontaminate", str(synth), "-o", str(out / "x"), "--eval-set", "nope.jsonl"]
    )
    assert bad.exit_code != 0 and "does not exist" in bad.output and "Traceback" not in bad.output
    bad = CliRunner().invoke(main, ["decontaminate", str(synth), "-o", str(out / "y"), "--window", "-1"])
    assert bad.exit_code != 0 and "--window must be at least 0" in bad.output


def test_run_with_a_decontaminate_section(tmp_path, tiny_model):
    import yaml

    from .test_run import write_config

    path = write_config(tmp_path, tiny_model)
    config = yaml.safe_load(path.read_text())
    evals = write_jsonl(tmp_path / "quiz.jsonl", [{"question": "Therefore, region 3 has plenty of water."}])
    config["decontaminate"] = {"eval_sets": [f"quiz={evals}"], "min_words": 6}
    config.pop("mix")
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    results = json_in(result.output)
    work = Path(config["workdir"])
    assert results["decontaminate"]["contamination"]["quiz"]["documents"] >= 1
    assert json.loads((work / "augmented" / "manifest.json").read_text())["settings"]["source"] == str(
        (work / "decontaminated").resolve()
    )
    assert results["templify"]["documents"] == results["decontaminate"]["documents_out"]
