"""The public metadata document of a dataset, published to content-addressed storage.

It holds everything a buyer may see, and every field is either declared by the owner or
released with differential privacy (DESIGN.md section 6): name, description, licence and
tags (the owner's words); the schema (declared, see exchange.datasets.schema); the row
count (the true count plus discrete Gaussian noise, charged to the ledger at publish); the
hiding commitment; the privacy unit and neighbouring relation; and a mock sample generated
from the declared schema alone. Its canonical JSON bytes are what get stored and addressed
by CID.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exchange.datasets.commitment import CommitmentKey, DatasetCommitment
from exchange.datasets.dp_count import COUNT_NOISE_SCALE, noisy_count
from exchange.datasets.mock import generate_mock
from exchange.datasets.scan import TableScan, scan_table
from exchange.datasets.schema import KIND_DTYPES, DatasetSchema, check_frame
from exchange.datasets.stream import Progress
from exchange.errors import DatasetError, InputError
from exchange.storage.canonical import canonical_json
from exchange.storage.cid import CHUNK_SIZE
from exchange.validation_messages import describe

FORMAT_VERSION = 2
# The metadata document is published as one raw block: the chain keeps its sha256 digest,
# which names the document's CID only for a single block (exchange.documents).
MAX_METADATA_BYTES = CHUNK_SIZE
MAX_NAME_LENGTH = 100
MAX_TAG_LENGTH = 64


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class RowCount(BaseModel):
    """How the public row count was released: the true count plus discrete Gaussian noise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mechanism: Literal["discrete-gaussian"] = "discrete-gaussian"
    sensitivity: Literal[1] = 1
    sigma: float = Field(gt=0)


class DatasetMetadata(BaseModel):
    """Public description of a dataset; `to_json_bytes()` is the document that gets stored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str = ""
    license: str = "proprietary"
    tags: list[str] = Field(default_factory=list)
    schema_: DatasetSchema = Field(alias="schema")
    schema_origin: Literal["declared"] = "declared"
    rows: int = Field(ge=1)  # public: the DP row count
    row_count: RowCount
    commitment: DatasetCommitment
    privacy_unit: Literal["row"] = "row"
    neighbouring: Literal["add-remove-one-row"] = "add-remove-one-row"
    mock: list[dict[str, Any]] = Field(default_factory=list)
    format_version: int = FORMAT_VERSION
    created_at: str = Field(default_factory=_now_iso)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the dataset name must not be blank")
        return value

    @field_validator("tags")
    @classmethod
    def _tags_valid(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag.strip() or len(tag) > MAX_TAG_LENGTH:
                raise ValueError(f"tags must be non-blank and at most {MAX_TAG_LENGTH} characters")
        return tags

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {version} is not supported (this Cove reads {FORMAT_VERSION})"
            )
        return version

    @field_validator("created_at")
    @classmethod
    def _iso_timestamp(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("created_at must be an ISO 8601 timestamp") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DatasetMetadata:
        names = set(self.schema_.names)
        for record in self.mock:
            if set(record) != names:
                raise ValueError("every mock record must have exactly the schema's columns")
        try:
            check_frame(self.mock_frame(), self.schema_)
        except (DatasetError, TypeError, ValueError) as exc:
            raise ValueError(f"the mock sample does not fit the schema: {exc}") from None
        return self

    def mock_frame(self) -> pd.DataFrame:
        """The mock sample as a DataFrame with the schema's dtypes."""
        return _records_to_frame(self.mock, self.schema_)

    def to_json_bytes(self) -> bytes:
        """The canonical JSON document (keys sorted, compact, UTF-8) that gets published."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_json_bytes(cls, data: bytes) -> DatasetMetadata:
        """Parse a published document; InputError if it is not valid dataset metadata."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(
                "The dataset metadata is not valid UTF-8 JSON; check the CID it was fetched from."
            ) from None
        if not isinstance(obj, dict):
            raise InputError("The dataset metadata is not a JSON object; check the CID.")
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise InputError(
                f"The dataset metadata is invalid ({describe(exc)}); "
                "check the CID or republish the dataset."
            ) from None


