"""Writers for tokenized shards that large-scale trainers read directly.

* Megatron (`.bin` + `.idx`, the MMIDIDX layout of megatron-core's `IndexedDataset`): the
  `.bin` is the token ids back to back; the `.idx` holds a 9-byte magic, version 1, a dtype
  code, the sequence and document counts, int32 sequence lengths, int64 byte pointers and
  int64 document indices. The bytes equal those of megatron-core's `IndexedDatasetBuilder`
  (tested); we write them with numpy because that builder takes torch tensors one at a time.
* OLMo / Dolma (`.npy` + `.csv.gz`): a raw `np.memmap` array of token ids (no .npy header,
  as OLMo reads it) and gzip CSV lines `start,end,id,source` per document, the metadata
  OLMo uses for exact document boundaries.

Token arrays are uint16 when every id fits, else uint32. `write_corpus` writes the shuffled
documents of a mix in any of its formats: text shards (Parquet/JSONL, through the one shard
writer), a Hugging Face dataset, or the tokenized shards above, packed or one row per document;
next to every shard, its provenance index (provenance.py: which document pieces each sequence holds).
Every file is hashed as it is written (`write_recorded`): a shard record's WRITTEN holds those
records, which the stage moves into the manifest's OUTPUT_FILES (io/integrity.py) without
reading the files again; the `hf/` dataset, written by `datasets`, is hashed there once.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import UsageError
from ..io.files import sha256_file, write_atomic
from ..io.integrity import write_recorded
from ..io.output import OutputDir
from ..io.shards import encode_columns, encode_rows
from .provenance import ProvenanceWriter
from .recipes import MixConfig
from .tokenize import SourceData

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
_MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4, np.dtype(np.uint32): 4}
# A shard record's {file: {bytes, sha256, rows, mtime_ns}} of the files written for it, hashed as
# written; popped by the stage into OUTPUT_FILES (never stored under "shards" in the manifest).
WRITTEN = "written"
Records = dict[str, dict[str, Any]]


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of the vocabulary."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def megatron_dtype(dtype: np.dtype) -> np.dtype:
    # Megatron has no uint32 code: ids above 65,535 are stored as int32, as its tools do.
    return np.dtype(np.uint16) if dtype == np.uint16 else np.dtype(np.int32)


def megatron_index(sequence_lengths: np.ndarray, document_indices: np.ndarray, dtype: np.dtype) -> bytes:
    """The `.idx` bytes for sequences of these lengths; `document_indices` starts with 0 and
    lists, after each document, how many sequences precede its end."""
    lengths = np.asarray(sequence_lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths):
        np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    return b"".join([
        MEGATRON_MAGIC,
        struct.pack("<Q", 1),
        struct.pack("<B", _MEGATRON_DTYPE_CODES[dtype]),
        struct.pack("<Q", len(lengths)),
        struct.pack("<Q", len(document_indices)),
        lengths.tobytes(order="C"),
        pointers.tobytes(order="C"),
        np.asarray(document_indices, dtype=np.int64).tobytes(order="C"),
    ])  # fmt: skip


def write_megatron(prefix: Path, tokens: np.ndarray, lengths: Sequence[int]) -> Records:
    """`prefix.bin` + `prefix.idx`: one sequence per document (or per packed row). Returns
    {file name: record} of both, hashed as written."""
    dtype = megatron_dtype(tokens.dtype)
    lengths = np.asarray(lengths, dtype=np.int32)
    return dict([
        write_recorded(prefix.parent, prefix.with_suffix(".bin"), tokens.astype(dtype, copy=False).tobytes()),
        write_recorded(prefix.parent, prefix.with_suffix(".idx"),
                       megatron_index(lengths, np.arange(len(lengths) + 1), dtype)),
    ])  # fmt: skip


def write_olmo(prefix: Path, tokens: np.ndarray, lengths: Sequence[int], ids: Sequence[str],
               sources: Sequence[str]) -> Records:  # fmt: skip
    """`prefix.npy` (raw memmap) + `prefix.csv.gz` (start,end,id,source per document). Returns
    {file name: record} of both, hashed as written."""
    npy = write_recorded(prefix.parent, prefix.with_suffix(".npy"), tokens.tobytes(order="C"))
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    starts = ends - np.asarray(lengths, dtype=np.int64)
    lines = "".join(
        f"{s},{e},{_csv(i)},{_csv(src)}\n"
        for s, e, i, src in zip(starts.tolist(), ends.tolist(), ids, sources)
    )
    # mtime=0: gzip otherwise stamps the current time and the bytes would differ run to run.
    return dict([npy, write_recorded(prefix.parent, prefix.with_suffix(".csv.gz"),
                                     gzip.compress(lines.encode(), mtime=0))])  # fmt: skip


def _csv(value: str) -> str:
    return value.replace(",", "_").replace("\n", " ")


# -- the corpus ------------------------------------------------------------------------------


def pack(docs: Iterator[np.ndarray], seq_len: int) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Rows of exactly `seq_len` ids from consecutive documents, each with the offsets where a
    document starts in it. The final partial row is not yielded (see the module docstring)."""
    for row, starts, _ in pack_labeled(((None, doc) for doc in docs), seq_len):
        yield row, starts


