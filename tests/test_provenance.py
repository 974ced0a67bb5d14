"""Provenance of a mix: every training sequence maps back to its document pieces (sidecar index per
output shard), and `instructpt trace` prints the documents, pairs and templates behind one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from instructpt.cli import main
from instructpt.errors import UsageError
from instructpt.io.shards import read_rows
from instructpt.mixing.formats import pack, pack_labeled
from instructpt.mixing.mix import run_mix
from instructpt.mixing.recipes import MixConfig, SourceSpec
from instructpt.mixing.trace import trace_sequence
from instructpt.templating.stage import run_templify

from .test_pipeline import config, make_corpus, run

QUIET = {"log": lambda m: None}


@pytest.fixture
def pipeline(tmp_path, scripted, tokenizer) -> dict[str, Path]:
    """A corpus, its synthesize and templify folders, and the tokenizer's JSON."""
    make_corpus(tmp_path / "corpus.jsonl")
    run(config(tmp_path, out="synth", shard_size=4), scripted)
    run_templify(tmp_path / "synth", tmp_path / "aug", progress=False, **QUIET)
    tokenizer.backend.save(str(tmp_path / "tokenizer.json"))
    return {"root": tmp_path, "corpus": tmp_path / "corpus.jsonl", "synth": tmp_path / "synth",
            "aug": tmp_path / "aug", "tok": tmp_path / "tokenizer.json"}  # fmt: skip


def mix(p: dict[str, Path], out: str, fmt: str, pack: bool = True, **kw) -> dict:
    sources = [SourceSpec("augmented", [str(p["aug"])], weight=1.0),
               SourceSpec("raw", [str(p["corpus"])], weight=0.5)]  # fmt: skip
    cfg = MixConfig(sources, str(p["root"] / out), str(p["tok"]), format=fmt, pack=pack, seq_len=48,
                    bos_text="<s>", eos_text="</s>", seed=5, **{"workers": 1, **kw})  # fmt: skip
    return run_mix(cfg, **QUIET)


def pieces_by_sequence(out: Path) -> dict[int, list[dict]]:
    rows = [r for f in sorted((out / "provenance").glob("part-*.parquet")) for r in read_rows(f)]
    by: dict[int, list[dict]] = {}
    for r in rows:
        by.setdefault(r["sequence"], []).append(r)
    return by


def sequences(out: Path, manifest: dict) -> list[np.ndarray]:
    """The training sequences as the trainer reads them."""
    if manifest["format"] == "hf":
        import datasets

        return [np.asarray(r["input_ids"]) for r in datasets.load_from_disk(str(out / "hf"))]
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return [np.array(ds[i]) for f in sorted((out / "data").glob("*.idx"))
            for ds in [IndexedDataset(str(f.with_suffix("")))] for i in range(len(ds))]  # fmt: skip


def documents(p: dict[str, Path]) -> dict[tuple[str, str], dict]:
    """{(source, id): row} of every input document: augmented texts and raw corpus lines."""
    docs = {("augmented", r["id"]): r for f in sorted((p["aug"] / "data").iterdir()) for r in read_rows(f)}
    for line in p["corpus"].read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the corpus's broken lines (rejected by mix)
        docs[("raw", row["id"])] = row
    return docs


@pytest.mark.parametrize("fmt", ["megatron", "hf"])
def test_every_piece_of_every_packed_sequence_is_its_documents_tokens(pipeline, tokenizer, fmt):
    if fmt == "hf":
        pytest.importorskip("datasets")
    else:
        pytest.importorskip("megatron.core")
    out = pipeline["root"] / "train"
    manifest = mix(pipeline, "train", fmt, shard_tokens=48 * 7)
    assert len(manifest["shards"]) > 1  # sequence numbers run across shards
    rows, by_seq, docs = sequences(out, manifest), pieces_by_sequence(out), documents(pipeline)
    assert sorted(by_seq) == list(range(len(rows))) and len(rows) > 10
    encode = lambda text: tokenizer.backend.encode("<s>" + text + "</s>", add_special_tokens=False).ids  # noqa: E731
    sources, packed_across = set(), 0
    for index, row in enumerate(rows):
        pieces = sorted(by_seq[index], key=lambda r: r["start"])
        assert [p["start"] for p in pieces] == [0] + [p["end"] for p in pieces[:-1]]  # they tile the row
        assert pieces[-1]["end"] == len(row) == 48
        for piece in pieces:
            doc = docs[(piece["source"], piece["doc_id"])]
            ids = encode(doc["text"])
            assert piece["doc_tokens"] == len(ids)
            length = piece["end"] - piece["start"]
            got = row[piece["start"] : piece["end"]].tolist()
            assert got == ids[piece["doc_offset"] : piece["doc_offset"] + length]
            decoded = tokenizer.backend.decode(got, skip_special_tokens=False)
            decoded = decoded.replace("<s>", "").replace("</s>", "")  # BOS/EOS: the text's ends
            assert " ".join(decoded.split()) in " ".join(doc["text"].split())
            if piece["source"] == "augmented":
                assert piece["entries"] == doc["source_ids"] and piece["templates"] == doc["templates"]
            else:
                assert piece["entries"] == [] and piece["templates"] == []
            sources.add(piece["source"])
            packed_across += piece["doc_offset"] > 0
    assert sources == {"augmented", "raw"} and packed_across > 0
    assert any(p["templates"] for ps in by_seq.values() for p in ps)


