"""io/arrow_rows.py: the table built from buffers is `Table.from_pylist`'s, byte for byte once
written as Parquet, and anything it does not handle falls back to `from_pylist`."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from instructpt.io.arrow_rows import table_from_rows
from instructpt.io.shards import encode_parquet, encode_rows
from instructpt.templating.stage import texts_schema

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int32()), ("big", pa.int64()),
                    ("tags", pa.list_(pa.string()))])  # fmt: skip

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)  # no lone surrogates
rows = st.lists(
    st.fixed_dictionaries(
        {
            "id": texts,
            "n": st.integers(-(2**31), 2**31 - 1),
            "big": st.integers(-(2**63), 2**63 - 1),
            "tags": st.lists(texts, max_size=4),
        }
    ),  # fmt: skip
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(rows)
@example([])
@example([{"id": "", "n": 0, "big": 0, "tags": []}])
@example([{"id": "é\u2028\x00𝄞", "n": -(2**31), "big": 2**63 - 1, "tags": ["", "ü"]}])
def test_same_table_and_bytes_as_from_pylist(values: list[dict]) -> None:
    built = table_from_rows(values, SCHEMA)
    expected = pa.Table.from_pylist(values, schema=SCHEMA)
    assert built is not None
    built.validate(full=True)
    assert built.equals(expected, check_metadata=True)
    assert encode_parquet(built) == encode_parquet(expected)


@pytest.mark.parametrize(
    "row",
    [
        {"id": None, "n": 1, "big": 1, "tags": []},  # a null
        {"n": 1, "big": 1, "tags": []},  # a missing key (a null for from_pylist)
        {"id": "a", "n": True, "big": 1, "tags": []},  # a bool is not an int here
        {"id": "a", "n": 2**31, "big": 1, "tags": []},  # out of int32's range
        {"id": "a", "n": 1, "big": 1, "tags": ("x",)},  # a tuple, not a list
        {"id": "a", "n": 1, "big": 1, "tags": ["x", None]},  # a null item
        {"id": "\ud800", "n": 1, "big": 1, "tags": []},  # a lone surrogate
    ],
)
def test_anything_else_is_left_to_from_pylist(row: dict) -> None:
    assert table_from_rows([{"id": "ok", "n": 0, "big": 0, "tags": ["t"]}, row], SCHEMA) is None


def test_other_column_types_are_left_to_from_pylist() -> None:
    for kind in (pa.float64(), pa.bool_(), pa.large_string(), pa.list_(pa.int32()),
                 pa.struct([("a", pa.string())])):  # fmt: skip
        assert table_from_rows([], pa.schema([("id", pa.string()), ("x", kind)])) is None
    assert table_from_rows([], pa.schema([("id", pa.string()), ("n", pa.int32())])) is not None
    assert table_from_rows([{"id": "a"}], pa.schema([("id", pa.string())])) is None  # one column


def test_encode_rows_falls_back_with_the_same_bytes_and_errors() -> None:
    nullable = [{"id": None, "n": 1, "big": 2, "tags": None}]
    expected = encode_parquet(pa.Table.from_pylist(nullable, schema=SCHEMA))
    assert encode_rows(nullable, "parquet", SCHEMA) == expected
    with pytest.raises(pa.ArrowInvalid):  # out of range: from_pylist's own error
        encode_rows([{"id": "a", "n": 2**40, "big": 0, "tags": []}], "parquet", SCHEMA)


def test_templify_texts_are_written_without_importing_pandas() -> None:
    code = (
        "import sys; from instructpt.io.shards import encode_rows; "
        "from instructpt.templating.stage import texts_schema; "
        "row = {'id': 'a', 'text': 't', 'source_ids': ['a'], 'n_shots': 1, 'n_pairs': 0, "
        "'mode': 'raw', 'templates': []}; "
        "assert encode_rows([row], 'parquet', texts_schema())[:4] == b'PAR1'; "
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert table_from_rows([], texts_schema()) is not None  # every column of the texts is handled
