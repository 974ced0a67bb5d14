"""Provenance of a mix: which documents every training sequence holds, and where they came from.

Next to the training data (whatever the format), `provenance/part-<i>.parquet` describes output
shard i, one row per *piece*: the stretch of one document inside one training sequence.

    sequence    int64   the sequence's index in the whole output (shards in order, from 0)
    start, end  int32   its tokens [start, end) inside that sequence
    doc_id      string  the document's id (an augmented text's id is its first entry's)
    source      string  the mix source it came from (augmented, raw, general, ...)
    doc_offset  int64   the document token the piece starts at (> 0: continued from a sequence before)
    doc_tokens  int64   the document's tokens, BOS and EOS included
    input       string  the input file it was read from
    entries     list    augmented texts: the ids of the synthesized entries it renders (the pairs)
    templates   list    augmented texts: the template ids used, in order of first use

Unpacked output has one piece per sequence (the whole document); packed output has the pieces in
row order, from which the ids are carried alongside the tokens (never in the token stream). A
sidecar's bytes follow from the plan alone, so reruns, workers and resumed runs write the same
bytes; the manifest records each sidecar's size and sha256 next to its shard, and `trace`
checks them. `instructpt trace` (trace.py) reads one sequence back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.integrity import write_recorded
from ..io.shards import encode_parquet, read_rows

if TYPE_CHECKING:
    from ..io.output import OutputDir
    from .tokenize import SourceData, _Blobs

PROVENANCE_DIR = "provenance"
COLUMNS = ("sequence", "start", "end", "doc_id", "source", "doc_offset", "doc_tokens", "input", "entries",
           "templates")  # fmt: skip


def schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("sequence", pa.int64()), ("start", pa.int32()), ("end", pa.int32()), ("doc_id", pa.string()),
         ("source", pa.string()), ("doc_offset", pa.int64()), ("doc_tokens", pa.int64()),
         ("input", pa.string()), ("entries", pa.list_(pa.string())), ("templates", pa.list_(pa.string()))]
    )  # fmt: skip


# -- carried through tokenize ------------------------------------------------------------------


def text_meta(path: Any) -> dict[str, str]:
    """{text id: JSON [entry ids, template ids]} of one templify data shard: what a piece of an
    augmented text records beyond its id. Read once per tokenized input file (tokenize.py)."""
    path = Path(path)
    wanted = ["id", "source_ids", "templates"]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = set(pq.ParquetFile(path).schema_arrow.names)
        rows = read_rows(path, columns=[c for c in wanted if c in names]) if "id" in names else []
    else:
        rows = read_rows(path)
    meta = {}
    for row in rows:
        entries, templates = row.get("source_ids"), row.get("templates")
        if isinstance(row.get("id"), str) and (isinstance(entries, list) or isinstance(templates, list)):
            meta[row["id"]] = json.dumps([entries or [], templates or []], ensure_ascii=False)
    return meta


def load_meta(folder: Path, indexes: Sequence[int], first: Sequence[int], counts: Sequence[int]
              ) -> _Blobs | None:  # fmt: skip
    """The per-document meta blobs of a source's tokenized shards (None when none has them)."""
    from .tokenize import _Blobs

    parts: list[tuple[np.memmap | None, np.ndarray]] = []
    for index, n in zip(indexes, counts):
        stem = folder / f"part-{index:05d}"
        if Path(f"{stem}.meta.idx").is_file():
            blob = Path(f"{stem}.meta")
            data = np.memmap(blob, dtype=np.uint8, mode="r") if blob.stat().st_size else None
            parts.append((data, np.fromfile(f"{stem}.meta.idx", dtype=np.uint64)))
        else:
            parts.append((None, np.zeros(n + 1, dtype=np.uint64)))
    if all(data is None for data, _ in parts):
        return None
    return _Blobs(list(first) or [0], parts)


# -- written next to the output ----------------------------------------------------------------


class ProvenanceWriter:
    """Collects the pieces of one output shard's sequences; `flush` writes its sidecar."""

    def __init__(self, out: OutputDir, data: list[SourceData]) -> None:
        self.out, self.data = out, data
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.sequence = 0  # the index of the next sequence in the whole output
        self.first = 0  # the index of this shard's first sequence

    def piece(self, s: int, d: int, start: int, end: int, doc_offset: int) -> None:
        """A piece of document d of source s in the current sequence."""
        source = self.data[s]
        meta = source.meta[d] if source.meta is not None else ""
        entries, templates = json.loads(meta) if meta else ([], [])
        part, _ = source.parts.locate(d)
        doc_id = source.ids[d] if source.ids is not None else ""
        values = (self.sequence, start, end, doc_id, source.spec.name, doc_offset, int(source.lengths[d]),
                  source.files[part] if source.files else "", entries, templates)  # fmt: skip
        for name, value in zip(COLUMNS, values):
            self.columns[name].append(value)

    def document(self, s: int, d: int) -> None:
        """One sequence holding document d of source s, whole."""
        self.piece(s, d, 0, int(self.data[s].lengths[d]), 0)
        self.end_sequence()

    def end_sequence(self) -> None:
        self.sequence += 1

    def flush(self, index: int) -> dict[str, Any]:
        """Write provenance/part-<index>.parquet; its record for the shard's manifest entry."""
        import pyarrow as pa

        path = self.out.root / PROVENANCE_DIR / f"part-{index:05d}.parquet"
        payload = encode_parquet(pa.table(self.columns, schema=schema()))
        rel, record = write_recorded(self.out.root, path, payload, len(self.columns["sequence"]))
        record.pop("mtime_ns")  # the manifest is the same for every run that wrote these bytes
        record = {"file": rel, **record, "first_sequence": self.first,
                  "sequences": self.sequence - self.first}  # fmt: skip
        self.columns = {name: [] for name in COLUMNS}
        self.first = self.sequence
        return record
