"""An Arrow table from Python rows without `pa.array`, for flat schemas of strings, integers and
lists of strings (templify's texts).

Why: building an Arrow array from Python objects with `pa.array` (what `Table.from_pylist`
does) makes pyarrow import pandas when it is installed, to ask whether the values are a pandas
object: ~0.2 s of CPU, an eighth of a 10,000-document `instructpt templify` run. A column here
is built from its buffers instead (UTF-8 bytes and int32 offsets, or the integers themselves):
the same table as `from_pylist`, so the same Parquet bytes. Anything else (one column, another type,
a missing key or a None, a value of another Python type, an integer out of range, a string that
is not valid Unicode, more than 2 GiB in a column) gives None, and the caller uses
`Table.from_pylist`, with its own errors.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping, Sequence
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

# array typecodes of the widths Arrow uses (an int32 offset, an int32 or int64 value)
_INT32 = next((c for c in "ihl" if array(c).itemsize == 4), None)
_INT64 = next((c for c in "lq" if array(c).itemsize == 8), None)
_MAX_OFFSET = 2**31 - 1


def table_from_rows(rows: Sequence[Mapping[str, Any]], schema: Any) -> Any:
    """The Arrow table `Table.from_pylist(rows, schema=schema)` builds, or None when a column
    or a value is not one of the plain cases handled here (see the module's docstring)."""
    import pyarrow as pa

    if sys.byteorder != "little" or _INT32 is None or _INT64 is None:
        return None
    builders = []
    for field in schema:
        builder = _builder(pa, field.type)
        if builder is None:
            return None
        builders.append(builder)
    names = schema.names
    if len(names) < 2:  # itemgetter of one name gives values, not tuples: left to from_pylist
        return None
    try:  # rows -> columns, in C
        by_column = list(zip(*map(itemgetter(*names), rows))) if rows else [() for _ in names]
    except KeyError:  # from_pylist: a missing key is a null
        return None
    columns = []
    for field, builder, values in zip(schema, builders, by_column):
        column = builder(pa, field.type, values)
        if column is None:
            return None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _builder(pa: Any, kind: Any) -> Any:
    if kind == pa.string():
        return _strings
    if kind in (pa.int32(), pa.int64()):
        return _integers
    if pa.types.is_list(kind) and kind.value_type == pa.string():
        return _string_lists
    return None


def _offsets(pa: Any, lengths: Any) -> Any:
    """The int32 offsets buffer of values of `lengths`, or None past 2 GiB (Arrow's large types)."""
    offsets = array(_INT32)  # type: ignore[arg-type]
    try:
        offsets.extend(accumulate(lengths, initial=0))
    except OverflowError:
        return None
    return pa.py_buffer(offsets) if offsets[-1] <= _MAX_OFFSET else None


def _only(values: Sequence[Any], kind: type) -> bool:
    """Whether every value is exactly of type `kind` (not a subclass: a bool is no int here)."""
    return set(map(type, values)) <= {kind}


def _strings(pa: Any, kind: Any, values: Sequence[Any]) -> Any:
    if not _only(values, str):
        return None
    try:
        encoded = list(map(str.encode, values))  # UTF-8
    except UnicodeEncodeError:  # a lone surrogate: from_pylist says what is wrong
        return None
    offsets = _offsets(pa, map(len, encoded))
    if offsets is None:
        return None
    return pa.Array.from_buffers(kind, len(values), [None, offsets, pa.py_buffer(b"".join(encoded))])


def _integers(pa: Any, kind: Any, values: Sequence[Any]) -> Any:
    if not _only(values, int):  # not a bool, not a float
        return None
    try:
        data = array(_INT32 if kind == pa.int32() else _INT64, values)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(data)])


def _string_lists(pa: Any, kind: Any, values: Sequence[Any]) -> Any:
    if not _only(values, list):
        return None
    items = _strings(pa, kind.value_type, list(chain.from_iterable(values)))
    offsets = _offsets(pa, map(len, values))
    if items is None or offsets is None:
        return None
    return pa.Array.from_buffers(kind, len(values), [None, offsets], children=[items])
