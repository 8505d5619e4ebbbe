"""A dataset file as a stream of chunks of rows, for readers that must not hold it all.

reader.stream_table checks the file, picks the reader for its format and hands the rows to
a `TableSink` a chunk at a time, each column as Arrow values of its kind. A CSV column's kind
is only certain once every row has been read, so the reader may have to start over: it
calls `begin` again, and only what follows the last `begin` counts. Every problem with the
file is one DatasetError sentence that names the file, columns and line numbers but never
quotes a cell: the file is private and messages end up in terminals, logs and bug reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.schema import Kind
from exchange.errors import DatasetError

Progress = Callable[[int], None]  # told the number of rows read so far


@dataclass(frozen=True)
class Chunking:
    """How much of a file is in memory at once: CSV blocks of `csv_bytes`, Parquet batches of
    `parquet_rows`. Small values are for tests: the results never depend on them."""

    csv_bytes: int = 16 << 20
    parquet_rows: int = 1 << 16


DEFAULT_CHUNKING = Chunking()


@dataclass(frozen=True)
class TableLayout:
    """What a complete read found: column names and kinds, and the (private) row count."""

    names: list[str]
    kinds: list[Kind]
    rows: int


class TableSink(Protocol):
    """Where a reader puts the rows: `begin` (again, if the reader starts over), then chunks."""

    def begin(self, names: Sequence[str], kinds: Sequence[Kind]) -> None: ...

    def add(self, columns: Sequence[CanonicalColumn]) -> None: ...


class Tee:
    """One read feeding several sinks (the training job commits and encodes in one pass)."""

    def __init__(self, *sinks: TableSink):
        self.sinks = sinks

    def begin(self, names: Sequence[str], kinds: Sequence[Kind]) -> None:
        for sink in self.sinks:
            sink.begin(names, kinds)

    def add(self, columns: Sequence[CanonicalColumn]) -> None:
        for sink in self.sinks:
            sink.add(columns)


def no_rows(path: Path) -> DatasetError:
    return DatasetError(f"{path} has a header but no data rows; a dataset needs at least one row.")


def entirely_empty(path: Path, name: str) -> DatasetError:
    return DatasetError(f"Column '{name}' in {path} is entirely empty; remove it or fill in its values.")
