"""What publishing needs from the private file, in one streamed read: the kinds checked
against the declared schema, the keyed commitment and the row count.

The file is never held in memory as a whole: the reader hands over a chunk of rows at a
time (stream.py) and the commitment is computed as they go by, so memory is bounded by a
chunk, whatever the size of the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from exchange.datasets.commitment import CommitmentKey, Committer, DatasetCommitment
from exchange.datasets.reader import stream_table
from exchange.datasets.schema import KIND_DTYPES, DatasetSchema, Kind, check_kinds
from exchange.datasets.stream import DEFAULT_CHUNKING, Chunking, Progress


class TableScan(BaseModel):
    """The result of a scan. `rows` is the true row count: private, it stays on this machine
    (the metadata publishes a noisy count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=1)
    commitment: DatasetCommitment
    names: list[str]
    kinds: list[Kind]


def scan_table(
    path: Path,
    schema: DatasetSchema,
    key: CommitmentKey,
    *,
    progress: Progress | None = None,
    chunking: Chunking = DEFAULT_CHUNKING,
) -> TableScan:
    """Read and validate `path`, check its kinds against the declared `schema` and commit to
    it under `key`; DatasetError for the first problem, as `load_table` then `check_kinds`
    and `commit` would raise it. `progress`, if given, is told the rows read so far."""
    committer = Committer(key)
    layout = stream_table(Path(path), committer, chunking=chunking, progress=progress)
    # check_kinds reads kinds off dtypes: an empty frame with the table's dtypes suffices.
    columns = zip(layout.names, layout.kinds)
    shape = pd.DataFrame({name: pd.Series([], dtype=KIND_DTYPES[kind]) for name, kind in columns})
    check_kinds(shape, schema)
    return TableScan(rows=layout.rows, commitment=committer.commitment(), names=layout.names, kinds=layout.kinds)
