"""What the cells of a CSV column are, a chunk at a time: missing or present, integer, number,
boolean or date text, and their values.

A column's kind is a property of all its cells (reader.py's rules: all integers, else all
numbers, all booleans, all dates, else text unless nearly all are numbers or dates), so
`ColumnCells` keeps counts and the first row of each kind of problem as chunks go by, and
says at the end which kind the column has or which error to raise. Cells are classified
with Arrow's RE2 kernels; RE2's `\\d` and case folding are ASCII-only, so the few non-ASCII
cells are classified with Python's own patterns, which is what they always were. A chunk of
a column that has held only numbers so far takes a faster road: if Arrow parses every cell
as a finite float, every cell is a number (Arrow's float syntax is the pattern's, plus
spellings of infinity and NaN, which the finiteness test excludes), and byte counts tell
integers and already-canonical number texts apart without a regular expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.frames import ARROW_TYPES
from exchange.datasets.schema import KIND_DTYPES, Kind
from exchange.datasets.string_view import StringView

# Cell texts that mean "no value" in a CSV (compared case-insensitively, after trimming).
# A subset of pandas' defaults: the spellings spreadsheets and R/pandas exports produce.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a"})

INT_RE = re.compile(r"[+-]?\d+")
FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
NONFINITE_RE = re.compile(r"[+-]?(inf|infinity)", re.IGNORECASE)
BOOL_TEXT = {"true": True, "false": False}
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?"
)

# The same patterns for RE2 on ASCII text, anchored as fullmatch is.
_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_BOOL = r"^(true|false)$"
_DATETIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
# A number text that is already its own Python repr: positional, no superfluous zeros, at
# most 15 significant digits (any such decimal survives the round trip through a double,
# so repr finds no shorter text) and a decimal exponent of at least -4.
_CANONICAL_FLOAT = r"^-?(?:[1-9][0-9]*\.(?:0|[0-9]*[1-9])|0\.(?:0|0{0,3}[1-9](?:[0-9]*[1-9])?))$"
_CANONICAL_MAX_LENGTH = 16  # digits and the point, without a sign

# What Python's str.strip() removes: every character for which str.isspace() holds
# (tests/unit/test_scan.py checks the list against Python's own).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_MARKER_START = b"nN#"  # every missing marker but "" starts with one of these
_MARKER_LENGTH = 4
_MARKERS = pa.array(sorted(MISSING_MARKERS))

# A column is "numbers (or dates) with a few bad cells" -- an error -- rather than text when
# at least this share of its values are numbers (or dates).
MOSTLY_TYPED = 0.9

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class ColumnProblem:
    """The first cell that makes a column unusable: its data row (0-based) and what it is."""

    row: int
    what: str  # "not-number" | "not-date" | "int-overflow" | "float-overflow" | "bad-date"
    infinite: bool = False  # for not-number/not-date: the cell spells an infinity
    odd: int = 0  # for not-number/not-date: how many present cells do not fit


@dataclass
class _Chunk:
    """One chunk of one column: trimmed texts (missing cells null) and what they are."""

    text: pa.Array
    present: np.ndarray
    ints: pa.Array | None = None
    floats: pa.Array | None = None
    dates: pa.Array | None = None
    canonical_floats: pa.Array | None = None
    plus: bool = True  # some cell may hold a "+"


class ColumnCells:
    """The running classification of one CSV column (see the module docstring)."""

    def __init__(self) -> None:
        self.present = 0
        self.numbers = 0  # present cells that are numbers (integers among them)
        self.dates = 0
        self.all_integers = True  # so far, every present cell is an integer
        self.all_booleans = True
        self._first_not_number: tuple[int, bool] | None = None
        self._first_not_date: tuple[int, bool] | None = None
        self._int_overflow: int | None = None
        self._float_overflow: int | None = None
        self._bad_date: int | None = None
        self._chunk: _Chunk | None = None
        self.longest = 0  # bytes of the longest cell, untrimmed

    # -- per chunk -------------------------------------------------------------------

    def observe(self, raw: pa.Array, first_row: int) -> None:
        """Classify the next chunk of cells, whose first is data row `first_row`."""
        view = StringView(raw)
        if len(view.lengths):
            self.longest = max(self.longest, int(view.lengths.max()))
        ascii = view.all_ascii()
        # ASCII whitespace is all at or below the space character; trim only if some cell
        # starts or ends with such a byte (or may hold other whitespace).
        if not ascii or view.edge_at_most(ord(" ")):
            raw = pc.utf8_trim(raw, WHITESPACE)
            view = StringView(raw)
        present = _present(raw, view)
        text = raw if present.all() else pc.if_else(pa.array(present), raw, pa.scalar(None, pa.string()))
        chunk = _Chunk(text, present)
        self._chunk = chunk
        if not present.any():
            return
        if not (ascii and self.numbers == self.present and self._numbers(chunk, view, first_row)):
            self._classify(chunk, first_row, ascii)
        self._convert(chunk, first_row, foreign=not ascii)

    def _numbers(self, chunk: _Chunk, view: StringView, first_row: int) -> bool:
        """The fast road for a column of numbers: True if every present cell is one."""
        try:
            floats = pc.cast(chunk.text, pa.float64())
        except pa.ArrowInvalid:
            return False
        if not pc.all(pc.fill_null(pc.is_finite(floats), True)).as_py():
            return False  # an overflow or a spelling of infinity or NaN: the slow road
        count = int(chunk.present.sum())
        present = view if chunk.text.null_count == 0 else StringView(pc.drop_null(chunk.text))
        self.all_integers = self.all_integers and not present.has_any(b".eE")
        self.all_booleans = False
        if self._first_not_date is None:
            self._first_not_date = (first_row + int(np.flatnonzero(chunk.present)[0]), False)
        self.present += count
        self.numbers += count
        chunk.floats = floats
        chunk.plus = present.has_any(b"+")
        if not self.all_integers:
            chunk.canonical_floats = _canonical_texts(chunk.text, view)
        return True

    def _classify(self, chunk: _Chunk, first_row: int, ascii: bool) -> None:
        """The slow road: each cell's pattern, with RE2 (Python's re for non-ASCII cells)."""
        text, present = chunk.text, chunk.present
        foreign = np.zeros(len(present), dtype=bool) if ascii else (
            present & ~pc.fill_null(pc.string_is_ascii(text), True).to_numpy(zero_copy_only=False)
        )  # fmt: skip
        classify = _Classifier(text, present, foreign)
        is_int = classify.matches(_INT, INT_RE)
        is_number = is_int if not (present & ~is_int).any() else classify.matches(_FLOAT, FLOAT_RE)
        if (present & ~is_number).any():
            is_bool = classify.booleans()
            is_date = classify.matches(_DATETIME, DATETIME_RE)
        else:
            is_bool = is_date = np.zeros(len(present), dtype=bool)
        count = int(present.sum())
        self.present += count
        self.numbers += int(is_number.sum())
        self.dates += int(is_date.sum())
        self.all_integers = self.all_integers and int(is_int.sum()) == count
        self.all_booleans = self.all_booleans and int(is_bool.sum()) == count
        if self._first_not_number is None:
            self._first_not_number = _first_odd(text, present & ~is_number, first_row)
        if self._first_not_date is None:
            self._first_not_date = _first_odd(text, present & ~is_date, first_row)
        chunk.plus = True  # unknown: let the integer parse strip signs

    def _convert(self, chunk: _Chunk, first_row: int, foreign: bool) -> None:
        """The values of the kinds the column can still have."""
        if self.all_integers:
            self._convert_ints(chunk, first_row, foreign)
        if self.numbers == self.present:
            self._convert_floats(chunk, first_row, foreign)
        if self.dates == self.present:
            self._convert_dates(chunk, first_row)

    def _convert_ints(self, chunk: _Chunk, first_row: int, foreign: bool) -> None:
        text = chunk.text
        if not foreign:
            try:
                # Arrow's parser takes no "+" (and takes "0x" prefixes, which never get here).
                chunk.ints = pc.cast(pc.utf8_ltrim(text, "+") if chunk.plus else text, pa.int64())
                return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # too large for 64 bits: find which, the slow way
        values = [None if t is None else _int(t) for t in text.to_pylist()]
        for i, v in enumerate(values):
            if v is not None and not _INT64_MIN <= v <= _INT64_MAX:
                if self._int_overflow is None:
                    self._int_overflow = first_row + i
                return
        chunk.ints = pa.array(values, pa.int64())

    def _convert_floats(self, chunk: _Chunk, first_row: int, foreign: bool) -> None:
        if chunk.floats is not None:
            return  # the fast road parsed them, all finite
        if chunk.ints is not None:
            floats = pc.cast(chunk.ints, pa.float64(), safe=False)  # nearest, as float(text)
        elif not foreign:
            floats = pc.cast(chunk.text, pa.float64())
        else:
            floats = pa.array([None if t is None else float(t) for t in chunk.text.to_pylist()], pa.float64())
        infinite = pc.fill_null(pc.is_inf(floats), False).to_numpy(zero_copy_only=False)
        if infinite.any():
            if self._float_overflow is None:
                self._float_overflow = first_row + int(np.flatnonzero(infinite)[0])
            return
        chunk.floats = floats
        if not foreign:
            chunk.canonical_floats = _canonical_texts(chunk.text, StringView(chunk.text))

    def _convert_dates(self, chunk: _Chunk, first_row: int) -> None:
        series, bad = parse_datetimes(chunk.text.to_pylist())
        if bad is not None:
            if self._bad_date is None:
                self._bad_date = first_row + bad
            return
        chunk.dates = pa.array(series, pa.timestamp("us", "UTC"))

    # -- the column so far -----------------------------------------------------------

    def kind(self) -> Kind | None:
        """The kind the cells seen so far give the column (None: no value yet). Text that is
        nearly all numbers or dates is "categorical" here; `problem` says it is an error."""
        if self.present == 0:
            return None
        if self.all_integers:
            return "integer"
        if self.numbers == self.present:
            return "float"
        if self.all_booleans:
            return "boolean"
        if self.dates == self.present:
            return "datetime"
        return "categorical"

    def problem(self) -> ColumnProblem | None:
        """Why the column, as seen so far, cannot be read (None: it can); call after
        checking that it is not entirely empty."""
        kind = self.kind()
        if kind == "categorical":
            if not self.numbers < MOSTLY_TYPED * self.present:
                row, infinite = self._first_not_number  # type: ignore[misc]
                return ColumnProblem(row, "not-number", infinite, self.present - self.numbers)
            if not self.dates < MOSTLY_TYPED * self.present:
                row, infinite = self._first_not_date  # type: ignore[misc]
                return ColumnProblem(row, "not-date", infinite, self.present - self.dates)
        if kind == "integer" and self._int_overflow is not None:
            return ColumnProblem(self._int_overflow, "int-overflow")
        if kind == "float" and self._float_overflow is not None:
            return ColumnProblem(self._float_overflow, "float-overflow")
        if kind == "datetime" and self._bad_date is not None:
            return ColumnProblem(self._bad_date, "bad-date")
        return None

    def column(self, kind: Kind | None) -> CanonicalColumn | None:
        """The last chunk's cells as values of `kind`, or None where they cannot be."""
        chunk = self._chunk
        assert chunk is not None
        if kind is not None and not chunk.present.any():  # all missing: nulls of any kind
            return CanonicalColumn(kind, pa.nulls(len(chunk.present), ARROW_TYPES[kind]))
        if kind == "integer":
            return None if chunk.ints is None else CanonicalColumn(kind, chunk.ints)
        if kind == "float":
            return None if chunk.floats is None else CanonicalColumn(kind, chunk.floats, chunk.canonical_floats)
        if kind == "boolean":
            return CanonicalColumn(kind, pc.equal(pc.utf8_lower(chunk.text), "true"))
        if kind == "datetime":
            return None if chunk.dates is None else CanonicalColumn(kind, chunk.dates)
        if kind == "categorical":
            return CanonicalColumn(kind, chunk.text)
        return None


