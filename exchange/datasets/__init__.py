"""Off-chain side of publishing a dataset: load and validate the private file, commit to
it, infer its public schema, generate a schema-only mock sample and build the metadata."""

from exchange.datasets.commitment import DatasetCommitment, canonical_bytes, commit
from exchange.datasets.metadata import DatasetMetadata, frame_to_records, prepare_metadata
from exchange.datasets.mock import generate_mock
from exchange.datasets.reader import load_table
from exchange.datasets.schema import (
    KIND_DTYPES,
    KINDS,
    MAX_CATEGORIES,
    MIN_CATEGORY_ROWS,
    ColumnSchema,
    DatasetSchema,
    Kind,
    check_frame,
    infer_schema,
    kind_of,
)

__all__ = [
    "KINDS",
    "KIND_DTYPES",
    "MAX_CATEGORIES",
    "MIN_CATEGORY_ROWS",
    "ColumnSchema",
    "DatasetCommitment",
    "DatasetMetadata",
    "DatasetSchema",
    "Kind",
    "canonical_bytes",
    "check_frame",
    "commit",
    "frame_to_records",
    "generate_mock",
    "infer_schema",
    "kind_of",
    "load_table",
    "prepare_metadata",
]
