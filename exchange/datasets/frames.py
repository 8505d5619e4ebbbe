"""Between pandas frames and the Arrow columns the reader and the commitment work on.

The reader produces one Arrow type per kind (int64, float64, bool, string, timestamp[us,
UTC]); `to_frame` turns those into the frame `load_table` has always returned (the dtypes
of schema.KIND_DTYPES). `canonical_columns` goes the other way for `commit(df)`, accepting
any frame whose columns `kind_of` accepts, as the per-cell formatter did.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.schema import KIND_DTYPES, Kind, kind_of
from exchange.errors import DatasetError

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "categorical": pa.string(),
    "datetime": pa.timestamp("us", "UTC"),
}


def to_frame(names: Sequence[str], kinds: Sequence[Kind], columns: Sequence[Sequence[pa.Array]]) -> pd.DataFrame:
    """A frame from each column's chunks, with exactly the dtypes of KIND_DTYPES."""
    data = {}
    for name, kind, chunks in zip(names, kinds, columns):
        # Kept in chunks: one string array of a large text column could pass 2 GiB.
        data[name] = _series(pa.chunked_array(list(chunks), ARROW_TYPES[kind]), kind, name)
    return pd.DataFrame(data, index=pd.RangeIndex(len(next(iter(data.values()))) if data else 0))


def empty_frame(names: Sequence[str], kinds: Sequence[Kind]) -> pd.DataFrame:
    """A frame without rows with the dtypes of these kinds: enough for `check_kinds`, which
    reads kinds off dtypes, when the rows themselves were streamed and not kept."""
    return pd.DataFrame({name: pd.Series([], dtype=KIND_DTYPES[kind]) for name, kind in zip(names, kinds)})


def _series(array: pa.ChunkedArray, kind: Kind, name: str) -> pd.Series:
    if kind == "float":
        return pd.Series(array.to_numpy(zero_copy_only=False), dtype=KIND_DTYPES["float"], name=name)
    if kind == "datetime":
        return pd.Series(array.to_pandas(), name=name).astype(KIND_DTYPES["datetime"])
    # The nullable extension dtypes read Arrow buffers as they are (pd.array would go
    # through float64 and round integers beyond 2**53).
    return pd.Series(KIND_DTYPES[kind].__from_arrow__(array), name=name)  # type: ignore[attr-defined]


def frame_kinds(df: pd.DataFrame) -> list[Kind]:
    """Each column's kind (schema.kind_of); DatasetError for dtypes Cove cannot handle."""
    return [kind_of(df.iloc[:, i]) for i in range(df.shape[1])]


def canonical_columns(df: pd.DataFrame, kinds: Sequence[Kind]) -> list[CanonicalColumn]:
    """Each column of `df` as Arrow values of its kind (from `frame_kinds` of the whole
    frame); DatasetError for infinite floats."""
    return [_canonical(df.iloc[:, i], kind) for i, kind in enumerate(kinds)]


def _canonical(series: pd.Series, kind: Kind) -> CanonicalColumn:
    values = pa.array(series, from_pandas=True)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if kind == "float":
        values = values.cast(pa.float64())
        if pc.any(pc.is_inf(values)).as_py():
            raise DatasetError(
                f"Column '{series.name}' contains infinite values, which cannot be committed; "
                "replace them with finite numbers or leave the cells empty."
            )
    elif kind == "categorical":
        values = values.cast(pa.string())
    return CanonicalColumn(kind, values)
