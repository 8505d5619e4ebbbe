"""A local SQLite cache of Cove's contract events.

It answers "which datasets, which policies, which purchases" without a server of our
own. Each sync resumes from the last indexed block and commits a whole block range at
once, so an interrupted sync leaves the cache as it was. It remembers the hash of the
last block it read: if the chain no longer has that block (a local chain was reset under
the same contract address, or a reorg), the cache starts over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3.contract import Contract

from exchange.chain.deployment import Deployment
from exchange.chain.session import ChainSession

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, datatoken TEXT NOT NULL,
    metadata_digest TEXT NOT NULL, commitment TEXT NOT NULL, rows INTEGER NOT NULL,
    runner TEXT NOT NULL, controller TEXT, block INTEGER NOT NULL, tx TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    dataset_id INTEGER NOT NULL, version INTEGER NOT NULL, policy TEXT NOT NULL,
    lists_digest TEXT NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (dataset_id, version));
CREATE TABLE IF NOT EXISTS purchases (
    tx TEXT NOT NULL, log_index INTEGER NOT NULL, dataset_id INTEGER NOT NULL,
    buyer TEXT NOT NULL, credits INTEGER NOT NULL, payment_token TEXT NOT NULL,
    cost TEXT NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (tx, log_index));
"""
_BATCH_BLOCKS = 5_000
_EVENTS = ("DatasetPublished", "PolicyUpdated", "RunnerChanged", "PolicyControllerChanged", "CreditsPurchased", "Transfer")
_ZERO_ADDRESS = "0x" + "00" * 20


def _hex(value: bytes) -> str:
    return HexBytes(value).to_0x_hex()


class EventIndex:
    """The event cache of one Cove deployment."""

    def __init__(self, directory: Path, session: ChainSession, deployment: Deployment, cove: Contract):
        self.session = session
        self.deployment = deployment
        self.cove = cove
        self.path = directory / f"{deployment.chain_id}-{deployment.cove.lower()}.sqlite"
        self._topics = {
            _hex(getattr(cove.events, name)().topic): getattr(cove.events, name)() for name in _EVENTS
        }

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        return db

    def sync(self, confirmations: int = 0) -> int:
        """Indexes new blocks up to the head (minus `confirmations`); returns the last indexed block."""
        w3 = self.session.w3
        chain_head = int(w3.eth.block_number)
        head = chain_head - confirmations
        with closing(self._connect()) as db:
            last = int(self._get(db, "last_block") or self.deployment.block - 1)
            if self._get(db, "last_hash") not in (None, self._block_hash(last, chain_head)):
                # The block we stopped at is gone or different (a reset or reorged chain).
                self._reset(db)
                last = self.deployment.block - 1
            while last < head:
                end = min(head, last + _BATCH_BLOCKS)
                logs = w3.eth.get_logs({"address": self.cove.address, "fromBlock": last + 1, "toBlock": end})
                with db:  # one transaction per batch: all of it or none of it
                    for log in logs:
                        self._apply(db, log)
                    self._set(db, "last_block", str(end))
                    self._set(db, "last_hash", self._block_hash(end, chain_head))
                last = end
            return last

    def _block_hash(self, number: int, chain_head: int) -> str | None:
        if number > chain_head:
            return None
        return _hex(self.session.w3.eth.get_block(number)["hash"])

    def _apply(self, db: sqlite3.Connection, log: Any) -> None:
        event = self._topics.get(_hex(log["topics"][0]))
        if event is None:
            return
        decoded = event.process_log(log)
        name, args, block = decoded["event"], decoded["args"], int(log["blockNumber"])
        if name == "DatasetPublished":
            db.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?,?,?,?,?,?,?,NULL,?,?)",
                (args["datasetId"], args["owner"], args["datatoken"], _hex(args["metadataDigest"]),
                 _hex(args["commitment"]), args["rows"], args["runner"], block, _hex(log["transactionHash"])),
            )  # fmt: skip
        elif name == "PolicyUpdated":
            db.execute(
                "INSERT OR REPLACE INTO policies VALUES (?,?,?,?,?)",
                (args["datasetId"], args["version"], json.dumps(_jsonable(args["policy"])),
                 _hex(args["listsDigest"]), block),
            )  # fmt: skip
        elif name == "RunnerChanged":
            db.execute("UPDATE datasets SET runner = ? WHERE id = ?", (args["runner"], args["datasetId"]))
        elif name == "PolicyControllerChanged":
            controller = None if args["controller"] == _ZERO_ADDRESS else args["controller"]
            db.execute("UPDATE datasets SET controller = ? WHERE id = ?", (controller, args["datasetId"]))
        elif name == "Transfer" and args["from"] != _ZERO_ADDRESS:
            db.execute("UPDATE datasets SET owner = ? WHERE id = ?", (args["to"], args["tokenId"]))
        elif name == "CreditsPurchased":
            db.execute(
                "INSERT OR REPLACE INTO purchases VALUES (?,?,?,?,?,?,?,?)",
                (_hex(log["transactionHash"]), log["logIndex"], args["datasetId"], args["buyer"],
                 args["credits"], args["paymentToken"], str(args["cost"]), block),
            )  # fmt: skip

    def datasets(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            return [dict(r) for r in db.execute("SELECT * FROM datasets ORDER BY id")]

    def dataset(self, dataset_id: int) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            return dict(row) if row else None

    def latest_policy(self, dataset_id: int) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT * FROM policies WHERE dataset_id = ? ORDER BY version DESC LIMIT 1", (dataset_id,)
            ).fetchone()
        if row is None:
            return None
        return {**dict(row), "policy": json.loads(row["policy"])}

    def purchases(self, buyer: str | None = None) -> list[dict[str, Any]]:
        query, params = "SELECT * FROM purchases", ()
        if buyer is not None:
            query, params = query + " WHERE buyer = ?", (buyer,)
        with closing(self._connect()) as db:
            return [dict(r) for r in db.execute(query + " ORDER BY block, log_index", params)]

    @staticmethod
    def _get(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM sync WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO sync VALUES (?, ?)", (key, value))

    @staticmethod
    def _reset(db: sqlite3.Connection) -> None:
        with db:
            for table in ("sync", "datasets", "policies", "purchases"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
