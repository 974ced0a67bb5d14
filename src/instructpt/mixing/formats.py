"""Writers for tokenized shards that large-scale trainers read directly.

* Megatron (`.bin` + `.idx`, the MMIDIDX layout of megatron-core's `IndexedDataset`): the
  `.bin` is the token ids back to back; the `.idx` holds a 9-byte magic, version 1, a dtype
  code, the sequence and document counts, int32 sequence lengths, int64 byte pointers and
  int64 document indices. The bytes equal those of megatron-core's `IndexedDatasetBuilder`
  (tested); we write them with numpy because that builder takes torch tensors one at a time.
* OLMo / Dolma (`.npy` + `.csv.gz`): a raw `np.memmap` array of token ids (no .npy header,
  as OLMo reads it) and gzip CSV lines `start,end,id,source` per document, the metadata
  OLMo uses for exact document boundaries.

Token arrays are uint16 when every id fits, else uint32.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io.files import write_atomic

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
_MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4, np.dtype(np.uint32): 4}


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


def write_megatron(prefix: Path, tokens: np.ndarray, lengths: Sequence[int]) -> None:
    """`prefix.bin` + `prefix.idx`: one sequence per document (or per packed row)."""
    dtype = megatron_dtype(tokens.dtype)
    write_atomic(prefix.with_suffix(".bin"), tokens.astype(dtype, copy=False).tobytes(order="C"))
    lengths = np.asarray(lengths, dtype=np.int32)
    write_atomic(prefix.with_suffix(".idx"), megatron_index(lengths, np.arange(len(lengths) + 1), dtype))


def write_olmo(prefix: Path, tokens: np.ndarray, lengths: Sequence[int], ids: Sequence[str],
               sources: Sequence[str]) -> None:  # fmt: skip
    """`prefix.npy` (raw memmap) + `prefix.csv.gz` (start,end,id,source per document)."""
    write_atomic(prefix.with_suffix(".npy"), tokens.tobytes(order="C"))
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    starts = ends - np.asarray(lengths, dtype=np.int64)
    lines = "".join(
        f"{s},{e},{_csv(i)},{_csv(src)}\n"
        for s, e, i, src in zip(starts.tolist(), ends.tolist(), ids, sources)
    )
    # mtime=0: gzip otherwise stamps the current time and the bytes would differ run to run.
    write_atomic(prefix.with_suffix(".csv.gz"), gzip.compress(lines.encode(), mtime=0))


def _csv(value: str) -> str:
    return value.replace(",", "_").replace("\n", " ")
