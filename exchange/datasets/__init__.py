"""Off-chain side of publishing a dataset: load and validate the private file, commit to
it, infer its public schema, generate a schema-only mock sample and build the metadata.
`scan_table` does what publishing needs of the file in one streamed read."""

from exchange.datasets.commitment import CommitmentKey, DatasetCommitment, canonical_bytes, commit
from exchange.datasets.metadata import DatasetMetadata, frame_to_records, prepare_metadata
from exchange.datasets.mock import generate_mock
from exchange.datasets.reader import load_table, stream_table
from exchange.datasets.scan import TableScan, scan_table
from exchange.datasets.schema import (
    KIND_DTYPES,
    KINDS,
    MAX_CATEGORIES,
    ColumnSchema,
    DatasetSchema,
    Kind,
    check_frame,
    check_kinds,
    departures,
    draft_schema,
    kind_of,
)

__all__ = [
    "KINDS",
    "KIND_DTYPES",
    "MAX_CATEGORIES",
    "ColumnSchema",
    "CommitmentKey",
    "DatasetCommitment",
    "DatasetMetadata",
    "DatasetSchema",
    "Kind",
    "TableScan",
    "canonical_bytes",
    "check_frame",
    "check_kinds",
    "commit",
    "departures",
    "draft_schema",
    "frame_to_records",
    "generate_mock",
    "kind_of",
    "load_table",
    "prepare_metadata",
    "scan_table",
    "stream_table",
]
