"""Mix (docs/method.md §5): recipes, ratios, BOS/EOS as text, every output format read back by its trainer."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructpt.errors import UsageError
from instructpt.mixing.formats import megatron_index, pack
from instructpt.mixing.mix import plan_source, run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec, domain_recipe
from instructpt.mixing.tokenize import TargetTokenizer

WORDS = "river lake water city report market price study growth energy climate team season court".split()


def texts(n: int, seed: int, words: tuple[int, int] = (20, 120)) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(*words))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def mistral_style(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from transformers import PreTrainedTokenizerFast

    from instructpt.testing import train_tokenizer

    folder = tmp_path_factory.mktemp("mistral-tok")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(texts(200, 0), 500),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama3_style(tmp_path_factory) -> Path:
    """Byte-level BPE with Llama 3's special tokens at ids 128000/128001 (so ids need uint32)."""
    pytest.importorskip("transformers")
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    base.train_from_iterator(
        texts(200, 1),
        trainers.BpeTrainer(
            vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        ),
    )
    vocab = base.get_vocab()
    vocab.update({"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001})
    merges = json.loads(base.to_str())["model"]["merges"]
    tok = Tokenizer(
        models.BPE(
            vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split()) for m in merges]
        )
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<|begin_of_text|>", "<|end_of_text|>")]
    )
    folder = tmp_path_factory.mktemp("llama3-tok")
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    ).save_pretrained(folder)
    return folder


def write_texts(path: Path, items: list[str], key: str = "text") -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"{path.stem}-{i}", key: t}) + "\n" for i, t in enumerate(items))
    )
    return path


@pytest.mark.parametrize(
    "style, bos, eos, dtype",
    [
        ("mistral_style", "<s>", "</s>", np.uint16),
        ("llama3_style", "<|begin_of_text|>", "<|end_of_text|>", np.uint32),
    ],
)
def test_bos_eos_as_text_then_no_special_tokens(request, tmp_path, style, bos, eos, dtype):
    folder = request.getfixturevalue(style)
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(folder)
    target = TargetTokenizer.load(str(folder))
    assert (target.bos_text, target.eos_text) == (bos, eos)
    docs = texts(5, 2)
    corpus = write_texts(tmp_path / "a.jsonl", docs)
    out = tmp_path / "out"
    manifest = run_mix(
        MixConfig([SourceSpec("a", [str(corpus)])], str(out), str(folder), format="olmo", workers=1),
        log=lambda m: None,
    )
    assert manifest["tokenizer"]["dtype"] == np.dtype(dtype).name
    array = np.memmap(out / "data" / "part-00000.npy", dtype=dtype, mode="r")
    bos_id, eos_id = hf.convert_tokens_to_ids(bos), hf.convert_tokens_to_ids(eos)
    rows = [
        line.split(",")
        for line in gzip.decompress((out / "data/part-00000.csv.gz").read_bytes()).decode().split("\n")
        if line
    ]
    by_id = {}
    for start, end, doc_id, _ in rows:
        ids = array[int(start) : int(end)].tolist()
        assert ids[0] == bos_id and ids[-1] == eos_id
        assert ids.count(bos_id) == 1 and ids.count(eos_id) == 1
        by_id[doc_id] = ids
    for i, text in enumerate(docs):
        assert by_id[f"a-{i}"] == hf(bos + text + eos, add_special_tokens=False)["input_ids"]


def test_domain_ratio_is_met_within_half_a_percent_on_a_million_tokens(tmp_path, mistral_style):
    aug = write_texts(tmp_path / "aug.jsonl", texts(12000, 3, (80, 200)))
    orca = tmp_path / "orca.parquet"
    general = texts(9000, 4, (20, 120))
    pq.write_table(
        pa.table(
            {
                "id": [f"g{i}" for i in range(9000)],
                "system_prompt": ["You are helpful."] * 9000,
                "question": general,
                "response": [t.upper() for t in general],
            }
        ),
        orca,
    )
    out = tmp_path / "out"
    config = MixConfig(
        domain_recipe([str(aug)], [str(orca)], "1:1"),
        str(out),
        str(mistral_style),
        recipe="domain",
        format="megatron",
        workers=2,
    )
    manifest = run_mix(config, log=lambda m: None)
    aug_src, gen_src = manifest["sources"]
    assert aug_src["tokens_selected"] == aug_src["tokens_available"] >= 1_000_000
    assert abs(gen_src["ratio_to_anchor_achieved"] - 1.0) < 0.005
    assert gen_src["sampling"].startswith("downsampled")
    # each general example is question + " " + response; the system prompt is dropped
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(mistral_style)
    wrapped = ["<s>" + q + " " + q.upper() + "</s>" for q in general]
    expected = {tuple(ids) for ids in hf(wrapped, add_special_tokens=False)["input_ids"]}
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dataset = IndexedDataset(str(out / "data" / "part-00000"))
    assert len(dataset) == manifest["documents_total"]
    assert (
        sum(tuple(dataset[i].tolist()) in expected for i in range(len(dataset)))
        == gen_src["documents_selected"]
    )
    assert sum(len(dataset[i]) for i in range(len(dataset))) == manifest["tokens_total"]


