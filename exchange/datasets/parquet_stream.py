"""A Parquet file as a stream of record batches, each column checked and brought to the one
Arrow type of its kind (stream.py) with Arrow kernels.

Parquet columns are typed, so the kinds are known before the first row. Errors keep the
order the whole-file reader gave them: an unreadable file first, then names, then each
column's type or values in column order, then a table without rows or an empty column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.column_names import check_column_names
from exchange.datasets.csv_cells import WHITESPACE
from exchange.datasets.schema import Kind
from exchange.datasets.stream import (
    Chunking,
    Progress,
    TableLayout,
    TableSink,
    entirely_empty,
    no_rows,
)
from exchange.errors import DatasetError

# Pandas stores an unnamed index as a column with this name; it is not data.
_PANDAS_INDEX_RE = re.compile(r"__index_level_\d+__")
_INT64_MAX = 2**63 - 1
# Microseconds since the epoch of 0001-01-01 and 10000-01-01: the years Cove accepts.
_YEAR_1_US, _YEAR_10000_US = -62_135_596_800_000_000, 253_402_300_800_000_000


def stream_parquet(path: Path, sink: TableSink, chunking: Chunking, progress: Progress) -> TableLayout:
    """Read and check a Parquet file into `sink` (see reader.stream_table)."""
    try:
        # ParquetFile rather than the dataset API, which fails on duplicate column names,
        # and those deserve their own message.
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
    except (pa.ArrowException, OSError):
        raise _unreadable(path) from None
    keep = [name for name in schema.names if not _PANDAS_INDEX_RE.fullmatch(name)]
    if not keep:
        raise DatasetError(f"{path} has no columns; a dataset needs at least one column.")
    names = [str(name) for name in keep]
    check_column_names(path, names)
    columns = [_Column(path, name, schema.field(name).type) for name in names]

    feeding = all(column.error is None for column in columns)
    if feeding:
        sink.begin(names, [column.kind for column in columns])  # type: ignore[misc]
    rows = 0
    try:
        for batch in file.iter_batches(batch_size=chunking.parquet_rows, columns=keep, use_threads=True):
            chunk = [column.convert(batch.column(i)) for i, column in enumerate(columns)]
            rows += batch.num_rows
            progress(rows)
            feeding = feeding and None not in chunk
            if feeding:
                sink.add(chunk)  # type: ignore[arg-type]
    except (pa.ArrowException, OSError):
        raise _unreadable(path) from None
    for column in columns:
        if column.error is not None:
            raise column.error
    if rows == 0:
        raise no_rows(path)
    for column in columns:
        if column.values == 0:
            raise entirely_empty(path, column.name)
    return TableLayout(names, [column.kind for column in columns], rows)  # type: ignore[misc]


def _unreadable(path: Path) -> DatasetError:
    return DatasetError(
        f"{path} is not a readable Parquet file; export the dataset to Parquet again or use a .csv file."
    )


class _Column:
    """One Parquet column: its kind, the first error it gave, how many values it had."""

    def __init__(self, path: Path, name: str, typ: pa.DataType):
        self.path = path
        self.name = name
        self.values = 0
        self.error: DatasetError | None = None
        self.kind: Kind | None = None
        try:
            self.kind = _arrow_kind(path, name, typ)
        except DatasetError as error:
            self.error = error

    def convert(self, array: pa.Array) -> CanonicalColumn | None:
        """The batch's values as the Arrow type of the column's kind, or None after an error."""
        if self.error is not None or self.kind is None:
            return None
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        try:
            values = _CONVERT[self.kind](self, array)
        except DatasetError as error:
            self.error = error
            return None
        self.values += len(values) - values.null_count
        return CanonicalColumn(self.kind, values)

    def _integers(self, array: pa.Array) -> pa.Array:
        if pa.types.is_uint64(array.type) and array.null_count < len(array) and pc.max(array).as_py() > _INT64_MAX:
            raise DatasetError(
                f"Column '{self.name}' in {self.path} has unsigned integers that do not fit in 64-bit "
                "signed integers; store the column as text or scale it down."
            )
        return array.cast(pa.int64())

    def _floats(self, array: pa.Array) -> pa.Array:
        # NaN and null both mean missing, as an empty CSV cell does; float32 widens exactly.
        values = array.cast(pa.float64())
        if pc.any(pc.is_inf(values)).as_py():
            raise DatasetError(
                f"Column '{self.name}' in {self.path} contains infinite values; replace them with finite "
                "numbers or leave the cells empty."
            )
        return pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)

    def _booleans(self, array: pa.Array) -> pa.Array:
        return array

    def _texts(self, array: pa.Array) -> pa.Array:
        # Same normalisation as CSV cells: trimmed, and blank means missing.
        text = pc.utf8_trim(array.cast(pa.string()), WHITESPACE)
        return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)

    def _datetimes(self, array: pa.Array) -> pa.Array:
        typ = array.type
        try:
            if pa.types.is_date(typ):
                array = array.cast(pa.timestamp("us"))
            else:
                # Truncate nanoseconds to microseconds in Arrow, before anything can round.
                array = array.cast(pa.timestamp("us", typ.tz), safe=typ.unit != "ns")
        except pa.ArrowInvalid:
            raise self._years() from None
        # Arrow keeps instants in UTC, so naming the zone UTC changes no value; a value
        # without a zone is taken to be UTC already.
        ticks = array.view(pa.int64())
        if array.null_count < len(array):
            low, high = pc.min_max(ticks).values()
            if low.as_py() < _YEAR_1_US or high.as_py() >= _YEAR_10000_US:
                raise self._years()
        return ticks.view(pa.timestamp("us", "UTC"))

    def _years(self) -> DatasetError:
        return DatasetError(
            f"Column '{self.name}' in {self.path} has dates outside the years 1 to 9999; "
            "fix or remove those values."
        )


_CONVERT = {
    "integer": _Column._integers,
    "float": _Column._floats,
    "boolean": _Column._booleans,
    "categorical": _Column._texts,
    "datetime": _Column._datetimes,
}


def _arrow_kind(path: Path, name: str, typ: pa.DataType) -> Kind:
    if pa.types.is_dictionary(typ):
        return _arrow_kind(path, name, typ.value_type)
    if pa.types.is_boolean(typ):
        return "boolean"
    if pa.types.is_integer(typ):
        return "integer"
    if pa.types.is_floating(typ):
        return "float"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return "categorical"
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return "datetime"
    if pa.types.is_null(typ):
        raise entirely_empty(path, name)
    hint = " (cast decimals to float)" if pa.types.is_decimal(typ) else ""
    raise DatasetError(
        f"Column '{name}' in {path} has the Parquet type {typ}, which Cove does not support"
        f"{hint}; use integer, float, boolean, string, date or timestamp columns."
    )
