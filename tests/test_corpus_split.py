"""The paper's corpus split (docs/method.md §5): `synthesize --fraction`, the complement that
`mix --recipe scratch` takes, the refusal of a converted document given again as raw, and the
synthesizer's fine-tuning data repeated k times."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.config import MixSettings, load_config
from instructpt.errors import UsageError
from instructpt.mixing.ftdata import ft_texts
from instructpt.records import entry_id
from instructpt.split import check_fraction, doc_id_of, id_hash, in_fraction
from instructpt.synthesis.stage import run_synthesis
from instructpt.templating.stage import run_templify
from instructpt.workflow import mix, run_pipeline

from .test_pipeline import config, make_corpus, respond

QUIET = {"log": lambda m: None}


@pytest.fixture(scope="module")
def target_tok(tmp_path_factory) -> Path:
    """The tokenizer of the model to pre-train (tokenizers only)."""
    from instructpt.testing import save_tiny_tokenizer

    texts = [f"Document number {i} describes the rivers and lakes of region {i}." for i in range(50)]
    return save_tiny_tokenizer(tmp_path_factory.mktemp("target-tok"), texts, vocab_size=400)


def synthesize(tmp_path: Path, scripted, out: str = "synth", **kw) -> dict:
    cfg = config(tmp_path, out, **kw)
    return run_synthesis(cfg, lambda: scripted(respond), progress=False, **QUIET)


def corpus_ids(path: Path) -> list[str]:
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["id"])
        except ValueError:
            pass  # the broken lines make_corpus plants
    return ids


def synthesized_ids(folder: Path) -> list[str]:
    return [r["id"] for r in pq.read_table(folder / "data").to_pylist()]


def mixed(folder: Path) -> list[dict]:
    files = sorted((folder / "data").glob("*.jsonl"))
    return [json.loads(x) for f in files for x in f.read_text().splitlines()]


def augmented_doc_ids(folder: Path) -> list[str]:
    return [doc_id_of(e) for r in pq.read_table(folder / "data").to_pylist() for e in r["source_ids"]]


# -- the selection -----------------------------------------------------------------------------


def test_selection_is_a_hash_of_the_id_nested_and_near_the_fraction():
    ids = [f"doc-{i}" for i in range(20_000)]
    picked = {f: {i for i in ids if in_fraction(i, f)} for f in (0.1, 0.2, 0.5, 1.0)}
    assert picked[1.0] == set(ids)
    assert picked[0.1] <= picked[0.2] <= picked[0.5]  # a larger fraction only adds documents
    for f in (0.1, 0.2, 0.5):
        assert abs(len(picked[f]) / len(ids) - f) < 0.015, f
    assert in_fraction("doc-7", 0.2) == (id_hash("doc-7") < 0.2 * 2**64)
    for bad in (0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(UsageError, match="--fraction must be a number in"):
            check_fraction(bad)


@given(st.text(max_size=12), st.one_of(st.none(), st.integers(min_value=0, max_value=999)))
def test_document_id_of_any_entry_id(doc_id: str, part: int | None):
    assert doc_id_of(entry_id(doc_id, part)) == doc_id


def test_fraction_is_independent_of_shard_size_and_workers(tmp_path, scripted):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=40)
    expected = sorted(i for i in corpus_ids(corpus) if in_fraction(i, 0.3))
    assert 0 < len(expected) < 40
    runs = {}
    for size in (3, 7):
        summary = synthesize(tmp_path, scripted, f"k{size}", shard_size=size, fraction=0.3)
        runs[size] = sorted(synthesized_ids(tmp_path / f"k{size}"))
        assert summary["not_selected"] == 40 - len(expected)
        assert summary["documents"] == len(expected)
    for index in (0, 1):  # two static workers, each its half of the shards
        cfg = config(tmp_path, "workers", shard_size=3, fraction=0.3)
        summary = run_synthesis(cfg, lambda: scripted(respond), progress=False, num_workers=2,
                                worker_index=index, **QUIET)  # fmt: skip
    assert summary["complete"] and summary["not_selected"] == 40 - len(expected)
    assert runs[3] == runs[7] == sorted(synthesized_ids(tmp_path / "workers")) == expected


def test_another_fraction_is_a_settings_change(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl", n=12)
    synthesize(tmp_path, scripted, fraction=0.5)
    with pytest.raises(UsageError, match="fraction"):
        synthesize(tmp_path, scripted, fraction=0.6)
    synthesize(tmp_path, scripted, "whole")  # fraction 1: the fingerprint of folders written before it
    settings = json.loads((tmp_path / "whole/manifest.json").read_text())["settings"]
    assert "fraction" not in settings
    assert json.loads((tmp_path / "synth/manifest.json").read_text())["settings"]["fraction"] == 0.5


# -- the mix side ------------------------------------------------------------------------------


def scratch(tmp_path: Path, tok: Path, raw: list[str], out: str = "train", **kw) -> dict:
    settings = MixSettings(recipe="scratch", raw=raw, tokenizer=str(tok), format="jsonl", workers=1, **kw)
    return mix(settings, [str(tmp_path / "aug")], str(tmp_path / out), **QUIET)


def test_scratch_mix_takes_the_complement_of_the_converted_fraction(tmp_path, scripted, target_tok):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=60)
    synthesize(tmp_path, scripted, shard_size=4, fraction=0.2)
    run_templify(tmp_path / "synth", tmp_path / "aug", progress=False, **QUIET)
    manifest = scratch(tmp_path, target_tok, [str(corpus)])
    converted = augmented_doc_ids(tmp_path / "aug")
    raw = [r["id"] for r in mixed(tmp_path / "train") if r["source"] == "raw"]
    everything = corpus_ids(corpus)
    assert len(converted) == len(set(converted)) == sum(in_fraction(i, 0.2) for i in everything)
    assert not set(raw) & set(converted)  # no document twice
    assert sorted(raw + converted) == sorted(everything)  # and every document once
    raw_source = next(s for s in manifest["sources"] if s["name"] == "raw")
    assert raw_source["raw_excluded_converted"] == len(converted)
    assert manifest["corpus_split"]["raw_excluded_converted"] == len(converted)
    assert manifest["corpus_split"]["runs"][0]["fraction"] == 0.2


def test_a_converted_document_given_again_as_raw_is_refused(tmp_path, scripted, target_tok):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=10)
    synthesize(tmp_path, scripted, shard_size=5)  # the whole corpus converted: no complement
    run_templify(tmp_path / "synth", tmp_path / "aug", progress=False, **QUIET)
    refusal = (
        r"10 raw document\(s\) of source 'raw' are also in the augmented texts "
        r"\(by id: 'doc0', 'doc1', 'doc2', 'doc3', 'doc4' \.\.\.\)"
    )
    with pytest.raises(UsageError, match=refusal):
        scratch(tmp_path, target_tok, [str(corpus)])
    other = tmp_path / "other.jsonl"  # other raw files: two converted documents among new ones
    rows = [{"id": "new1", "text": "A new raw text."}, {"id": "doc3", "text": "Again."},
            {"id": "new2", "text": "Another new text."}, {"id": "doc7", "text": "Once more."}]  # fmt: skip
    other.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UsageError, match=r"2 raw document\(s\) .* \(by id: 'doc3', 'doc7'\)"):
        scratch(tmp_path, target_tok, [str(other)], out="train2")
    other.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"].startswith("new")))
    manifest = scratch(tmp_path, target_tok, [str(other)], out="train3")
    assert next(s for s in manifest["sources"] if s["name"] == "raw")["documents_selected"] == 2


def write_ft_data(folder: Path) -> Path:
    folder.mkdir()
    records = [
        {"context": "The Nile flows north into the Mediterranean Sea.", "dataset": "geo", "kind": "qa",
         "pairs": [{"instruction": "Where does the Nile flow?", "response": "North, to the sea."}]},
        {"context": "Copper conducts electricity well.", "dataset": "geo", "kind": "multiple-choice",
         "pairs": [{"instruction": "What conducts well?\nOptions:\n- copper\n- rubber", "response": "copper"},
                   {"instruction": "Is copper a metal?", "response": "Yes"}]},
        {"context": "Bees make honey from nectar.", "dataset": "geo", "kind": "abstractive",
         "pairs": [{"instruction": "What do bees make?", "response": "Honey."}]},
    ]  # fmt: skip
    (folder / "geo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "README.md").write_text("not a records file")
    return folder


def test_ft_data_is_rendered_with_the_templates_and_repeated_k_times(tmp_path, scripted, target_tok):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=12)
    synthesize(tmp_path, scripted, shard_size=4, fraction=0.5)
    run_templify(tmp_path / "synth", tmp_path / "aug", progress=False, **QUIET)
    ft = write_ft_data(tmp_path / "ft-data")
    manifest = scratch(tmp_path, target_tok, [str(corpus)], ft_data=[str(ft)], ft_repeat=3)
    rows = [r for r in mixed(tmp_path / "train") if r["source"] == "ft"]
    assert Counter(r["id"] for r in rows) == {f"ft:geo:{i}": 3 for i in (1, 2, 3)}
    nile = next(r["text"] for r in rows if r["id"] == "ft:geo:1")
    assert "The Nile flows north" in nile and "Where does the Nile flow?" in nile
    ft_source = next(s for s in manifest["sources"] if s["name"] == "ft")
    assert (ft_source["documents_available"], ft_source["documents_selected"]) == (3, 9)
    assert ft_source["sampling"] == "repeated x3"
    rendered = [t.text for t in ft_texts(ft / "geo.jsonl", 0)]
    assert rendered == [t.text for t in ft_texts(ft / "geo.jsonl", 0)]  # deterministic
    assert sorted({r["text"] for r in rows}) == sorted(rendered)  # templify's rendering, the mix seed
    scratch(tmp_path, target_tok, [str(corpus)], out="again", ft_data=[str(ft)], ft_repeat=3)
    assert mixed(tmp_path / "again") == mixed(tmp_path / "train")
    with pytest.raises(UsageError, match="--ft-data applies to the scratch recipe"):
        MixSettings(recipe="domain", general=["g"], tokenizer="t", ft_data=["x"]).recipe_sources(
            ["a"], flag=lambda k: "--" + k.replace("_", "-")
        )
    (ft / "geo.jsonl").write_text('{"context": "no pairs"}\n')
    with pytest.raises(UsageError, match=r"geo.jsonl:1: not a fine-tuning record"):
        scratch(tmp_path, target_tok, [str(corpus)], out="bad", ft_data=[str(ft)])


# -- the command line and run ------------------------------------------------------------------


def test_cli_fraction_out_of_range_is_a_clear_error(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=3)
    result = CliRunner().invoke(main, ["synthesize", str(corpus), "-o", str(tmp_path / "o"), "--model", "m",
                                       "--engine", "rules", "--fraction", "1.5"])  # fmt: skip
    assert result.exit_code != 0
    assert "--fraction" in result.output and "Traceback" not in result.output
    help_text = CliRunner().invoke(main, ["mix", "--help"]).output
    assert "--ft-data" in help_text and "--ft-repeat" in help_text


def test_run_yaml_with_fraction_mixes_every_document_once(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=24)
    data = {
        "workdir": str(tmp_path / "work"),
        "synthesize": {"inputs": [str(corpus)], "engine": "rules", "model": str(tiny_model), "shard_size": 5,
                       "max_new_tokens": 24, "max_model_len": 512, "fraction": 0.4},
        "mix": {"recipe": "scratch", "raw": [str(corpus)], "tokenizer": str(tiny_model), "format": "jsonl",
                "workers": 1},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    results = run_pipeline(load_config(path), progress=False, **QUIET)
    selected = [i for i in corpus_ids(corpus) if in_fraction(i, 0.4)]
    assert results["synthesize"]["not_selected"] == 24 - len(selected)
    converted = augmented_doc_ids(tmp_path / "work/augmented")
    raw = [r["id"] for r in mixed(tmp_path / "work/train") if r["source"] == "raw"]
    assert sorted(converted) == sorted(selected)
    assert sorted(raw + converted) == sorted(corpus_ids(corpus))
    with pytest.raises(UsageError, match="synthesize.fraction: Input should be less than or equal to 1"):
        load_config(path, ["synthesize.fraction=2"])
