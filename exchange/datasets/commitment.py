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
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from exchange.datasets.canonical import CanonicalColumn, header_line, rows_bytes
from exchange.datasets.frames import canonical_columns, frame_kinds
from exchange.datasets.schema import Kind
from exchange.errors import InputError

# Rows serialised per chunk while hashing a frame; bounds memory for large tables.
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
    names = [str(name) for name in df.columns]
    return header_line(names) + b"".join(bytes(rows_bytes(part)) for part in _parts(df))


def commit(df: pd.DataFrame, key: CommitmentKey) -> DatasetCommitment:
    """Commit to `df`: HMAC-SHA256 under `key` of `canonical_bytes(df)` (domain-separated)."""
    committer = Committer(key)
    committer.begin([str(name) for name in df.columns])
    for part in _parts(df):
        committer.add(part)
    return committer.commitment()


class Committer:
    """The commitment computed as a table streams by, a chunk of rows at a time.

    `begin` starts over with the header (a reader that has to re-read a file calls it
    again); chunks of rows follow in order, and `commitment()` is then what `commit` of
    the whole table gives. It is a reader's sink (stream.TableSink).
    """

    def __init__(self, key: CommitmentKey):
        self._key = key
        self._mac = self._fresh()

    def _fresh(self) -> hmac.HMAC:
        return hmac.new(self._key.secret, _DOMAIN, hashlib.sha256)

    def begin(self, names: Sequence[str], kinds: Sequence[Kind] = ()) -> None:
        """Start over; the kinds do not matter: the bytes depend on the values alone."""
        self._mac = self._fresh()
        self._mac.update(header_line(names))

    def add(self, columns: Sequence[CanonicalColumn]) -> None:
        self._mac.update(rows_bytes(columns))

    def commitment(self) -> DatasetCommitment:
        return DatasetCommitment(digest="0x" + self._mac.hexdigest())


def _parts(df: pd.DataFrame) -> Iterator[list[CanonicalColumn]]:
    kinds = frame_kinds(df)  # first, for the whole frame: an odd dtype is refused even without rows
    if df.shape[1] == 0:
        return
    for start in range(0, len(df), _CHUNK_ROWS):
        yield canonical_columns(df.iloc[start : start + _CHUNK_ROWS], kinds)