def test_upsampling_is_stated_or_refused(tmp_path, mistral_style):
    aug = write_texts(tmp_path / "aug.jsonl", texts(300, 5))
    gen = write_texts(tmp_path / "gen.jsonl", texts(40, 6))
    sources = [SourceSpec("aug", [str(aug)], 1.0), SourceSpec("gen", [str(gen)], 1.0)]
    manifest = run_mix(
        MixConfig(sources, str(tmp_path / "o1"), str(mistral_style), format="jsonl", workers=1),
        log=lambda m: None,
    )
    assert manifest["sources"][1]["sampling"].startswith("upsampled x")
    with pytest.raises(UsageError, match="would be repeated .*--no-upsample"):
        run_mix(MixConfig(sources, str(tmp_path / "o2"), str(mistral_style), format="jsonl", upsample=False))


def test_megatron_index_matches_megatron_core_builder(tmp_path):
    torch = pytest.importorskip("torch")
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    docs = [
        np.array([1, 5, 7], dtype=np.uint16),
        np.array([9], dtype=np.uint16),
        np.array([3, 3], dtype=np.uint16),
    ]
    builder = IndexedDatasetBuilder(str(tmp_path / "ref.bin"), dtype=np.uint16)
    for d in docs:
        builder.add_item(torch.from_numpy(d.astype(np.int64)))
        builder.end_document()
    builder.finalize(str(tmp_path / "ref.idx"))
    ours = megatron_index(np.array([3, 1, 2]), np.arange(4), np.dtype(np.uint16))
    assert ours == (tmp_path / "ref.idx").read_bytes()


def test_olmo_reader_and_determinism(tmp_path, mistral_style):
    from olmo_core.data.utils import iter_document_indices

    a = write_texts(tmp_path / "a.jsonl", texts(50, 7))
    r = write_texts(tmp_path / "r.jsonl", texts(30, 8))
    cfg = lambda out: MixConfig(
        [SourceSpec("a", [str(a)]), SourceSpec("r", [str(r)])],
        str(tmp_path / out),  # noqa: E731
        str(mistral_style),
        format="olmo",
        seed=3,
        workers=2,
    )
    run_mix(cfg("one"), log=lambda m: None)
    run_mix(cfg("two"), log=lambda m: None)
    for name in ("part-00000.npy", "part-00000.csv.gz"):
        assert (tmp_path / "one/data" / name).read_bytes() == (tmp_path / "two/data" / name).read_bytes()
    spans = list(iter_document_indices(tmp_path / "one/data/part-00000.npy", use_array_if_local=False))
    assert len(spans) == 80 and spans[0][0] == 0
    assert spans[-1][1] == len(np.memmap(tmp_path / "one/data/part-00000.npy", dtype=np.uint16, mode="r"))


def test_text_output_is_shuffled_and_complete(tmp_path, mistral_style):
    a = write_texts(tmp_path / "a.jsonl", texts(20, 9))
    r = write_texts(tmp_path / "r.jsonl", texts(20, 10))
    run_mix(
        MixConfig(
            [SourceSpec("aug", [str(a)]), SourceSpec("raw", [str(r)])],
            str(tmp_path / "o"),
            str(mistral_style),
            format="parquet",
            workers=1,
        ),
        log=lambda m: None,
    )
    rows = pq.read_table(tmp_path / "o/data").to_pylist()
    assert len(rows) == 40 and {r["source"] for r in rows} == {"aug", "raw"}
    assert [r["source"] for r in rows] != ["aug"] * 20 + ["raw"] * 20


