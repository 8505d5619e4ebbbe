"""Content-addressed storage for Cove, keyed by the CIDs `ipfs add --cid-version 1` prints."""

from exchange.storage.canonical import canonical_json
from exchange.storage.cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    MAX_LINKS_PER_NODE,
    Cid,
    build_dag,
    compute_cid,
)
from exchange.storage.store import (
    ContentStore,
    LocalDirectoryStore,
    as_cid,
    get_json,
    put_json,
)

__all__ = [
    "CHUNK_SIZE",
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "MAX_LINKS_PER_NODE",
    "Cid",
    "ContentStore",
    "LocalDirectoryStore",
    "as_cid",
    "build_dag",
    "canonical_json",
    "compute_cid",
    "get_json",
    "put_json",
]
