"""The report shows issue 14's trust features: the paper's corpus split on both sides, the
synthesizer's fine-tuning data repeated k times, a clean stop at --target-tokens, and the mix's
provenance sidecars with a working `instructpt trace` command (real stage outputs, no browser)."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from instructpt.cli import main
from instructpt.report import analyze, build_report
from instructpt.report.page import headline
from instructpt.split import in_fraction
from instructpt.templating.stage import run_templify

from .test_budgets import synth, synth_config
from .test_corpus_split import QUIET, corpus_ids, scratch, synthesize, write_ft_data
from .test_pipeline import make_corpus


@pytest.fixture(scope="module")
def target_tok(tmp_path_factory) -> Path:
    from instructpt.testing import save_tiny_tokenizer

    texts = [f"Document number {i} describes the rivers and lakes of region {i}." for i in range(50)]
    return save_tiny_tokenizer(tmp_path_factory.mktemp("target-tok"), texts, vocab_size=400)


def cards_of(figures: dict) -> dict[str, dict]:
    return {c["label"]: c for c in headline(figures)}


def test_corpus_split_ft_repeats_and_provenance_are_reported(tmp_path, scripted, target_tok):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n=30)
    synthesized = synthesize(tmp_path, scripted, shard_size=4, fraction=0.4)
    run_templify(tmp_path / "synth", tmp_path / "aug", progress=False, **QUIET)
    ft = write_ft_data(tmp_path / "ft-data")
    manifest = scratch(tmp_path, target_tok, [str(corpus)], ft_data=[str(ft)], ft_repeat=3)

    result = analyze([tmp_path / "synth", tmp_path / "aug", tmp_path / "train"], sample_size=3)
    syn, mix = result["figures"]["synthesize"], result["figures"]["mix"]
    ids = corpus_ids(corpus)
    selected = sum(in_fraction(i, 0.4) for i in ids)
    assert syn["fraction"] == 0.4
    assert syn["not_selected"] == synthesized["not_selected"] == len(ids) - selected > 0
    assert syn["stopped"] is None
    converted = manifest["corpus_split"]["raw_excluded_converted"]
    assert converted == selected and mix["corpus_split"]["raw_excluded_converted"] == converted
    raw = next(s for s in mix["sources"] if s["name"] == "raw")
    assert raw["raw_excluded_converted"] == converted
    assert raw["documents_selected"] == len(ids) - selected
    shards = manifest["shards"]
    assert mix["provenance"]["shards"] == len(shards) >= 1
    assert mix["provenance"]["sequences"] == manifest["documents_total"]  # unpacked: one per document

    cards = cards_of(result["figures"])
    split = cards["Corpus split"]
    assert split["value"] == f"{syn['documents']:,} converted"
    assert f"--fraction 0.4: {len(ids) - selected:,} documents left for the raw share" in split["detail"]
    assert cards["Raw share"]["value"] == f"{converted:,} converted documents left out"
    assert f"{tmp_path / 'synth'} (--fraction 0.4)" in cards["Raw share"]["detail"]
    assert cards["Repeated sources"]["value"] == "ft repeated x3"
    assert cards["Repeated sources"]["detail"] == "ft: 3 documents, 9 in the mix"
    assert "Stopped at target tokens" not in cards
    prov = cards["Provenance"]
    assert prov["value"] == f"{manifest['documents_total']:,} sequences traceable"

    # the command the card shows runs as written and finds the documents behind sequence 0
    command = mix["provenance"]["command"]
    assert command in prov["detail"]
    args = shlex.split(command)
    assert args[:2] == ["instructpt", "trace"]
    traced = CliRunner().invoke(main, args[1:])
    assert traced.exit_code == 0, traced.output
    first = pq.read_table(tmp_path / "train" / shards[0]["provenance"]["file"]).to_pylist()[0]
    assert first["sequence"] == 0 and first["doc_id"] in traced.output and first["source"] in traced.output

    if importlib.util.find_spec("plotly") and importlib.util.find_spec("jinja2"):
        page = build_report([tmp_path / "synth", tmp_path / "aug", tmp_path / "train"], sample_size=3)
        for label in ("Corpus split", "Raw share", "Repeated sources", "Provenance"):
            assert f'<div class="label">{label}</div>' in page
        assert "instructpt trace" in page


def test_a_run_without_split_shows_no_split_cards(tmp_path, scripted):
    make_corpus(tmp_path / "corpus.jsonl", n=10)
    synthesize(tmp_path, scripted, shard_size=5)
    result = analyze([tmp_path / "synth"], sample_size=0)
    syn = result["figures"]["synthesize"]
    assert syn["fraction"] == 1.0 and syn["not_selected"] == 0
    cards = cards_of(result["figures"])
    assert not {"Corpus split", "Stopped at target tokens", "Raw share", "Provenance"} & set(cards)


def test_a_stop_at_target_tokens_is_reported(tmp_path, tokenizer):
    stopped = synth(synth_config(tmp_path, 1000), tokenizer)
    assert stopped["stopped"] == "target_tokens"
    syn = analyze([tmp_path / "out"], sample_size=0)["figures"]["synthesize"]
    assert (syn["stopped"], syn["target_tokens"]) == ("target_tokens", 1000)
    assert syn["training_tokens_estimate"] == stopped["training_tokens_estimate"] >= 1000
    card = cards_of({"synthesize": syn})["Stopped at target tokens"]
    assert card["value"] == f"{stopped['training_tokens_estimate']:,} of 1,000"
    assert "larger --target-tokens" in card["detail"]
