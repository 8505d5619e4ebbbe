"""The reader and the commitment's serialiser as they were before the streaming data path:
one Python call per cell. They are the oracle: the Arrow path must give the same frames,
the same errors and the same canonical bytes. Kept verbatim (only renamed), do not "fix".

The tests comparing the two live in test_scan.py; this module holds only the oracle, plus
a check that it still is what the commitment has always been on a known table.
"""

# ruff: noqa
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exchange.datasets.schema import KIND_DTYPES, Kind, kind_of
from exchange.errors import DatasetError

_LEGACY_CHUNK_ROWS = 50_000
_DOMAIN = b"cove/dataset-commitment/v1\n"


def legacy_canonical_bytes(df: pd.DataFrame) -> bytes:
    return b"".join(legacy_chunks(df))


def legacy_digest(df: pd.DataFrame, secret: bytes) -> str:
    mac = hmac.new(secret, _DOMAIN, hashlib.sha256)
    for chunk in legacy_chunks(df):
        mac.update(chunk)
    return "0x" + mac.hexdigest()


# ---------------------------------------------------------------------------------------
# The reader (exchange/datasets/reader.py before the streaming path)

# Cell texts that mean "no value" in a CSV (compared case-insensitively, after trimming).
# A subset of pandas' defaults: the spellings spreadsheets and R/pandas exports produce.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a"})

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NONFINITE_RE = re.compile(r"[+-]?(inf|infinity)", re.IGNORECASE)
_BOOL_TEXT = {"true": True, "false": False}
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?"
)

