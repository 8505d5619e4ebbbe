"""The commitment's canonical serialisation (commitment.py), computed a chunk of rows at a time
with Arrow kernels instead of a Python call per cell.

A chunk arrives as one `CanonicalColumn` per column: its kind, its values in an Arrow array
(integers, float64, booleans, strings or timestamps) and, optionally, text already known to
be canonical for some cells (a CSV cell such as `59.49` is its own `repr`), which saves
formatting those. The output is byte-identical to the per-cell formatting the module
docstring of commitment.py defines; tests/unit/test_scan_oracle.py keeps that per-cell
formatter and compares the two on varied tables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from exchange.datasets.float_repr import repr_floats
from exchange.datasets.schema import Kind

_SPECIAL = r'[,"\r\n]'  # a field holding one of these is quoted (RFC 4180)
_MAX_THREADS = 4
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Seconds since the epoch of 0001-01-01 and 10000-01-01: Arrow's strftime covers four-digit
# years; anything else is formatted one value at a time, as Python would.
_YEAR_1, _YEAR_10000 = -62_135_596_800, 253_402_300_800


@dataclass(frozen=True)
class CanonicalColumn:
    """One column of a chunk: its kind, its values, and canonical text known in advance
    (null where it is not; None when there is none)."""

    kind: Kind
    values: pa.Array
    text: pa.Array | None = None


def header_line(names: Iterable[str]) -> bytes:
    """The header line: column names, quoted where needed."""
    return (",".join(_quote_one(name) for name in names) + "\n").encode("utf-8")


def rows_bytes(columns: Sequence[CanonicalColumn]) -> bytes | memoryview:
    """The canonical lines of one chunk of rows (every column has the same length)."""
    if not columns or len(columns[0].values) == 0:
        return b""
    # Arrow's kernels release the GIL, so columns are formatted side by side.
    pool = _pool()
    fields = list(pool.map(field_texts, columns)) if pool and len(columns) > 1 else [field_texts(c) for c in columns]
    fields[-1] = pc.binary_join_element_wise(fields[-1], "\n", "")
    lines = pc.binary_join_element_wise(*fields, ",") if len(fields) > 1 else fields[0]
    return _concatenated(lines)


@functools.cache
def _pool() -> ThreadPoolExecutor | None:
    # A few threads at most: each reserves a stack, which counts against an address-space
    # limit such as the training sandbox's.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(_MAX_THREADS, cpus)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cove-canonical") if workers > 1 else None


def field_texts(column: CanonicalColumn) -> pa.Array:
    """Each cell's field text, quoted where needed; a missing cell is the empty field."""
    values = column.values
    if column.kind == "integer":
        text = pc.cast(values, pa.string())
    elif column.kind == "float":
        text = _float_texts(values, column.text)
    elif column.kind == "boolean":
        text = pc.if_else(values, "true", "false")
    elif column.kind == "datetime":
        text = _datetime_texts(values)
    else:
        text = _quote(pc.cast(values, pa.string()))
    return pc.fill_null(text, "")


def _float_texts(values: pa.Array, known: pa.Array | None) -> pa.Array:
    values = pc.cast(values, pa.float64())
    if known is None:
        return repr_floats(values)
    unknown = pc.is_null(known)
    if not pc.any(unknown).as_py():
        return known
    rest = repr_floats(pc.if_else(unknown, values, pa.scalar(None, pa.float64())))
    return pc.coalesce(known, rest)


def _quote(text: pa.Array) -> pa.Array:
    special = pc.fill_null(pc.match_substring_regex(text, _SPECIAL), False)
    if not pc.any(special).as_py():
        return text
    doubled = pc.replace_substring(text, '"', '""')
    quoted = pc.binary_join_element_wise('"', doubled, '"', "")
    return pc.if_else(special, quoted, text)


def _quote_one(field: str) -> str:
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def _datetime_texts(values: pa.Array) -> pa.Array:
    """YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC, the fraction's trailing zeros dropped."""
    unit = values.type.unit
    per_second = _PER_SECOND[unit]
    ticks = pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    seconds, sub = np.divmod(ticks, per_second)  # floor: 1969-12-31T23:59:59.5 stays in 1969
    if ((seconds < _YEAR_1) | (seconds >= _YEAR_10000)).any():
        return _datetime_texts_one_by_one(values)
    stamp = pc.strftime(pa.array(seconds, pa.timestamp("s", "UTC")), format="%Y-%m-%dT%H:%M:%S")
    nanos = pc.cast(pa.array(sub * (1_000_000_000 // per_second)), pa.string())
    fraction = pc.utf8_rtrim(pc.utf8_lpad(nanos, 9, "0"), "0")
    dotted = pc.if_else(pc.equal(fraction, ""), "", pc.binary_join_element_wise(".", fraction, ""))
    text = pc.binary_join_element_wise(stamp, dotted, "Z", "")
    return pc.if_else(pc.is_null(values), pa.scalar(None, pa.string()), text)


def _datetime_texts_one_by_one(values: pa.Array) -> pa.Array:
    """Years Arrow's strftime does not write as Python does, one Timestamp at a time."""
    def iso(ts: pd.Timestamp) -> str:
        text = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
        fraction = f"{ts.microsecond * 1000 + ts.nanosecond:09d}".rstrip("0")
        return f"{text}.{fraction}Z" if fraction else f"{text}Z"

    stamps = values.to_pandas().astype(object)  # Timestamps, as the per-cell formatter saw them
    texts = [None if pd.isna(ts) else iso(ts.tz_convert("UTC") if ts.tzinfo else ts) for ts in stamps]
    return pa.array(texts, pa.string())


def _concatenated(lines: pa.Array) -> memoryview:
    """The bytes of all the strings of a string array, back to back, without a copy."""
    if lines.null_count:
        raise ValueError("a canonical line is missing")  # fill_null above makes this impossible
    if pa.types.is_large_string(lines.type):
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64, count=len(lines) + 1, offset=lines.offset * 8)
    else:
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    data = lines.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]
