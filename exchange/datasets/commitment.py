"""A hiding commitment to a private table: a keyed hash of one canonical serialisation of it.

The owner publishes the commitment on-chain; later the runner re-loads the private file,
recomputes it and compares, so the owner is bound to the table it published. The hash is
HMAC-SHA256 under a 256-bit secret key kept only in the owner's private state (and given to
the owner's runner), so that nobody else can test a guess: with an unsalted hash anyone who
knew all rows but one could hash candidates for the missing cells until one matched. What it
lets anyone check: that two datasets of one owner hold the same table (same key, same
table, same commitment; the hub refuses to publish it twice), and, with the key disclosed to
them, that a given file is the committed table. What it does not: that the table is what its
metadata describes, or anything about a row to someone without the key.

The serialisation depends only on the table's values -- not on the file format, pandas
version or dtype resolution -- and must never change:

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
import hmac
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from exchange.datasets.schema import kind_of
from exchange.errors import DatasetError, InputError

# Rows serialised per chunk while hashing; bounds memory for large tables.
_CHUNK_ROWS = 50_000
SCHEME = "hmac-sha256-v1"
KEY_BYTES = 32
# Domain separation: these keyed hashes are commitments to Cove tables and nothing else.
_DOMAIN = b"cove/dataset-commitment/v1\n"


class DatasetCommitment(BaseModel):
    """Public, hiding commitment to a private table (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: Literal["hmac-sha256-v1"] = SCHEME
    digest: str = Field(pattern=r"^0x[0-9a-f]{64}$")


class CommitmentKey:
    """The owner's 256-bit commitment secret: a file of 64 hex digits, readable by its owner only.

    It never leaves the owner's premises; the owner's runner reads the same file (`cove
    runner start --commitment-key FILE`) to check that it trains on the committed table.
    """

    def __init__(self, secret: bytes):
        if len(secret) != KEY_BYTES:
            raise InputError(f"A commitment key is {KEY_BYTES} bytes.")
        self.secret = secret

    @classmethod
    def load(cls, path: Path) -> CommitmentKey:
        try:
            text = path.read_text().strip()
            return cls(bytes.fromhex(text))
        except FileNotFoundError:
            raise InputError(
                f"There is no commitment key at {path}; give the runner the owner's key with --commitment-key FILE."
            ) from None
        except (OSError, ValueError):
            raise InputError(f"The commitment key file {path} is damaged or unreadable; it must hold 64 hex digits.") from None

    @classmethod
    def at(cls, path: Path) -> CommitmentKey:
        """The key stored at `path`, or a fresh one that is not stored until `keep`."""
        return cls.load(path) if path.exists() else cls(secrets.token_bytes(KEY_BYTES))

    def keep(self, path: Path) -> None:
        """Store this key at `path` (0600, atomically) unless a key is there already."""
        if path.exists():
            return
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self.secret.hex() + "\n")
            os.replace(tmp, path)
        except OSError as error:
            raise InputError(f"Cannot store the commitment key at {path}: {error.strerror}.") from None


def canonical_bytes(df: pd.DataFrame) -> bytes:
    """The canonical serialisation of `df` (see the module docstring for the format)."""
    return b"".join(_chunks(df))


def commit(df: pd.DataFrame, key: CommitmentKey) -> DatasetCommitment:
    """Commit to `df`: HMAC-SHA256 under `key` of `canonical_bytes(df)` (domain-separated)."""
    mac = hmac.new(key.secret, _DOMAIN, hashlib.sha256)
    for chunk in _chunks(df):
        mac.update(chunk)
    return DatasetCommitment(digest="0x" + mac.hexdigest())


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
