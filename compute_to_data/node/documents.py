"""`POST /cove/v1/documents`: where an owner hands its node the documents it is about to publish.

The owner's CLI runs on another machine than the node, and it offers a dataset's metadata
and allowlist/model-family documents before the transaction that names them (see
`exchange.documents`). The node takes only what can become public: a single JSON document
of one of those kinds, at most one raw block (256 KiB), and keeps it in its store, where
`PublishedContent` serves it once — and only if — the chain names its digest for a dataset
this node's runner serves. Offers are bounded in size and in total: unpublished offers
count against a quota and are dropped after a day.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from exchange.datasets import DatasetMetadata
from exchange.errors import CoveError
from exchange.storage import CHUNK_SIZE, LocalDirectoryStore, compute_cid

DOCUMENTS_PATH = "/cove/v1/documents"
MAX_DOCUMENT_BYTES = CHUNK_SIZE
DEFAULT_QUOTA_BYTES = 64 * 1024 * 1024
OFFER_LIFETIME_S = 24 * 3600
_LIST_KEYS = {"allowlist", "model_families"}


def _refusal(status: int, sentence: str) -> JSONResponse:
    return JSONResponse({"error": sentence}, status)


def document_kind(data: bytes) -> str | None:
    """"metadata" or "lists" when `data` is such a Cove document, else None."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(parsed, dict) and parsed and set(parsed) <= _LIST_KEYS:
        if all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in parsed.values()):
            return "lists"
        return None
    try:
        DatasetMetadata.from_json_bytes(data)
    except CoveError:
        return None
    return "metadata"


class Offers:
    """The unpublished offers a node holds: when each came, so that they can be bounded and expire."""

    def __init__(self, path: Path, store: LocalDirectoryStore, quota_bytes: int = DEFAULT_QUOTA_BYTES):
        self.path = path
        self.store = store
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._db()) as db:
            db.execute("CREATE TABLE IF NOT EXISTS offers (cid TEXT PRIMARY KEY, size INTEGER NOT NULL, at REAL NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def take(self, data: bytes) -> str:
        """Stores an offered document; returns its CID. Raises OverflowError above the quota."""
        cid = str(compute_cid(data))
        with self._lock, closing(self._db()) as db:
            db.execute("DELETE FROM offers WHERE at < ?", (time.time() - OFFER_LIFETIME_S,))
            if db.execute("SELECT 1 FROM offers WHERE cid = ?", (cid,)).fetchone() is None:
                held = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM offers").fetchone()[0])
                if held + len(data) > self.quota_bytes:
                    raise OverflowError
            self.store.put(data)
            db.execute("INSERT OR REPLACE INTO offers VALUES (?, ?, ?)", (cid, len(data), time.time()))
        return cid


def documents_routes(offers: Offers) -> list[BaseRoute]:
    async def offer(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_DOCUMENT_BYTES):
            return _refusal(413, f"A document is at most {MAX_DOCUMENT_BYTES} bytes.")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    return _refusal(413, f"A document is at most {MAX_DOCUMENT_BYTES} bytes.")
        except ClientDisconnect:
            return _refusal(400, "The request body ended early.")
        data = bytes(body)
        if document_kind(data) is None:
            return _refusal(422, "This node takes only Cove metadata and allowlist documents (JSON).")
        try:
            cid = await run_in_threadpool(offers.take, data)
        except OverflowError:
            return _refusal(507, "This node holds as many unpublished documents as it takes; try again later.")
        return JSONResponse({"cid": cid}, 201)

    return [Route(DOCUMENTS_PATH, offer, methods=["POST"])]