class _Classifier:
    """Pattern matches of a chunk's present cells: RE2 for ASCII cells, Python's re for the rest."""

    def __init__(self, text: pa.Array, present: np.ndarray, foreign: np.ndarray):
        self.text = text
        self.present = present
        self.foreign = np.flatnonzero(foreign)
        self._foreign_texts: list[str] | None = None

    def _foreign(self) -> list[str]:
        if self._foreign_texts is None:
            self._foreign_texts = self.text.take(pa.array(self.foreign, pa.int64())).to_pylist()
        return self._foreign_texts

    def matches(self, re2: str, python: re.Pattern[str]) -> np.ndarray:
        hit = pc.fill_null(pc.match_substring_regex(self.text, re2), False).to_numpy(zero_copy_only=False)
        hit = hit & self.present
        if len(self.foreign):
            hit[self.foreign] = [bool(python.fullmatch(t)) for t in self._foreign()]
        return hit

    def booleans(self) -> np.ndarray:
        hit = pc.fill_null(pc.match_substring_regex(self.text, _BOOL, ignore_case=True), False)
        hit = hit.to_numpy(zero_copy_only=False) & self.present
        if len(self.foreign):
            hit[self.foreign] = [t.lower() in BOOL_TEXT for t in self._foreign()]
        return hit


