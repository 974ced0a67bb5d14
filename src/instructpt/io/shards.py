"""One shard writer and reader for every stage: rows <-> Parquet or JSONL bytes.

The same rows always give the same bytes (JSONL: one `json.dumps` line per row, UTF-8 kept;
Parquet: an Arrow table from the rows with `schema`, or an inferred one, zstd-compressed), so a
shard computed by any process, in any run, is byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


def encode_jsonl(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def encode_parquet(table: Any) -> bytes:
    """The bytes of an Arrow table written as one zstd-compressed Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def encode_rows(rows: Sequence[Mapping[str, Any]], fmt: str, schema: Any = None) -> bytes:
    """The bytes of one shard of `rows` in `fmt` ("parquet" or "jsonl"); Parquet columns follow
    `schema` (an Arrow schema), or are inferred from the rows when it is None."""
    if fmt == "jsonl":
        return encode_jsonl(rows)
    import pyarrow as pa

    from .arrow_rows import table_from_rows  # the same table, without pyarrow importing pandas

    rows = list(rows)
    table = table_from_rows(rows, schema) if schema is not None else None
    return encode_parquet(table if table is not None else pa.Table.from_pylist(rows, schema=schema))


def encode_columns(columns: Mapping[str, list]) -> bytes:
    """Parquet bytes of a table given column by column (types inferred)."""
    import pyarrow as pa

    return encode_parquet(pa.table(dict(columns)))


def parse_json_line(raw: bytes | str) -> Any:
    """The value of one JSONL line; UnicodeDecodeError, json.JSONDecodeError (a ValueError) or
    RecursionError when it is not UTF-8 or not JSON."""
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def parquet_batches(source: Any, columns: Sequence[str] | None = None, batch_size: int = 4096
                    ) -> Iterator[Any]:  # fmt: skip
    """The Arrow record batches of a Parquet file (a path, a file object or an Arrow buffer
    reader), only `columns` when given: the one Parquet reader of shards and corpora."""
    import pyarrow.parquet as pq

    pf = source if isinstance(source, pq.ParquetFile) else pq.ParquetFile(source)
    yield from pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None)


def read_rows(path: str | Path, data: bytes | None = None, columns: Sequence[str] | None = None
              ) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of one shard (Parquet by its suffix, else JSONL); from `data` (the file's bytes,
    already read and checked) when given; Parquet: only `columns` when given."""
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    if path.suffix == ".parquet":
        import pyarrow as pa

        return [row for batch in parquet_batches(pa.BufferReader(data), columns, 1 << 16)
                for row in batch.to_pylist()]  # fmt: skip
    return [parse_json_line(line) for line in data.decode("utf-8").splitlines() if line.strip()]
