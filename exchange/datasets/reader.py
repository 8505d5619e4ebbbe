"""Load a private dataset file (CSV or Parquet) into a strictly validated DataFrame.

Every problem becomes one DatasetError sentence that says what is wrong and what to do.
Messages name the file, columns, line numbers, byte offsets and types, but never quote a
cell: the file is private and error messages end up in terminals, logs and bug reports.

The returned frame uses exactly one dtype per kind (schema.KIND_DTYPES), whatever the
source format, so the same table read from CSV or Parquet commits to the same bytes. The
file is read as a stream of chunks (stream.py); `stream_table` is for readers that need no
frame at all, such as the publisher's scan (scan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.csv_cells import MISSING_MARKERS
from exchange.datasets.csv_stream import stream_csv
from exchange.datasets.frames import to_frame
from exchange.datasets.parquet_stream import stream_parquet
from exchange.datasets.schema import Kind
from exchange.datasets.stream import DEFAULT_CHUNKING, Chunking, Progress, TableLayout, TableSink
from exchange.errors import DatasetError

__all__ = ["MISSING_MARKERS", "load_table", "stream_table"]


def load_table(path: Path, *, chunking: Chunking = DEFAULT_CHUNKING) -> pd.DataFrame:
    """Read and validate a `.csv` or `.parquet` dataset file; DatasetError if it is unusable.

    Columns come back as Int64 (integer), float64 (float), boolean, string (categorical)
    or datetime64[us, UTC] (datetime). Missing values are allowed, but not a column that
    is entirely missing, and the table must have at least one data row.
    """
    frame = _FrameSink()
    layout = stream_table(path, frame, chunking=chunking)
    return to_frame(layout.names, layout.kinds, frame.columns)


def stream_table(
    path: Path, sink: TableSink, *, chunking: Chunking = DEFAULT_CHUNKING, progress: Progress | None = None
) -> TableLayout:
    """Read and validate a `.csv` or `.parquet` file into `sink` a chunk at a time (see
    stream.py); DatasetError if it is unusable, with the same rules as `load_table`."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    reader = {".csv": stream_csv, ".parquet": stream_parquet, ".pq": stream_parquet}.get(suffix)
    if reader is None:
        raise DatasetError(
            f"{path} has the extension '{suffix or '(none)'}', which Cove cannot read; "
            "provide a .csv or .parquet file."
        )
    return reader(path, sink, chunking, progress or _quiet)


def _quiet(rows: int) -> None:
    pass


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"The dataset file {path} does not exist; check the path.")
    if path.is_dir():
        raise DatasetError(
            f"{path} is a directory, not a dataset file; pass the path of a .csv or .parquet file."
        )
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty (0 bytes); export the dataset again.")


class _FrameSink:
    """Keeps every chunk, for the frame."""

    def __init__(self) -> None:
        self.columns: list[list[pa.Array]] = []

    def begin(self, names: Sequence[str], kinds: Sequence[Kind]) -> None:
        self.columns = [[] for _ in names]

    def add(self, columns: Sequence[CanonicalColumn]) -> None:
        for kept, column in zip(self.columns, columns):
            kept.append(column.values)