def _present(text: pa.Array, view: StringView) -> np.ndarray:
    """Which cells hold a value rather than a missing marker (compared ignoring case)."""
    present = np.ones(len(text), dtype=bool)
    short = (view.lengths <= _MARKER_LENGTH) & view.starts_with_any(_MARKER_START)
    candidates = np.flatnonzero((view.lengths == 0) | short)
    if len(candidates):
        lowered = pc.utf8_lower(text.take(pa.array(candidates, pa.int64())))
        present[candidates] = ~pc.is_in(lowered, value_set=_MARKERS).to_numpy(zero_copy_only=False)
    return present


def _canonical_texts(text: pa.Array, view: StringView) -> pa.Array:
    """The cells of a number column whose text is already Python's repr of their value (null
    elsewhere): see _CANONICAL_FLOAT. Only cells short enough are matched, so a column of
    17-digit doubles costs little here."""
    negative = view.starts_with_any(b"-")
    short = np.flatnonzero((view.lengths > 0) & (view.lengths - negative <= _CANONICAL_MAX_LENGTH))
    if not len(short):
        return pa.nulls(len(text), pa.string())
    hit = pc.match_substring_regex(text.take(pa.array(short, pa.int64())), _CANONICAL_FLOAT)
    canonical = np.zeros(len(text), dtype=bool)
    canonical[short[pc.fill_null(hit, False).to_numpy(zero_copy_only=False)]] = True
    return pc.if_else(pa.array(canonical), text, pa.scalar(None, pa.string()))


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: too large for 64 bits anyway
        return _INT64_MAX + 1