def frame_to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records of a table: missing -> None, datetimes -> ISO 8601 UTC text."""
    records = []
    for row in df.astype(object).itertuples(index=False, name=None):
        records.append({str(name): _json_value(v) for name, v in zip(df.columns, row)})
    return records


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        utc = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return utc.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):  # numpy scalar -> Python scalar
        return value.item()
    return value


# The JSON types each kind's mock values may have (None aside).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "float": (int, float),
    "boolean": (bool,),
    "categorical": (str,),
    "datetime": (str,),
}


def _json_type_ok(value: Any, kind: str) -> bool:
    allowed = _JSON_TYPES[kind]
    # bool is a subclass of int in Python, but true is not a number in a mock record.
    return isinstance(value, allowed) and (kind == "boolean" or not isinstance(value, bool))


def _records_to_frame(records: list[dict[str, Any]], schema: DatasetSchema) -> pd.DataFrame:
    columns = {}
    for col in schema.columns:
        values = [r.get(col.name) for r in records]
        if not all(v is None or _json_type_ok(v, col.kind) for v in values):
            raise DatasetError(f"Column '{col.name}' has a mock value of the wrong JSON type.")
        if col.kind == "datetime":
            series = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
            columns[col.name] = series.astype(KIND_DTYPES["datetime"])
        elif col.kind == "float":
            columns[col.name] = pd.Series(
                [None if v is None else float(v) for v in values], dtype=KIND_DTYPES["float"]
            )
        else:
            columns[col.name] = pd.Series(values, dtype=KIND_DTYPES[col.kind])
    return pd.DataFrame(columns, index=pd.RangeIndex(len(records)))


def prepare_metadata(
    path: Path,
    name: str,
    schema: DatasetSchema,
    key: CommitmentKey,
    count_noise_micro: int,
    description: str = "",
    license: str = "proprietary",
    tags: list[str] | None = None,
    mock_rows: int = 20,
    seed: int = 0,
    *,
    created_at: str | None = None,
    progress: Progress | None = None,
) -> tuple[DatasetMetadata, TableScan]:
    """Scan the private file (scan.py: its kinds checked against the declared `schema`, its
    rows counted and committed to under the owner's `key`, in bounded memory), release its
    row count with noise σ = count_noise_micro / 1e6, and build a mock from the declared
    schema alone. `progress`, if given, is told the rows read so far.

    Returns the public metadata and the scan (whose true row count stays on this machine).
    """
    mock = frame_to_records(generate_mock(schema, rows=mock_rows, seed=seed))
    fields: dict[str, Any] = {
        "name": name,
        "description": description,
        "license": license,
        "tags": list(tags or []),
        "schema": schema,
        "row_count": RowCount(sigma=count_noise_micro / COUNT_NOISE_SCALE),
        "mock": mock,
    }
    if created_at is not None:
        fields["created_at"] = created_at
    # Everything but the row count and the commitment is known before the file is read: a
    # document that cannot be published is refused now, not after a long scan. The stand-ins
    # are as long as the real values can be (a 20-digit count, a 64-digit digest).
    check_metadata_size(_validated({**fields, "rows": 10**19, "commitment": _PLACEHOLDER_COMMITMENT}))
    scan = scan_table(Path(path), schema, key, progress=progress)
    metadata = _validated({**fields, "rows": noisy_count(scan.rows, count_noise_micro), "commitment": scan.commitment})
    check_metadata_size(metadata)
    return metadata, scan


_PLACEHOLDER_COMMITMENT = DatasetCommitment(digest="0x" + "0" * 64)


def _validated(fields: dict[str, Any]) -> DatasetMetadata:
    try:
        return DatasetMetadata.model_validate(fields)
    except ValidationError as exc:
        raise InputError(f"The dataset details are invalid ({describe(exc)}).") from None


def check_metadata_size(metadata: DatasetMetadata) -> None:
    """InputError, naming the cause, if the metadata document is above what one dataset may
    publish: the chain keeps one digest per dataset, which names a single raw block."""
    size = len(metadata.to_json_bytes())
    if size <= MAX_METADATA_BYTES:
        return
    columns = len(metadata.schema_.columns)
    # The bytes that grow with the columns (their schema entries and mock values) against the
    # owner's own words; the rest (commitment, row count, ...) is small and fixed.
    per_column = (len(canonical_json(metadata.schema_.model_dump(mode="json"))) + len(canonical_json(metadata.mock))) / columns
    words = len(canonical_json([metadata.name, metadata.description, metadata.license, metadata.tags]))
    limit = f"the {MAX_METADATA_BYTES:,}-byte limit for a dataset's metadata"
    if words >= per_column * columns:
        raise InputError(
            f"The dataset's description, name, license and tags take {words:,} bytes, so its public metadata "
            f"would take {size:,} bytes, above {limit}; shorten the description."
        )
    fitting = max(1, int((MAX_METADATA_BYTES - (size - per_column * columns)) // per_column))
    raise InputError(
        f"The dataset has {columns:,} columns; its public schema and {len(metadata.mock)}-row mock sample would take "
        f"{size:,} bytes, above {limit} (about {fitting:,} columns like these fit); publish fewer columns, "
        "or a smaller mock sample (--mock-rows)."
    )
