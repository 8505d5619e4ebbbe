"""The public column schema of a dataset: declared by its owner, never computed from its rows.

The schema is published, so everything in it is public: column names, kinds, whether a
column may have missing values, value ranges, category labels, and the fallback label and
fill value that training uses. A schema computed from the private table would publish a
deterministic function of private values (the true extremes, which labels occur, whether a
cell is missing), so Cove publishes only a schema the owner **declares** (`DatasetSchema.load`
of a JSON file): public knowledge about the domain, such as an age between 0 and 120 or the
full list of diagnosis codes. `draft_schema` reads the private table to give the owner a
starting point on their own screen; it is never published as is.

Training takes the declared schema at its word, whatever the rows hold: numbers outside the
declared range are clipped into it, labels outside the declared categories become the
column's `fallback`, and missing cells are filled (targets with the column's `fill`), so
no row is ever dropped and the work a job does never depends on which rows are missing.
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exchange.errors import DatasetError, InputError
from exchange.validation_messages import describe

Kind: TypeAlias = Literal["integer", "float", "boolean", "categorical", "datetime"]
Bound: TypeAlias = int | float | datetime

KINDS: tuple[Kind, ...] = ("integer", "float", "boolean", "categorical", "datetime")

# One pandas dtype per kind. The reader and the mock generator produce exactly these, so a
# table's kinds can be read off its dtypes. The nullable extension types keep missing
# integers/booleans as <NA> instead of silently turning the column into floats/objects.
KIND_DTYPES: dict[Kind, object] = {
    "integer": pd.Int64Dtype(),
    "float": np.dtype("float64"),
    "boolean": pd.BooleanDtype(),
    "categorical": pd.StringDtype("pyarrow", na_value=pd.NA),
    "datetime": pd.DatetimeTZDtype("us", "UTC"),
}

# More labels than this and a categorical column stops describing groups and starts
# listing individuals (names, ids, free text); its labels are published verbatim.
MAX_CATEGORIES = 64


class ColumnSchema(BaseModel):
    """One column: its name, kind, whether it may be missing, and its declared value domain.

    `fallback` (categorical): the label that unknown labels, and a missing target, become
    [default: the first category]. `fill` (numbers, booleans, datetimes): the value a missing
    target takes [default: the middle of the range; false; the range's start].
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind
    nullable: bool
    minimum: Bound | None = None
    maximum: Bound | None = None
    categories: list[str] | None = None
    fallback: str | None = None
    fill: Bound | bool | None = None

    @model_validator(mode="after")
    def _check_domain(self) -> ColumnSchema:
        if self.kind in ("integer", "float", "datetime"):
            self._check_range()
        elif self.minimum is not None or self.maximum is not None:
            raise ValueError(f"column '{self.name}' of kind {self.kind} cannot have a range")
        if self.kind == "categorical":
            self._check_categories()
            if self.fallback is not None and self.fallback not in (self.categories or []):
                raise ValueError(f"the fallback of column '{self.name}' must be one of its categories")
            if self.fill is not None:
                raise ValueError(f"categorical column '{self.name}' takes a fallback, not a fill")
        elif self.categories is not None or self.fallback is not None:
            raise ValueError(f"column '{self.name}' of kind {self.kind} cannot have categories or a fallback")
        else:
            self._check_fill()
        return self

    def _check_fill(self) -> None:
        if self.fill is None:
            return
        if self.kind == "boolean":
            if not isinstance(self.fill, bool):
                raise ValueError(f"the fill of boolean column '{self.name}' must be true or false")
            return
        fill = _coerce_bound(self.name, self.kind, self.fill)  # type: ignore[arg-type]
        if not self.minimum <= fill <= self.maximum:  # type: ignore[operator]
            raise ValueError(f"the fill of column '{self.name}' must lie within its range")
        self.fill = fill

    @property
    def fallback_label(self) -> str:
        """The label unknown (and missing target) values become."""
        assert self.categories
        return self.fallback if self.fallback is not None else self.categories[0]

    @property
    def fill_value(self) -> Bound | bool:
        """The value a missing target takes (numbers, booleans, datetimes)."""
        if self.fill is not None:
            return self.fill
        if self.kind == "boolean":
            return False
        if self.kind == "datetime":
            return self.minimum  # type: ignore[return-value]
        middle = (self.minimum + self.maximum) / 2  # type: ignore[operator]
        return int(middle) if self.kind == "integer" else float(middle)

    def _check_range(self) -> None:
        if self.minimum is None or self.maximum is None:
            raise ValueError(
                f"column '{self.name}' of kind {self.kind} needs a minimum and maximum"
            )
        self.minimum = _coerce_bound(self.name, self.kind, self.minimum)
        self.maximum = _coerce_bound(self.name, self.kind, self.maximum)
        if self.minimum > self.maximum:  # type: ignore[operator]
            raise ValueError(f"column '{self.name}' has a minimum above its maximum")

    def _check_categories(self) -> None:
        cats = self.categories
        if not cats:
            raise ValueError(f"categorical column '{self.name}' needs at least one category")
        if len(cats) > MAX_CATEGORIES:
            raise ValueError(f"column '{self.name}' has more than {MAX_CATEGORIES} categories")
        if cats != sorted(set(cats)):
            raise ValueError(f"the categories of column '{self.name}' must be sorted and unique")
        if any(c != c.strip() or not c for c in cats):
            raise ValueError(
                f"the categories of column '{self.name}' must be non-blank and trimmed"
            )


class DatasetSchema(BaseModel):
    """The ordered list of a dataset's columns."""

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnSchema] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique_names(self) -> DatasetSchema:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        return self

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    @classmethod
    def load(cls, path: Path) -> DatasetSchema:
        """A declared schema from a JSON file (as `cove schema draft` writes one); InputError
        with one sentence naming the file and the problem."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise InputError(f"Cannot read the schema file {path}; check the path (UTF-8 JSON).") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise InputError(f"The schema file {path} is not a valid schema ({describe(error)}).") from None

    @classmethod
    def declared(cls, mapping: dict) -> DatasetSchema:  # type: ignore[type-arg]
        """A declared schema from its JSON form as a dict; InputError with one sentence."""
        try:
            return cls.model_validate(mapping)
        except ValidationError as error:
            raise InputError(f"The schema is not valid ({describe(error)}).") from None

    def column(self, name: str) -> ColumnSchema:
        """Return the column called `name`; InputError if there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise InputError(
            f"The dataset has no column named '{name}'; "
            f"its columns are: {', '.join(self.names)}."
        )


