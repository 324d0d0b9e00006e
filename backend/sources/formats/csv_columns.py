"""The strict, vectorised parse of one CSV block into typed columns: pyarrow, or pandas' C parser without it.

Strict means a block parses whole or not at all (exact field counts, every
converted field of its type), so a good block costs one call and a bad one is
left to the caller to split. ``columns`` is the parser in use.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np

from backend.sources.formats.csv_blocks import Block

try:  # pyarrow's CSV reader is strict and multi-threaded; pandas' C parser is the fallback
    import pyarrow as pa
    import pyarrow.csv as pa_csv
except ImportError:  # pragma: no cover - pyarrow comes with streamlit
    pa = pa_csv = None

Column = np.ndarray | tuple[np.ndarray, list[str]]  # numbers, or (codes, distinct strings)
Kinds = dict[int, str]  # column → "int" | "float" | "bool" | "str"


@functools.lru_cache(maxsize=64)
def _arrow_options(nfields: int, kinds: tuple[tuple[int, str], ...]) -> tuple[Any, Any]:
    """Parse and convert options for lines of ``nfields`` fields (built once: they cost more than a small parse)."""
    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "str": pa.dictionary(pa.int32(), pa.string()),  # decoded straight into codes + distinct strings
    }
    parse = pa_csv.ParseOptions(ignore_empty_lines=False)
    convert = pa_csv.ConvertOptions(
        column_types={str(c): types[k] for c, k in kinds},
        include_columns=[str(c) for c, _ in kinds],
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return parse, convert


def columns_arrow(block: Block, nfields: int, kinds: Kinds) -> dict[int, Column] | None:
    """Strict parse of one block with pyarrow; None when any line does not fit the types."""
    parse, convert = _arrow_options(nfields, tuple(kinds.items()))
    # one chunk per block, so columns come out without a copy
    read = pa_csv.ReadOptions(column_names=[str(i) for i in range(nfields)], block_size=len(block) + 1)
    try:
        table = pa_csv.read_csv(pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, ValueError):  # wrong field count, empty or non-numeric field
        return None
    out: dict[int, Column] = {}
    for col, kind in kinds.items():
        values = table.column(str(col)).combine_chunks()  # a single chunk: no copy
        if kind == "str":
            out[col] = (_numpy(values.indices), values.dictionary.to_pylist())
        else:
            out[col] = _numpy(values)
    return out


def _numpy(values: Any) -> np.ndarray:
    """A null-free pyarrow array of numbers or booleans as numpy, straight from its data buffer.

    ``Array.to_numpy`` imports pandas on first use (pyarrow checks for pandas types), which
    costs the offline command more than parsing a million rows; the buffer is all it needs.
    """
    data, n, offset = values.buffers()[1], len(values), values.offset
    if pa.types.is_boolean(values.type):  # one bit per value, least significant first
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset : offset + n].astype(bool)
    dtype = np.dtype(values.type.to_pandas_dtype())
    return np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)


def columns_pandas(block: Block, nfields: int, kinds: Kinds) -> dict[int, Column] | None:
    """The same with pandas' C parser, when pyarrow is not installed."""
    import pandas as pd  # only here: importing pandas costs more than parsing a big file with pyarrow

    types = {"int": np.int64, "float": np.float64, "bool": bool, "str": object}
    try:
        df = pd.read_csv(
            io.BytesIO(block),
            header=None,
            names=range(nfields),
            dtype={c: types[k] for c, k in kinds.items()},
            engine="c",
            na_filter=False,
            skip_blank_lines=False,
        )
    except (ValueError, OverflowError):
        return None
    out: dict[int, Column] = {}
    for col, kind in kinds.items():
        values = df[col].to_numpy()
        if kind == "str":
            codes, distinct = pd.factorize(values)
            out[col] = (codes, list(distinct))
        else:
            out[col] = values
    return out


columns = columns_arrow if pa_csv is not None else columns_pandas