def test_trace_names_the_documents_pairs_and_templates(pipeline):
    pytest.importorskip("megatron.core")
    out = pipeline["root"] / "train"
    manifest = mix(pipeline, "train", "megatron", shard_tokens=48 * 5)
    by_seq = pieces_by_sequence(out)
    index = next(i for i, ps in sorted(by_seq.items()) if any(p["templates"] for p in ps))
    result = CliRunner().invoke(main, ["trace", str(out), str(index), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["sequence"] == index and info["tokens"] == 48
    assert [(p["doc_id"], p["source"]) for p in info["pieces"]] == [
        (p["doc_id"], p["source"]) for p in sorted(by_seq[index], key=lambda r: r["start"])
    ]
    synth = {r["id"]: r for f in sorted((pipeline["synth"] / "data").iterdir()) for r in read_rows(f)}
    piece = next(p for p in info["pieces"] if p["templates"])
    assert piece["entries"] and "note" not in piece
    for entry in piece["entries"]:
        expected = [
            {"instruction": q["instruction"], "response": q["response"]} for q in synth[entry["id"]]["pairs"]
        ]
        assert entry["pairs"] == expected and expected
    text = CliRunner().invoke(main, ["trace", str(out), str(index)])
    assert text.exit_code == 0
    assert repr(piece["doc_id"]) in text.output and piece["templates"][0] in text.output
    assert piece["entries"][0]["pairs"][0]["instruction"][:40] in text.output
    # counted inside a shard, as a trainer reading one .bin/.idx does
    shard = info["shard"]
    local = CliRunner().invoke(
        main, ["trace", str(out), str(info["index_in_shard"]), "--shard", str(shard), "--json"]
    )
    assert json.loads(local.output)["pieces"] == info["pieces"]
    # the synthesize folder gone: pieces and templates still, pairs with a note
    (pipeline["synth"] / "manifest.json").unlink()
    gone = trace_sequence(out, index)
    assert [p["doc_id"] for p in gone["pieces"]] == [p["doc_id"] for p in info["pieces"]]
    assert all(e["pairs"] is None for p in gone["pieces"] for e in p["entries"])
    assert "synthesize folder" in next(p for p in gone["pieces"] if p["entries"])["note"]
    total = sum(s["provenance"]["sequences"] for s in manifest["shards"])
    assert total == len(by_seq)


def test_trace_refuses_bad_index_and_folders_without_provenance_in_one_line(pipeline):
    out = pipeline["root"] / "train"
    mix(pipeline, "train", "megatron", pack=False)
    total = len(pieces_by_sequence(out))
    for args, message in [
        ([str(out), str(total)], f"sequence {total} is out of range"),
        ([str(out), "--", "-1"], "sequence -1 is out of range"),
        ([str(out), "0", "--shard", "9"], "--shard 9 is out of range"),
        ([str(pipeline["aug"]), "0"], "is a templify output"),
        ([str(pipeline["root"] / "nowhere"), "0"], "is not a mix output folder"),
    ]:
        result = CliRunner().invoke(main, ["trace", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]:
        shard.pop("provenance")
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="no provenance index"):
        trace_sequence(out, 0)


def test_unpacked_and_text_outputs_have_one_piece_per_sequence(pipeline):
    out = pipeline["root"] / "texts"
    mix(pipeline, "texts", "parquet", pack=False, shard_tokens=400)
    rows = [r for f in sorted((out / "data").glob("*.parquet")) for r in read_rows(f)]
    by_seq = pieces_by_sequence(out)
    assert sorted(by_seq) == list(range(len(rows)))
    assert [(by_seq[i][0]["doc_id"], by_seq[i][0]["source"]) for i in range(len(rows))] == [
        (r["id"], r["source"]) for r in rows
    ]
    assert all(len(ps) == 1 and ps[0]["start"] == 0 == ps[0]["doc_offset"] for ps in by_seq.values())
    assert all(ps[0]["end"] == ps[0]["doc_tokens"] for ps in by_seq.values())
    assert not any(f.name.startswith("part-") and "provenance" in f.name for f in (out / "data").iterdir())


def test_rerun_and_workers_write_the_same_bytes_sidecars_included(pipeline):
    one = mix(pipeline, "one", "megatron", shard_tokens=48 * 6)
    two = mix(pipeline, "two", "megatron", shard_tokens=48 * 6, workers=2)
    root = pipeline["root"]

    def files(name: str) -> dict[str, bytes]:
        return {p.relative_to(root / name).as_posix(): p.read_bytes() for sub in ("data", "provenance")
                for p in sorted((root / name / sub).rglob("*"))}  # fmt: skip

    assert files("one") == files("two") and any(k.startswith("provenance/") for k in files("one"))
    assert one["shards"] == two["shards"] and all("sha256" in s["provenance"] for s in one["shards"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=20), st.integers(1, 16))
def test_pack_labeled_pieces_tile_rows_and_follow_documents(lengths, seq_len):
    docs = [np.arange(n) + 1000 * i for i, n in enumerate(lengths)]
    rows = list(pack_labeled(iter(enumerate(docs)), seq_len))
    assert [(r.tolist(), s) for r, s, _ in rows] == [(r.tolist(), s) for r, s in pack(iter(docs), seq_len)]
    stream = np.concatenate(docs) if docs else np.zeros(0)
    written = [t for r, _, _ in rows for t in r.tolist()]
    assert written == stream[: len(rows) * seq_len].tolist() and len(stream) - len(written) < seq_len
    for row, starts, pieces in rows:
        assert [p[1] for p in pieces] == [0] + [p[2] for p in pieces[:-1]] and pieces[-1][2] == seq_len
        assert starts == [start for _, start, _, offset in pieces if offset == 0]
        for label, start, end, offset in pieces:
            assert row[start:end].tolist() == docs[label][offset : offset + end - start].tolist()
