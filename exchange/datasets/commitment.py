"""Commitment to a private table: the sha256 of one canonical serialisation of it.

The owner publishes the commitment on-chain; later the runner re-loads the private file,
recomputes it and compares. So the serialisation depends only on the table's values --
not on the file format, pandas version or dtype resolution -- and must never change:

* UTF-8 CSV with LF line endings, a header line, columns in table order, rows in order;
* RFC 4180 quoting: a field is quoted only if it contains a comma, quote, CR or LF,
  and quotes inside are doubled;
* integers in plain decimal; floats as Python's `repr` (the shortest text that
  round-trips, e.g. 0.1, 1e-05, 2.0); booleans as true/false;
* datetimes in UTC as YYYY-MM-DDTHH:MM:SS[.fraction]Z, the fraction without trailing
  zeros and omitted when zero (values without a timezone are taken to be UTC);
* missing values (None, NaN, NaT, <NA>) as empty fields.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from exchange.datasets.schema import kind_of
from exchange.errors import DatasetError

# Rows serialised per chunk while hashing; bounds memory for large tables.
_CHUNK_ROWS = 50_000


class DatasetCommitment(BaseModel):
    """Public commitment to a private table: sha256 of its canonical bytes and its row count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    rows: int = Field(ge=0)


def canonical_bytes(df: pd.DataFrame) -> bytes:
    """The canonical serialisation of `df` (see the module docstring for the format)."""
    return b"".join(_chunks(df))


def commit(df: pd.DataFrame) -> DatasetCommitment:
    """Commit to `df`: sha256 over `canonical_bytes(df)`, plus the number of rows."""
    digest = hashlib.sha256()
    for chunk in _chunks(df):
        digest.update(chunk)
    return DatasetCommitment(sha256="0x" + digest.hexdigest(), rows=len(df))


def _chunks(df: pd.DataFrame) -> Iterator[bytes]:
    yield _line(str(name) for name in df.columns)
    formatters = [_formatter(df.iloc[:, i]) for i in range(df.shape[1])]
    for start in range(0, len(df), _CHUNK_ROWS):
        part = df.iloc[start : start + _CHUNK_ROWS]
        columns = [fmt(part.iloc[:, i]) for i, fmt in enumerate(formatters)]
        lines = [_line(fields) for fields in zip(*columns)] if columns else []
        yield b"".join(lines)


def _line(fields: Iterator[str] | tuple[str, ...]) -> bytes:
    return (",".join(_quote(f) for f in fields) + "\n").encode("utf-8")


def _quote(field: str) -> str:
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def _formatter(series: pd.Series):  # type: ignore[no-untyped-def]
    """Pick the per-kind function that turns a slice of this column into field texts."""
    return {
        "integer": _fmt_integers,
        "float": _fmt_floats,
        "boolean": _fmt_booleans,
        "categorical": _fmt_texts,
        "datetime": _fmt_datetimes,
    }[kind_of(series)]


def _fmt_integers(s: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(int(v)) for v in s.astype(object)]


def _fmt_floats(s: pd.Series) -> list[str]:
    out = []
    for v in s.astype(object):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append("")
            continue
        v = float(v)
        if math.isinf(v):
            raise DatasetError(
                f"Column '{s.name}' contains infinite values, which cannot be committed; "
                "replace them with finite numbers or leave the cells empty."
            )
        out.append(repr(v))
    return out


def _fmt_booleans(s: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else ("true" if v else "false") for v in s.astype(object)]


def _fmt_texts(s: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(v) for v in s.astype(object)]


def _fmt_datetimes(s: pd.Series) -> list[str]:
    s = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
    return ["" if pd.isna(v) else _iso_utc(v) for v in s.astype(object)]


def _iso_utc(ts: pd.Timestamp) -> str:
    text = (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}"
        f"T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    )
    fraction = f"{ts.microsecond * 1000 + ts.nanosecond:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"
