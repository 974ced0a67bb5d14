"""Corpus I/O: every format, every kind of bad record, stable ids."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from instructpt.errors import UsageError
from instructpt.io.corpus import expand_inputs, file_kind, read_corpus
from instructpt.records import Document, Reject, content_id

GOOD = [{"id": "a", "text": "Alpha text."}, {"id": 7, "text": "Beta text."}, {"text": "No id here."}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def docs_of(items):
    return [(d.id, d.text) for d in items if isinstance(d, Document)]


EXPECTED = [("a", "Alpha text."), ("7", "Beta text."), (content_id("No id here."), "No id here.")]


def test_jsonl_plain_gzip_and_zstd(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in GOOD).encode()
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    for name in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst"):
        assert docs_of(read_corpus([tmp_path / name])) == EXPECTED


def test_parquet_with_custom_fields(tmp_path):
    table = pa.table({"doc_id": ["x", None], "content": ["First.", "Second."], "other": [1, 2]})
    pq.write_table(table, tmp_path / "d.parquet")
    items = list(read_corpus([tmp_path / "d.parquet"], text_field="content", id_field="doc_id"))
    assert docs_of(items) == [("x", "First."), (content_id("Second."), "Second.")]
    assert items[0].source.endswith("d.parquet#row0")


def test_parquet_without_the_text_column_is_a_usage_error(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "d.parquet")
    with pytest.raises(UsageError, match="no column 'text'.*field"):
        list(read_corpus([tmp_path / "d.parquet"]))


def test_text_files_and_folders_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("Bee.")
    (tmp_path / "sub" / "a.txt").write_text("Ay.")
    (tmp_path / "ignored.csv").write_text("nope")
    files = expand_inputs([tmp_path])
    assert [f.name for f in files] == ["b.txt", "a.txt"]
    assert [t for _, t in docs_of(read_corpus([tmp_path]))] == ["Bee.", "Ay."]


def test_bad_records_are_rejected_with_exact_reasons(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"id": "ok", "text": "Fine."}\n'
        b'{"id": "x", "text": "unterminated\n'
        b"[1, 2]\n"
        b'{"id": "n"}\n'
        b'{"id": "num", "text": 42}\n'
        b'{"id": "blank", "text": "   "}\n'
        b'{"id": "bytes", "text": "caf\xe9"}\n'
        b"\n"
        b'{"id": {"a": 1}, "text": "Dict id."}\n'
        b'{"id": "ok", "text": "Same id again."}\n'
        b'{"id": "ok2", "text": "Fine too."}\n'
    )
    items = list(read_corpus([path]))
    rejects = [(r.source.rsplit(":", 1)[1], r.reason) for r in items if isinstance(r, Reject)]
    assert rejects == [
        ("2", "invalid_json"),
        ("3", "not_an_object"),
        ("4", "missing_text"),
        ("5", "text_not_string"),
        ("6", "empty_text"),
        ("7", "invalid_utf8"),
        ("9", "bad_id"),
        ("10", "duplicate_id"),
    ]
    assert docs_of(items) == [("ok", "Fine."), ("ok2", "Fine too.")]


def test_corrupt_compressed_file_is_a_reject_not_a_crash(tmp_path):
    good = gzip.compress(b'{"text": "One."}\n' * 1000)
    (tmp_path / "broken.jsonl.gz").write_bytes(good[: len(good) // 2])
    items = list(read_corpus([tmp_path / "broken.jsonl.gz"]))
    assert isinstance(items[-1], Reject) and items[-1].reason == "unreadable_file"


def test_input_errors(tmp_path):
    with pytest.raises(UsageError, match="input not found"):
        expand_inputs([tmp_path / "missing.jsonl"])
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(UsageError, match="unsupported file type"):
        expand_inputs([tmp_path / "x.csv"])
    with pytest.raises(UsageError, match="no input files match"):
        expand_inputs([str(tmp_path / "*.jsonl")])


@pytest.mark.parametrize(
    "name, kind",
    [
        ("a.jsonl", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.JSONL.zst", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.txt", "text"),
        ("a.md", "text"),
        ("a.csv", None),
        ("a.parquet.gz", None),
    ],
)
def test_file_kind(name, kind):
    from pathlib import Path

    assert file_kind(Path(name)) == kind


def test_content_ids_are_stable():
    assert content_id("hello") == "aaf4c61ddcc5e8a2"


def test_estimate_records(tmp_path):
    from instructpt.io.corpus import estimate_records

    write_jsonl(tmp_path / "a.jsonl", GOOD)
    pq.write_table(pa.table({"text": ["x", "y"]}), tmp_path / "b.parquet")
    (tmp_path / "c.txt").write_text("t")
    assert estimate_records(expand_inputs([tmp_path])) == 3 + 2 + 1
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(b"{}\n"))
    assert estimate_records(expand_inputs([tmp_path])) is None


def test_fsspec_urls_are_listed_and_streamed():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    data = "".join(json.dumps(r) + "\n" for r in GOOD).encode()
    fs.pipe("/bucket/corpus/a.jsonl", data)
    fs.pipe("/bucket/corpus/b.jsonl.gz", gzip.compress(b'{"id": "z", "text": "Zipped."}\n'))
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["From parquet."]}), buf)
    fs.pipe("/bucket/corpus/c.parquet", buf.getvalue().to_pybytes())
    fs.pipe("/bucket/corpus/notes.csv", b"ignored")
    files = expand_inputs(["memory://bucket/corpus"])
    assert [str(f) for f in files] == ["memory:///bucket/corpus/a.jsonl", "memory:///bucket/corpus/b.jsonl.gz",
                                       "memory:///bucket/corpus/c.parquet"]  # fmt: skip
    texts = [d.text for d in read_corpus(["memory://bucket/corpus"]) if isinstance(d, Document)]
    assert texts == [t for _, t in EXPECTED] + ["Zipped.", "From parquet."]
    assert [str(f) for f in expand_inputs(["memory://bucket/corpus/*.gz"])] == [
        "memory:///bucket/corpus/b.jsonl.gz"
    ]
    with pytest.raises(UsageError, match="input not found: memory://bucket/nothing"):
        expand_inputs(["memory://bucket/nothing"])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_shard_reads_the_same_through_the_corpus_reader_and_the_shard_reader(tmp_path, fmt):
    """Our own shards as input: io/corpus reads them through io/shards, row for row."""
    from instructpt.io.shards import encode_rows, read_rows

    rows = [{"id": f"r{k}", "text": f"Text number {k}.", "n": k} for k in range(10_000)]
    path = tmp_path / f"part-00000.{fmt}"
    path.write_bytes(encode_rows(rows, fmt))
    assert read_rows(path) == rows
    assert docs_of(read_corpus([path])) == [(r["id"], r["text"]) for r in rows]
    if fmt == "parquet":
        assert read_rows(path, columns=["text"]) == [{"text": r["text"]} for r in rows]