Label = TypeVar("Label")
Piece = tuple[Label, int, int, int]  # (label, start, end, doc_offset): a document's tokens in a row


def pack_labeled(docs: Iterator[tuple[Label, np.ndarray]], seq_len: int
                 ) -> Iterator[tuple[np.ndarray, list[int], list[Piece]]]:  # fmt: skip
    """`pack`, each document carrying a label: every row also lists its pieces, (label, start,
    end, doc_offset) with the piece's tokens at [start, end) in the row and from `doc_offset`
    in the document (the provenance index; the labels never enter the token stream)."""
    buffer: list[np.ndarray] = []
    starts: list[int] = []
    pieces: list[Piece] = []
    filled = 0
    for label, doc in docs:
        pos = 0
        while pos < len(doc):
            if pos == 0:
                starts.append(filled)
            take = min(seq_len - filled, len(doc) - pos)
            buffer.append(doc[pos : pos + take])
            pieces.append((label, filled, filled + take, pos))
            filled += take
            pos += take
            if filled == seq_len:
                yield np.concatenate(buffer), starts, pieces
                buffer, starts, pieces, filled = [], [], [], 0


def write_corpus(config: MixConfig, data: list[SourceData], sources: np.ndarray, docs: np.ndarray,
           dtype: np.dtype, out: OutputDir) -> tuple[list[dict], int]:  # fmt: skip
    """Write the shuffled documents in `config.format`; returns shard records and packing loss."""

    def stream() -> Iterator[tuple[int, int]]:
        yield from zip(sources.tolist(), docs.tolist())

    provenance = ProvenanceWriter(out, data)
    if config.format in ("jsonl", "parquet"):
        return _write_texts(config, data, stream(), out, provenance), 0
    if config.pack:
        return _write_packed(config, data, stream(), dtype, out, provenance)
    shards: list[dict] = []
    batch: list[tuple[int, int]] = []
    tokens = 0
    for s, d in stream():
        batch.append((s, d))
        provenance.document(s, d)
        tokens += int(data[s].lengths[d])
        if tokens >= config.shard_tokens:
            shards.append(_write_token_shard(config, data, batch, dtype, out, len(shards)))
            shards[-1]["provenance"] = provenance.flush(len(shards) - 1)
            batch, tokens = [], 0
    if batch or not shards:
        shards.append(_write_token_shard(config, data, batch, dtype, out, len(shards)))
        shards[-1]["provenance"] = provenance.flush(len(shards) - 1)
    if config.format == "hf":
        _save_hf_dataset(out, shards)
    return shards, 0


def _write_token_shard(config: MixConfig, data: list[SourceData], batch: list[tuple[int, int]],
                       dtype: np.dtype, out: OutputDir, index: int) -> dict:  # fmt: skip
    arrays = [data[s].doc_tokens(d) for s, d in batch]
    tokens = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
    lengths = [len(a) for a in arrays]
    prefix = out.root / "data" / f"part-{index:05d}"
    if config.format == "hf":  # arrow rows, one document each; hf/ is hashed once it is written
        rows = {"input_ids": [a.tolist() for a in arrays], "id": [data[s].ids[d] for s, d in batch],
                "source": [data[s].spec.name for s, _ in batch]}  # fmt: skip
        files = [_write_arrow(out, index, rows)]
        return {"files": files, "documents": len(batch), "tokens": int(tokens.size)}
    if config.format == "megatron":
        written = _in_data(write_megatron(prefix, tokens, lengths))
    else:  # olmo
        ids = [data[s].ids[d] for s, d in batch]
        written = _in_data(write_olmo(prefix, tokens, lengths, ids, [data[s].spec.name for s, _ in batch]))
    return {"files": list(written), "documents": len(batch), "tokens": int(tokens.size), WRITTEN: written}


