"""Mock sample of a dataset, generated from its public schema alone.

`generate_mock` takes only a DatasetSchema, never the private table, so by construction
the sample cannot contain or correlate with private rows: it shows buyers the shape of
the data (columns, kinds, ranges, labels, missing values) and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from exchange.datasets.schema import KIND_DTYPES, ColumnSchema, DatasetSchema
from exchange.errors import InputError

# Share of cells left missing in nullable columns.
MISSING_RATE = 0.1
# Mock samples are for looking at, not for training on.
MAX_MOCK_ROWS = 10_000

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def generate_mock(schema: DatasetSchema, rows: int = 20, seed: int = 0) -> pd.DataFrame:
    """A `rows`-row table drawn uniformly from `schema`; the same seed gives the same table.

    Numbers and datetimes are uniform within the column's range, categories uniform over
    its labels, booleans 50/50, and about one cell in ten is missing in nullable columns.
    Dtypes are Cove's per-kind dtypes (schema.KIND_DTYPES).
    """
    if not 0 <= rows <= MAX_MOCK_ROWS:
        raise InputError(f"The mock sample size must be between 0 and {MAX_MOCK_ROWS} rows.")
    if seed < 0:
        raise InputError("The mock seed must be a non-negative integer.")
    # One independent stream per column, so a column's values depend only on its position
    # and the seed, not on what the columns before it drew.
    streams = np.random.SeedSequence(seed).spawn(len(schema.columns))
    columns = {
        col.name: _column(col, rows, np.random.default_rng(stream))
        for col, stream in zip(schema.columns, streams)
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


def _column(col: ColumnSchema, rows: int, rng: np.random.Generator) -> pd.Series:
    values = _draw(col, rows, rng)
    if col.nullable:
        values[rng.random(rows) < MISSING_RATE] = None
    return pd.Series(values, dtype=KIND_DTYPES[col.kind], name=col.name)


def _draw(col: ColumnSchema, rows: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` values of the column's kind, as an object array (so None can be put in)."""
    if col.kind == "integer":
        lo = max(int(col.minimum), _INT64_MIN)  # type: ignore[arg-type]
        hi = min(int(col.maximum), _INT64_MAX)  # type: ignore[arg-type]
        return rng.integers(lo, hi, size=rows, endpoint=True, dtype=np.int64).astype(object)
    if col.kind == "float":
        return _uniform(float(col.minimum), float(col.maximum), rows, rng)  # type: ignore[arg-type]
    if col.kind == "boolean":
        return (rng.random(rows) < 0.5).astype(object)
    if col.kind == "categorical":
        cats = np.array(col.categories, dtype=object)
        return cats[rng.integers(0, len(cats), size=rows)]
    return _datetimes(col.minimum, col.maximum, rows, rng)  # type: ignore[arg-type]


def _uniform(lo: float, hi: float, rows: int, rng: np.random.Generator) -> np.ndarray:
    # rng.uniform overflows to inf when hi - lo exceeds the float range; interpolating
    # between the bounds cannot, and clipping guards against rounding past them.
    t = rng.random(rows)
    values = np.clip(lo * (1.0 - t) + hi * t, lo, hi)
    # Four significant digits of the range: a mock value has no reason to look more precise.
    span = hi - lo
    if np.isfinite(span) and span > 0:
        decimals = max(0, 3 - int(np.floor(np.log10(span))))
        values = np.clip(np.round(values, decimals), lo, hi)
    return values.astype(object)


def _datetimes(lo: datetime, hi: datetime, rows: int, rng: np.random.Generator) -> np.ndarray:
    # Whole seconds: a mock timestamp has no reason to look more precise than that.
    # Integer microseconds, not float timestamps: far-off dates lose microseconds in a float.
    lo_us, hi_us = _epoch_micros(lo), _epoch_micros(hi)
    lo_s = -(-lo_us // 1_000_000)
    hi_s = hi_us // 1_000_000
    if hi_s < lo_s:  # a range within one second: use its start
        return np.array([pd.Timestamp(lo)] * rows, dtype=object)
    seconds = rng.integers(lo_s, hi_s, size=rows, endpoint=True)
    return np.array(list(pd.to_datetime(seconds, unit="s", utc=True)), dtype=object)


def _epoch_micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