def test_hf_packed_rows_and_boundaries(tmp_path, mistral_style):
    datasets = pytest.importorskip("datasets")
    a = write_texts(tmp_path / "a.jsonl", texts(60, 11))
    manifest = run_mix(
        MixConfig(
            [SourceSpec("a", [str(a)])],
            str(tmp_path / "o"),
            str(mistral_style),
            format="hf",
            pack=True,
            seq_len=64,
            workers=1,
        ),
        log=lambda m: None,
    )
    ds = datasets.load_from_disk(str(tmp_path / "o" / "hf"))
    assert all(len(row["input_ids"]) == 64 for row in ds)
    assert len(ds) * 64 + manifest["tokens_dropped_by_packing"] == manifest["tokens_total"]
    assert manifest["tokens_dropped_by_packing"] < 64
    assert ds[0]["doc_starts"][0] == 0


def test_pack_rule():
    docs = [np.arange(5), np.arange(10, 13), np.arange(20, 27)]
    rows = list(pack(iter(docs), 4))
    assert [r.tolist() for r, _ in rows] == [[0, 1, 2, 3], [4, 10, 11, 12], [20, 21, 22, 23]]
    assert [s for _, s in rows] == [[0], [1], [0]]  # the last 3 tokens (24..26) are dropped


def test_plan_source_hits_the_target():
    lengths = np.full(1000, 100, dtype=np.uint32)
    rng = np.random.default_rng(0)
    assert len(plan_source(lengths, 25_040, rng)) == 250
    up = plan_source(lengths, 230_000, np.random.default_rng(0))
    assert len(up) == 2300 and np.bincount(up).max() == 3


def test_bad_input(tmp_path, mistral_style):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n')
    with pytest.raises(UsageError, match="no usable documents .*empty_text: 1"):
        run_mix(
            MixConfig([SourceSpec("e", [str(empty)])], str(tmp_path / "o"), str(mistral_style), workers=1)
        )
    with pytest.raises(UsageError, match="unknown --format 'csv'"):
        run_mix(
            MixConfig([SourceSpec("e", [str(empty)])], str(tmp_path / "o2"), str(mistral_style), format="csv")
        )
    with pytest.raises(UsageError, match="input not found"):
        run_mix(
            MixConfig([SourceSpec("e", [str(tmp_path / "nope")])], str(tmp_path / "o3"), str(mistral_style))
        )
    with pytest.raises(UsageError, match="--ratio must look like"):
        domain_recipe(["a"], ["b"], "one to one")


def test_rejects_are_written_with_their_source(tmp_path, mistral_style):
    a = tmp_path / "a.jsonl"
    a.write_text('{"text": "good text here."}\n{"nope": 1}\nnot json\n')
    manifest = run_mix(
        MixConfig([SourceSpec("a", [str(a)])], str(tmp_path / "o"), str(mistral_style), format="jsonl"),
        log=lambda m: None,
    )
    assert manifest["sources"][0]["rejected"] == {"invalid_json": 1, "missing_text": 1}
    rejects = [json.loads(x) for x in (tmp_path / "o/rejects.jsonl").read_text().splitlines()]
    reasons = [(r["reason"], r["source_name"]) for r in rejects]
    assert reasons == [("missing_text", "a"), ("invalid_json", "a")]


API_SCRIPT = """
import json
from instructpt import MixSettings, mix

settings = MixSettings(recipe="scratch", raw=["raw.jsonl"], tokenizer={tok!r}, format="jsonl", workers=2)
{call}
"""
MIX_CALL = 'print(json.dumps(mix(settings, augmented=["aug.jsonl"], output="{out}")["tokens_total"]))'


def test_python_api_from_a_script_without_a_main_guard_neither_hangs_nor_differs(tmp_path, mistral_style):
    """Tokenizer workers are spawned, which imports the main script again: a top-level `mix(...)`
    would run in every worker (and the pool wait forever) if the workers were used then."""
    (tmp_path / "aug.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(40, 5)))
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(30, 6)))
    note = "not in worker processes: the main script calls instructpt at its top level"
    fix = 'put that call under `if __name__ == "__main__":`'
    for out, guard in (("top", ""), ("guarded", "if __name__ == '__main__':\n    ")):
        script = API_SCRIPT.format(tok=str(mistral_style), call=guard + MIX_CALL.format(out=out))
        (tmp_path / f"{out}.py").write_text(script)
        done = subprocess.run([sys.executable, f"{out}.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (note in done.stderr and fix in done.stderr) is (not guard), done.stderr  # guarded: workers
        assert int(done.stdout.split()[-1]) > 0
    top, guarded = (tmp_path / "top/data/part-00000.jsonl"), (tmp_path / "guarded/data/part-00000.jsonl")
    assert top.read_bytes() == guarded.read_bytes()