def _in_data(written: Records) -> Records:
    """A writer's {file name: record} as {data/<file name>: record}, names relative to the output."""
    return {f"data/{name}": record for name, record in written.items()}


def _write_packed(config: MixConfig, data: list[SourceData], stream: Iterator[tuple[int, int]],
                  dtype: np.dtype, out: OutputDir, provenance: ProvenanceWriter
                  ) -> tuple[list[dict], int]:  # fmt: skip
    rows_per_shard = max(1, config.shard_tokens // config.seq_len)
    total = 0
    shards: list[dict] = []
    rows: list[np.ndarray] = []
    starts: list[list[int]] = []

    def docs() -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        nonlocal total
        for s, d in stream:
            doc = data[s].doc_tokens(d)
            total += len(doc)
            yield (s, d), doc

    def flush() -> None:
        index = len(shards)
        tokens = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype=dtype)
        written: Records = {}
        if config.format == "megatron":
            prefix = out.root / "data" / f"part-{index:05d}"
            written = _in_data(write_megatron(prefix, tokens, [config.seq_len] * len(rows)))
            files = list(written)
        else:
            files = [
                _write_arrow(out, index, {"input_ids": [r.tolist() for r in rows], "doc_starts": starts})
            ]
        shards.append({"files": files, "rows": len(rows), "tokens": int(tokens.size),
                       "provenance": provenance.flush(index)})  # fmt: skip
        if written:
            shards[-1][WRITTEN] = written

    for row, row_starts, pieces in pack_labeled(docs(), config.seq_len):
        rows.append(row)
        starts.append(row_starts)
        for (s, d), start, end, doc_offset in pieces:
            provenance.piece(s, d, start, end, doc_offset)
        provenance.end_sequence()
        if len(rows) == rows_per_shard:
            flush()
            rows, starts = [], []
    if rows or not shards:
        flush()
    if config.format == "hf":
        _save_hf_dataset(out, shards)
    written = sum(s["tokens"] for s in shards)
    return shards, total - written


def _write_arrow(out: OutputDir, index: int, columns: dict[str, list]) -> str:
    path = out.root / ".work" / "hf-parts" / f"part-{index:05d}.parquet"
    write_atomic(path, encode_columns(columns))
    return f"hf/ (from {path.name})"


def _save_hf_dataset(out: OutputDir, shards: list[dict]) -> None:
    """Collect the parts into a Hugging Face dataset saved with `save_to_disk` in out/hf."""
    try:
        import datasets
    except ImportError:
        raise UsageError(
            "--format hf needs the 'datasets' package: pip install 'instructpt[datasets]'"
        ) from None
    parts = sorted((out.root / ".work" / "hf-parts").glob("part-*.parquet"))
    dataset = datasets.Dataset.from_parquet(
        [str(p) for p in parts], cache_dir=str(out.root / ".work" / "cache")
    )
    # datasets fingerprints the parts by path and mtime, so state.json would differ run to run:
    # the fingerprint of their bytes instead (renaming no column copies no data).
    parts_digest = hashlib.sha256("".join(sha256_file(p) for p in parts).encode()).hexdigest()[:16]
    dataset = dataset.rename_columns({}, new_fingerprint=parts_digest)
    dataset.save_to_disk(str(out.root / "hf"), num_shards=max(1, len(parts)))
    for shard in shards:
        shard["files"] = ["hf/"]


def _write_texts(config: MixConfig, data: list[SourceData], stream: Iterator[tuple[int, int]],
                 out: OutputDir, provenance: ProvenanceWriter) -> list[dict]:  # fmt: skip
    shards: list[dict] = []
    rows: list[dict] = []
    tokens = 0

    def flush() -> None:
        index = len(shards)
        path = out.root / "data" / f"part-{index:05d}.{config.format}"
        rel, record = write_recorded(out.root, path, encode_rows(rows, config.format), len(rows))
        shards.append({"files": [rel], "documents": len(rows), "tokens": tokens,
                       "provenance": provenance.flush(index), WRITTEN: {rel: record}})  # fmt: skip

    for s, d in stream:
        source = data[s]
        assert source.texts is not None and source.ids is not None
        rows.append({"text": source.texts[d], "id": source.ids[d], "source": source.spec.name})
        provenance.document(s, d)
        tokens += int(source.lengths[d])
        if tokens >= config.shard_tokens:
            flush()
            rows, tokens = [], 0
    if rows or not shards:
        flush()
    return shards