def _first_odd(text: pa.Array, odd: np.ndarray, first_row: int) -> tuple[int, bool] | None:
    where = np.flatnonzero(odd)
    if not len(where):
        return None
    cell = text[int(where[0])].as_py()
    return first_row + int(where[0]), bool(NONFINITE_RE.fullmatch(cell))


def parse_datetimes(cells: list[str | None]) -> tuple[pd.Series | None, int | None]:
    """ISO 8601 texts to UTC (values without an offset are taken to be UTC already), or the
    position of the first cell that is not a valid date."""
    try:
        parsed = pd.to_datetime(pd.Series(cells, dtype=object), format="ISO8601", utc=True)
        return _to_datetime_dtype(parsed), None
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
            return None, i
        stamps.append(ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC"))
    return _to_datetime_dtype(pd.Series(stamps, dtype=object)), None


def _to_datetime_dtype(series: pd.Series) -> pd.Series:
    # Microsecond precision is what Python datetimes and ISO text round-trip exactly;
    # anything finer (Parquet nanoseconds) is truncated, identically for every source.
    try:
        return pd.to_datetime(series, utc=True).astype(KIND_DTYPES["datetime"])
    except (ValueError, OverflowError):
        pass  # nanosecond stamps beside dates outside 1677-2262: one stamp at a time
    ticks = [None if pd.isna(ts) else _microseconds(pd.Timestamp(ts)) for ts in series]
    return pa.array(ticks, pa.timestamp("us", "UTC")).to_pandas().astype(KIND_DTYPES["datetime"])


def _microseconds(ts: pd.Timestamp) -> int:
    """Microseconds since the epoch, rounded down as pandas' astype does."""
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.floor("us").as_unit("us").asm8.astype("datetime64[us]").astype(np.int64))