def _coerce_bound(name: str, kind: Kind, value: Bound) -> Bound:
    """Normalise a range bound to the Python type its kind uses (int, float, UTC datetime)."""
    if kind == "datetime":
        if not isinstance(value, datetime):
            raise ValueError(f"the range of datetime column '{name}' must be ISO 8601 datetimes")
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, datetime) or isinstance(value, bool):
        raise ValueError(f"the range of {kind} column '{name}' must be numbers")
    if kind == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"the range of integer column '{name}' must be whole numbers")
        return int(value)
    if not math.isfinite(value):
        raise ValueError(f"the range of float column '{name}' must be finite")
    return float(value)


def kind_of(series: pd.Series) -> Kind:
    """The kind of a column, read off its dtype; DatasetError for dtypes Cove cannot handle.

    Accepts Cove's own dtypes (see KIND_DTYPES) and the obvious pandas/numpy equivalents,
    so that hand-built frames work too.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return kind_of(pd.Series(dtype.categories, name=series.name))
    if pd.api.types.is_string_dtype(dtype):
        if all(isinstance(v, str) for v in series.dropna()):
            return "categorical"
    raise DatasetError(
        f"Column '{series.name}' has a type Cove does not support ({dtype}); "
        "use integers, floats, booleans, text categories or ISO 8601 datetimes."
    )


def draft_schema(df: pd.DataFrame) -> DatasetSchema:
    """A draft schema read off the private table, for its owner's eyes only.

    It is a starting point to edit into public knowledge (`cove schema draft`), not a
    public document: its ranges (the extremes rounded outward), its labels and its
    nullability are functions of the private rows. Categorical columns with more than
    MAX_CATEGORIES labels are refused (a schema cannot hold them).
    """
    if df.shape[1] == 0:
        raise DatasetError("The table has no columns; a dataset needs at least one column.")
    return DatasetSchema(columns=[_infer_column(df[name]) for name in df.columns])


def _infer_column(series: pd.Series) -> ColumnSchema:
    name = str(series.name)
    kind = kind_of(series)
    values = series.dropna()
    if values.empty:
        raise DatasetError(
            f"Column '{name}' is entirely empty; remove it or fill in its values."
        )
    nullable = bool(series.isna().any())
    if kind in ("integer", "float"):
        lo, hi = _widen_numeric(values.min(), values.max(), kind)
        return ColumnSchema(name=name, kind=kind, nullable=nullable, minimum=lo, maximum=hi)
    if kind == "datetime":
        lo_dt, hi_dt = _widen_datetime(values.min(), values.max())
        return ColumnSchema(name=name, kind=kind, nullable=nullable, minimum=lo_dt, maximum=hi_dt)
    if kind == "categorical":
        return ColumnSchema(
            name=name, kind=kind, nullable=nullable, categories=_categories(name, values)
        )
    return ColumnSchema(name=name, kind=kind, nullable=nullable)


def _categories(name: str, values: pd.Series) -> list[str]:
    labels = sorted({str(v) for v in values})
    if len(labels) > MAX_CATEGORIES:
        # The count is safe to say; the labels are not.
        raise DatasetError(
            f"Column '{name}' has {len(labels)} distinct values, more than the "
            f"{MAX_CATEGORIES} allowed for a categorical column, and publishing them would "
            "reveal individual rows; drop the column or bucket it into fewer groups."
        )
    if any(label != label.strip() or not label for label in labels):
        # load_table trims cells and treats blank ones as missing; a hand-built frame may not.
        raise DatasetError(
            f"Column '{name}' contains blank text or text with surrounding spaces; "
            "trim the values and leave empty cells missing."
        )
    return labels


# The draft rounds ranges outward to a coarse grid, so that the owner starts from round
# numbers: the coarser of two "nice" powers of ten, two significant digits of the column's
# largest magnitude (52,345..61,002 -> 52,000..62,000) and the order of magnitude of its
# spread (ages 34..71 -> 30..80). Rounding is not privacy: a draft's bounds still follow the
# private extremes, which is why drafts are never published.


def _widen_numeric(lo: object, hi: object, kind: Kind) -> tuple[int | float, int | float]:
    """Round [lo, hi] outward to the coarse grid described above."""
    if kind == "integer":
        lo_d, hi_d = Decimal(int(lo)), Decimal(int(hi))  # type: ignore[call-overload]
    else:
        lo_d, hi_d = Decimal(repr(float(lo))), Decimal(repr(float(hi)))  # type: ignore[arg-type]
    exponent = _grid_exponent(lo_d, hi_d)
    if kind == "integer":
        step = 10 ** max(exponent, 0)  # integers stay integers
        return (int(lo_d) // step) * step, -(-int(hi_d) // step) * step
    return _round_to(lo_d, exponent, ROUND_FLOOR), _round_to(hi_d, exponent, ROUND_CEILING)


def _grid_exponent(lo: Decimal, hi: Decimal) -> int:
    """The grid step is 10**exponent: the coarser of the magnitude and spread steps."""
    magnitude = max(abs(lo), abs(hi))
    if magnitude == 0:
        return 0
    exponent = magnitude.adjusted() - 1
    spread = hi - lo
    if spread > 0:
        exponent = max(exponent, spread.adjusted())
    return exponent


def _round_to(value: Decimal, exponent: int, rounding: str) -> float:
    scaled = value.scaleb(-exponent).to_integral_value(rounding=rounding)
    result = float(scaled.scaleb(exponent))
    # float() rounds to nearest; make sure that never pulls the bound back inside the data.
    if rounding == ROUND_FLOOR and Decimal(repr(result)) > value:
        result = math.nextafter(result, -math.inf)
    if rounding == ROUND_CEILING and Decimal(repr(result)) < value:
        result = math.nextafter(result, math.inf)
    if math.isinf(result):  # rounded past the largest float: the largest float still covers
        result = math.copysign(sys.float_info.max, result)
    return result


def _widen_datetime(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[datetime, datetime]:
    """Round [lo, hi] outward to whole UTC days (the same reasoning as numeric ranges)."""
    lo_day = _to_utc(lo).floor("D")
    hi_day = _to_utc(hi).ceil("D")
    latest = datetime.max.replace(tzinfo=timezone.utc)
    if hi_day.year > latest.year:  # past 9999-12-31: Python datetimes end there
        return _as_datetime(lo_day), latest
    return _as_datetime(lo_day), _as_datetime(hi_day)


def _to_utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _as_datetime(ts: pd.Timestamp) -> datetime:
    # Day-aligned, so converting to a Python datetime loses nothing.
    return datetime(ts.year, ts.month, ts.day, tzinfo=timezone.utc)


def check_frame(df: pd.DataFrame, schema: DatasetSchema) -> None:
    """Check that a table conforms to `schema`; DatasetError naming the first violation.

    Columns must match in name and order, kinds must match, non-nullable columns must be
    complete, numbers and datetimes must lie within the range, and labels must be among the
    categories. Messages name columns and row positions, never values.
    """
    if [str(c) for c in df.columns] != schema.names:
        raise DatasetError(
            "The table's columns do not match the schema; expected "
            f"{', '.join(schema.names)} in that order."
        )
    for col in schema.columns:
        _check_column(df[col.name], col)


def _check_column(series: pd.Series, col: ColumnSchema) -> None:
    kind = kind_of(series)
    if kind != col.kind:
        raise DatasetError(
            f"Column '{col.name}' holds {kind} values but the schema says {col.kind}."
        )
    missing = series.isna()
    if missing.any() and not col.nullable:
        raise DatasetError(
            f"Column '{col.name}' has missing values (first at row {_first(missing)}) "
            "but the schema says it is not nullable."
        )
    if col.kind in ("integer", "float", "datetime"):
        lo, hi = col.minimum, col.maximum
        if col.kind == "datetime":
            lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
            if series.dt.tz is None:
                series = series.dt.tz_localize("UTC")
        outside = ((series < lo) | (series > hi)) & ~missing
        if outside.any():
            raise DatasetError(
                f"Column '{col.name}' has a value outside the schema's range "
                f"(first at row {_first(outside)})."
            )
    if col.kind == "categorical":
        unknown = ~series.isin(col.categories or []) & ~missing
        if unknown.any():
            raise DatasetError(
                f"Column '{col.name}' has a value that is not one of the schema's categories "
                f"(first at row {_first(unknown)})."
            )


def _first(mask: pd.Series) -> int:
    """Position (0-based) of the first True in a boolean mask."""
    return int(np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))[0])


def check_kinds(df: pd.DataFrame, schema: DatasetSchema) -> None:
    """DatasetError unless `df` has the declared columns, in order, with the declared kinds.

    The owner's check at publish (and the runner's before training): everything else about
    the rows (ranges, labels, missing cells) training adapts to the declaration.
    """
    if [str(c) for c in df.columns] != schema.names:
        raise DatasetError(
            "The table's columns do not match the declared schema; expected "
            f"{', '.join(schema.names)} in that order."
        )
    for col in schema.columns:
        kind = kind_of(df[col.name])
        # A declared float column may hold whole numbers the reader typed as integers.
        if kind != col.kind and not (col.kind == "float" and kind == "integer"):
            raise DatasetError(f"Column '{col.name}' holds {kind} values but the declared schema says {col.kind}.")


def departures(df: pd.DataFrame, schema: DatasetSchema) -> list[str]:
    """What training will adapt, as sentences for the owner's own screen (never published):
    values outside the declared ranges (clipped), labels outside the declared categories
    (their fallback), missing cells in columns declared complete."""
    notes = []
    for col in schema.columns:
        series = df[col.name]
        missing = series.isna()
        if missing.any() and not col.nullable:
            notes.append(f"column '{col.name}' has {int(missing.sum())} missing cell(s) but is declared complete")
        if col.kind in ("integer", "float", "datetime"):
            lo, hi = col.minimum, col.maximum
            if col.kind == "datetime":
                lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
                series = series.dt.tz_localize("UTC") if series.dt.tz is None else series
            outside = int((((series < lo) | (series > hi)) & ~missing).sum())
            if outside:
                notes.append(f"column '{col.name}' has {outside} value(s) outside its declared range (clipped)")
        if col.kind == "categorical":
            unknown = int((~series.isin(col.categories or []) & ~missing).sum())
            if unknown:
                notes.append(f"column '{col.name}' has {unknown} label(s) not declared (they become '{col.fallback_label}')")
    return notes