# A column is "numbers (or dates) with a few bad cells" -- an error -- rather than text when
# at least this share of its values are numbers (or dates).
_MOSTLY_TYPED = 0.9

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def legacy_load_table(path: Path) -> pd.DataFrame:
    """Read and validate a `.csv` or `.parquet` dataset file; DatasetError if it is unusable.

    Columns come back as Int64 (integer), float64 (float), boolean, string (categorical)
    or datetime64[us, UTC] (datetime). Missing values are allowed, but not a column that
    is entirely missing, and the table must have at least one data row.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    loader: Callable[[Path], pd.DataFrame] | None = {
        ".csv": _load_csv,
        ".parquet": _load_parquet,
        ".pq": _load_parquet,
    }.get(suffix)
    if loader is None:
        raise DatasetError(
            f"{path} has the extension '{suffix or '(none)'}', which Cove cannot read; "
            "provide a .csv or .parquet file."
        )
    df = loader(path)
    _check_table(path, df)
    return df


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"The dataset file {path} does not exist; check the path.")
    if path.is_dir():
        raise DatasetError(
            f"{path} is a directory, not a dataset file; pass the path of a .csv or .parquet file."
        )
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty (0 bytes); export the dataset again.")


def _no_rows(path: Path) -> DatasetError:
    return DatasetError(f"{path} has a header but no data rows; a dataset needs at least one row.")


def _check_table(path: Path, df: pd.DataFrame) -> None:
    if len(df) == 0:
        raise _no_rows(path)
    for name in df.columns:
        if df[name].isna().all():
            raise DatasetError(
                f"Column '{name}' in {path} is entirely empty; remove it or fill in its values."
            )


def _check_column_names(path: Path, names: list[str]) -> None:
    """Blank or repeated names usually mean a header-less file or an exported index.

    Positions, not names, are reported: in a header-less file the "names" are data.
    """
    for pos, name in enumerate(names, start=1):
        if not name.strip():
            raise DatasetError(
                f"Column {pos} of {path} has no name; give every column a name in the header "
                "(a blank first name usually means a pandas index was saved: use index=False)."
            )
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=1):
        if name in seen:
            raise DatasetError(
                f"Columns {seen[name]} and {pos} of {path} have the same name; "
                "give every column a distinct name in the header."
            )
        seen[name] = pos


# ---------------------------------------------------------------------------------------
# CSV


def _load_csv(path: Path) -> pd.DataFrame:
    text = _decode(path)
    if not text.strip():
        raise DatasetError(f"{path} contains only whitespace; export the dataset again.")
    header, rows, lines = _parse_csv(path, text)
    names = [cell.strip() for cell in header]
    _check_header(path, names)
    if not rows:
        raise _no_rows(path)
    columns = {
        name: _type_column(path, name, [row[i] for row in rows], lines)
        for i, name in enumerate(names)
    }
    return pd.DataFrame(columns)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        # utf-8-sig drops the byte-order mark Excel puts at the start of "CSV UTF-8" files.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(
            f"{path} is not valid UTF-8 (first bad byte at offset {exc.start}, line {line}); "
            "re-save it with UTF-8 encoding."
        ) from None


def _parse_csv(path: Path, text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Split into header and rows, refusing any row whose field count differs from the header.

    Returns the header, the data rows and each data row's starting line number. Blank lines
    are skipped. `strict` makes the csv module reject malformed quoting instead of guessing.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
    try:
        for record in reader:
            if not _is_blank(record, header):
                if header is None:
                    header = record
                elif len(record) != len(header):
                    raise DatasetError(
                        f"Line {start} of {path} has {len(record)} fields but the header has "
                        f"{len(header)}; fix that row (quote values that contain commas)."
                    )
                else:
                    rows.append(record)
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error:
        raise DatasetError(
            f"{path} cannot be parsed as CSV at line {reader.line_num}; make sure every "
            'quoted field is closed and quotes inside fields are doubled ("").'
        ) from None
    assert header is not None  # the text is not blank, so some record is non-empty
    return header, rows, lines


def _is_blank(record: list[str], header: list[str] | None) -> bool:
    """An empty or whitespace-only line, which is layout rather than a row.

    In a one-column file such a line could be a missing value; like pandas, Cove skips it.
    """
    if not record:
        return True
    return len(record) == 1 and not record[0].strip() and (header is None or len(header) > 1)


def _check_header(path: Path, names: list[str]) -> None:
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        raise DatasetError(
            f"The header of {path} looks like it uses ';', tab or '|' between columns; "
            "Cove reads comma-separated files, so re-export with commas."
        )
    if all(_looks_like_value(name) for name in names):
        # Do not repeat the cells: without a header, they are the first data row.
        raise DatasetError(
            f"The first line of {path} looks like data, not a header (every cell is a number "
            "or date); add a header line with the column names."
        )
    _check_column_names(path, names)


def _looks_like_value(cell: str) -> bool:
    cell = cell.strip()
    return bool(
        _FLOAT_RE.fullmatch(cell) or _DATETIME_RE.fullmatch(cell) or _NONFINITE_RE.fullmatch(cell)
    )


def _type_column(path: Path, name: str, cells: list[str], lines: list[int]) -> pd.Series:
    """Infer one column's kind from its cells and convert it to that kind's dtype."""
    values = [cell.strip() for cell in cells]
    present = [v.lower() not in MISSING_MARKERS for v in values]
    texts = [v for v, p in zip(values, present) if p]
    if not texts:
        raise DatasetError(
            f"Column '{name}' in {path} is entirely empty; remove it or fill in its values."
        )
    kind = _infer_kind(path, name, values, present, lines)
    cleaned = [v if p else None for v, p in zip(values, present)]
    return _convert(path, name, kind, cleaned, lines)


def _infer_kind(
    path: Path, name: str, values: list[str], present: list[bool], lines: list[int]
) -> Kind:
    texts = [v for v, p in zip(values, present) if p]
    if all(_INT_RE.fullmatch(t) for t in texts):
        return "integer"
    if all(_FLOAT_RE.fullmatch(t) for t in texts):
        return "float"
    if all(t.lower() in _BOOL_TEXT for t in texts):
        return "boolean"
    if all(_DATETIME_RE.fullmatch(t) for t in texts):
        return "datetime"
    _refuse_mostly(path, name, values, present, lines, _FLOAT_RE, "numbers")
    _refuse_mostly(path, name, values, present, lines, _DATETIME_RE, "dates")
    return "categorical"


def _refuse_mostly(
    path: Path,
    name: str,
    values: list[str],
    present: list[bool],
    lines: list[int],
    pattern: re.Pattern[str],
    what: str,
) -> None:
    """Refuse a column of numbers (or dates) with a few odd cells, rather than call it text.

    The odd cells are typos or ad-hoc missing markers; as text the column would lose its
    kind and, with many distinct values, be refused later for a less helpful reason.
    """
    matches = [p and bool(pattern.fullmatch(v)) for v, p in zip(values, present)]
    if sum(matches) < _MOSTLY_TYPED * sum(present):
        return
    first = next(i for i, (p, m) in enumerate(zip(present, matches)) if p and not m)
    odd = sum(present) - sum(matches)
    found = "an infinite value" if _NONFINITE_RE.fullmatch(values[first]) else "text"
    raise DatasetError(
        f"Column '{name}' in {path} holds {what} but has {found} at line {lines[first]} "
        f"({odd} such cell(s) in all); fix those cells or leave them empty for missing values."
    )


def _convert(
    path: Path, name: str, kind: Kind, cells: list[str | None], lines: list[int]
) -> pd.Series:
    dtype = KIND_DTYPES[kind]
    if kind == "integer":
        ints = [None if c is None else int(c) for c in cells]
        for i, v in enumerate(ints):
            if v is not None and not _INT64_MIN <= v <= _INT64_MAX:
                raise DatasetError(
                    f"Column '{name}' in {path} has an integer at line {lines[i]} that does "
                    "not fit in 64 bits; store the column as text or scale it down."
                )
        return pd.Series(ints, dtype=dtype, name=name)
    if kind == "float":
        floats = [np.nan if c is None else float(c) for c in cells]
        for i, v in enumerate(floats):
            if np.isinf(v):
                raise DatasetError(
                    f"Column '{name}' in {path} has a number at line {lines[i]} that is too "
                    "large for a 64-bit float; rescale the column."
                )
        return pd.Series(floats, dtype=dtype, name=name)
    if kind == "boolean":
        return pd.Series(
            [None if c is None else _BOOL_TEXT[c.lower()] for c in cells], dtype=dtype, name=name
        )
    if kind == "datetime":
        return _parse_datetimes(path, name, cells, lines)
    return pd.Series(cells, dtype=dtype, name=name)


def _parse_datetimes(
    path: Path, name: str, cells: list[str | None], lines: list[int]
) -> pd.Series:
    """ISO 8601 texts to UTC; values without an offset are taken to be UTC already."""
    try:
        parsed = pd.to_datetime(pd.Series(cells, dtype=object), format="ISO8601", utc=True)
        return _to_datetime_dtype(parsed.rename(name))
    except (ValueError, OverflowError):
        pass  # parse cell by cell, to find the culprit or handle what pandas could not
    stamps = []
    for i, cell in enumerate(cells):
        if cell is None:
            stamps.append(pd.NaT)
            continue
        try:
            ts = pd.Timestamp(cell)
        except (ValueError, OverflowError):
            raise DatasetError(
                f"Column '{name}' in {path} has an invalid date at line {lines[i]}; "
                "use ISO 8601 dates such as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ."
            ) from None
        stamps.append(ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC"))
    return _to_datetime_dtype(pd.Series(stamps, dtype=object, name=name))


def _to_datetime_dtype(series: pd.Series) -> pd.Series:
    # Microsecond precision is what Python datetimes and ISO text round-trip exactly;
    # anything finer (Parquet nanoseconds) is truncated, identically for every source.
    return pd.to_datetime(series, utc=True).astype(KIND_DTYPES["datetime"])


# ---------------------------------------------------------------------------------------
# Parquet

# Pandas stores an unnamed index as a column with this name; it is not data.
_PANDAS_INDEX_RE = re.compile(r"__index_level_\d+__")


def _load_parquet(path: Path) -> pd.DataFrame:
    try:
        # ParquetFile rather than read_table: the dataset API behind read_table fails on
        # duplicate column names, which deserve their own message.
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError):
        raise DatasetError(
            f"{path} is not a readable Parquet file; export the dataset to Parquet again "
            "or use a .csv file."
        ) from None
    keep = [i for i, n in enumerate(table.column_names) if not _PANDAS_INDEX_RE.fullmatch(n)]
    table = table.select(keep)
    if table.num_columns == 0:
        raise DatasetError(f"{path} has no columns; a dataset needs at least one column.")
    _check_column_names(path, [str(n) for n in table.column_names])
    columns = {
        name: _arrow_column(path, name, table.column(i))
        for i, name in enumerate(table.column_names)
    }
    return pd.DataFrame(columns)


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
        raise DatasetError(
            f"Column '{name}' in {path} is entirely empty; remove it or fill in its values."
        )
    hint = " (cast decimals to float)" if pa.types.is_decimal(typ) else ""
    raise DatasetError(
        f"Column '{name}' in {path} has the Parquet type {typ}, which Cove does not support"
        f"{hint}; use integer, float, boolean, string, date or timestamp columns."
    )


def _arrow_column(path: Path, name: str, column: pa.ChunkedArray) -> pd.Series:
    kind = _arrow_kind(path, name, column.type)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == "integer":
        return _arrow_integers(path, name, column)
    if kind == "float":
        return _arrow_floats(path, name, column)
    if kind == "boolean":
        return pd.Series(column.to_pylist(), dtype=KIND_DTYPES["boolean"], name=name)
    if kind == "datetime":
        return _arrow_datetimes(path, name, column)
    # Same normalisation as CSV cells: trimmed, and blank means missing.
    texts = [None if v is None or not v.strip() else v.strip() for v in column.to_pylist()]
    return pd.Series(texts, dtype=KIND_DTYPES["categorical"], name=name)


def _arrow_integers(path: Path, name: str, column: pa.ChunkedArray) -> pd.Series:
    if pa.types.is_uint64(column.type) and column.null_count < len(column):
        if pc.max(column).as_py() > _INT64_MAX:
            raise DatasetError(
                f"Column '{name}' in {path} has unsigned integers that do not fit in 64-bit "
                "signed integers; store the column as text or scale it down."
            )
    return pd.Series(column.to_pylist(), dtype=KIND_DTYPES["integer"], name=name)


def _arrow_floats(path: Path, name: str, column: pa.ChunkedArray) -> pd.Series:
    # NaN and null both mean missing, as an empty CSV cell does; float32 widens exactly.
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if np.isinf(values).any():
        raise DatasetError(
            f"Column '{name}' in {path} contains infinite values; replace them with finite "
            "numbers or leave the cells empty."
        )
    return pd.Series(values, dtype=KIND_DTYPES["float"], name=name)


def _arrow_datetimes(path: Path, name: str, column: pa.ChunkedArray) -> pd.Series:
    typ = column.type
    if pa.types.is_date(typ):
        column = column.cast(pa.timestamp("us"))
    elif typ.unit == "ns":
        # Truncate to microseconds in Arrow, before pandas can overflow or round.
        column = column.cast(pa.timestamp("us", typ.tz), safe=False)
    series = column.to_pandas()
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    series = series.dt.tz_convert("UTC").astype(KIND_DTYPES["datetime"]).rename(name)
    years = series.dt.year.dropna()
    if len(years) and (years.min() < 1 or years.max() > 9999):
        raise DatasetError(
            f"Column '{name}' in {path} has dates outside the years 1 to 9999; "
            "fix or remove those values."
        )
    return series


# ---------------------------------------------------------------------------------------
# The serialiser (exchange/datasets/commitment.py before the streaming path)


def legacy_chunks(df: pd.DataFrame) -> Iterator[bytes]:
    yield _line(str(name) for name in df.columns)
    formatters = [_formatter(df.iloc[:, i]) for i in range(df.shape[1])]
    for start in range(0, len(df), _LEGACY_CHUNK_ROWS):
        part = df.iloc[start : start + _LEGACY_CHUNK_ROWS]
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


# ---------------------------------------------------------------------------------------


def test_the_oracle_is_the_commitment_cove_has_always_published() -> None:
    """A fixed table and key, and the digest the per-cell serialiser gave before any of this."""
    frame = pd.DataFrame(
        {
            "n": pd.array([7, None, -3], dtype="Int64"),
            "x": [0.1, 1e-05, 2.0],
            "ok": pd.array([True, False, None], dtype="boolean"),
            "label": pd.array(["plain", 'has "quotes", comma', None], dtype="string"),
        }
    )
    assert legacy_canonical_bytes(frame) == (
        b'n,x,ok,label\n7,0.1,true,plain\n,1e-05,false,"has ""quotes"", comma"\n-3,2.0,,\n'
    )
    assert legacy_digest(frame, bytes(range(32))) == DIGEST_OF_FIXED_TABLE


DIGEST_OF_FIXED_TABLE = "0xb0cd03e00376667a08d49b54128cec863289983c85a86a8fcf8092f351ec8118"
