"""A local SQLite cache of the events of one Cove deployment (the hub and its ComputeJobs).

It answers "which datasets, which policies, which purchases, which jobs, which endpoints"
without a server of our own. Each sync resumes from the last indexed block and commits a
whole block range at once, so an interrupted sync leaves the cache as it was. It remembers
the hash of the last block it read: if the chain no longer has that block (a local chain
was reset under the same contract address, or a reorg), the cache starts over. Logs are
read in bounded block ranges (public RPCs cap eth_getLogs).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3.contract import Contract

from exchange.chain.deployment import Deployment
from exchange.chain.logs import LogReader
from exchange.chain.session import ChainSession

# Part of the file name: a cache in an older layout is left alone and rebuilt from the chain.
INDEX_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, datatoken TEXT NOT NULL,
    metadata_digest TEXT NOT NULL, commitment TEXT NOT NULL, rows INTEGER NOT NULL,
    count_noise INTEGER NOT NULL, runner TEXT NOT NULL, controller TEXT, block INTEGER NOT NULL,
    tx TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    dataset_id INTEGER NOT NULL, version INTEGER NOT NULL, policy TEXT NOT NULL,
    lists_digest TEXT NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (dataset_id, version));
CREATE TABLE IF NOT EXISTS purchases (
    tx TEXT NOT NULL, log_index INTEGER NOT NULL, dataset_id INTEGER NOT NULL,
    buyer TEXT NOT NULL, credits INTEGER NOT NULL, payment_token TEXT NOT NULL,
    cost TEXT NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (tx, log_index));
CREATE TABLE IF NOT EXISTS endpoints (runner TEXT PRIMARY KEY, url TEXT NOT NULL, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, consumer TEXT NOT NULL,
    request TEXT NOT NULL, status TEXT NOT NULL, runner TEXT, completion TEXT, reason TEXT,
    charge_kept INTEGER, block INTEGER NOT NULL, tx TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_consumer ON jobs (consumer);
CREATE INDEX IF NOT EXISTS jobs_by_runner ON jobs (runner);
"""
_TABLES = ("sync", "datasets", "policies", "purchases", "endpoints", "jobs")
_HUB_EVENTS = (
    "DatasetPublished", "PolicyUpdated", "RunnerChanged", "PolicyControllerChanged", "CreditsPurchased",
    "Transfer", "EndpointSet",
)  # fmt: skip
_JOB_EVENTS = ("JobRequested", "JobAccepted", "JobCompleted", "JobFailed", "JobRefunded")
_ZERO_ADDRESS = "0x" + "00" * 20


def _hex(value: bytes) -> str:
    return HexBytes(value).to_0x_hex()


class EventIndex:
    """The event cache of one Cove deployment."""

    def __init__(
        self, directory: Path, session: ChainSession, deployment: Deployment, cove: Contract, jobs: Contract,
        log_range: int | None = None,
    ):  # fmt: skip
        self.session = session
        self.deployment = deployment
        self.path = directory / f"{deployment.chain_id}-{deployment.cove.lower()}-v{INDEX_VERSION}.sqlite"
        self._logs = LogReader(session.w3, log_range)
        self._addresses = [cove.address, jobs.address]
        self._events = {
            (contract.address.lower(), _hex(getattr(contract.events, name)().topic)): getattr(contract.events, name)()
            for contract, names in ((cove, _HUB_EVENTS), (jobs, _JOB_EVENTS))
            for name in names
        }
        self._db: sqlite3.Connection | None = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per index object, opened on first use.
        if self._db is None:
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.executescript(_SCHEMA)
            self._db = db
        yield self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def sync(self, confirmations: int = 0) -> int:
        """Indexes new blocks up to the head (minus `confirmations`); returns the last indexed block."""
        w3 = self.session.w3
        chain_head = int(w3.eth.block_number)
        head = chain_head - confirmations
        with self._connect() as db:
            last = int(self._get(db, "last_block") or self.deployment.block - 1)
            if self._get(db, "last_hash") not in (None, self._block_hash(last, chain_head)):
                # The block we stopped at is gone or different (a reset or reorged chain).
                self._reset(db)
                last = self.deployment.block - 1
            for start, end, logs in self._logs.chunks({"address": self._addresses}, last + 1, head):
                with db:  # one transaction per range: all of it or none of it
                    for log in logs:
                        self._apply(db, log)
                    self._set(db, "last_block", str(end))
                    self._set(db, "last_hash", self._block_hash(end, chain_head))
                last = end
            return last

    def _block_hash(self, number: int, chain_head: int) -> str | None:
        if number > chain_head or number < 0:
            return None
        return _hex(self.session.w3.eth.get_block(number)["hash"])

    def _apply(self, db: sqlite3.Connection, log: Any) -> None:
        event = self._events.get((str(log["address"]).lower(), _hex(log["topics"][0])))
        if event is None:
            return
        decoded = event.process_log(log)
        name, args, block = decoded["event"], decoded["args"], int(log["blockNumber"])
        tx = _hex(log["transactionHash"])
        if name == "DatasetPublished":
            db.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?,?,?,?,?,?,?,?,NULL,?,?)",
                (args["datasetId"], args["owner"], args["datatoken"], _hex(args["metadataDigest"]),
                 _hex(args["commitment"]), args["rows"], args["countNoise"], args["runner"], block, tx),
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
                (tx, log["logIndex"], args["datasetId"], args["buyer"],
                 args["credits"], args["paymentToken"], str(args["cost"]), block),
            )  # fmt: skip
        elif name == "EndpointSet":
            db.execute("INSERT OR REPLACE INTO endpoints VALUES (?,?,?)", (args["runner"].lower(), args["url"], block))
        elif name == "JobRequested":
            request = _jsonable({k: args[k] for k in args if k not in ("jobId", "datasetId", "consumer")})
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,'requested',NULL,NULL,NULL,NULL,?,?)",
                (args["jobId"], args["datasetId"], args["consumer"].lower(), json.dumps(request), block, tx),
            )
        elif name == "JobAccepted":
            db.execute("UPDATE jobs SET status = 'accepted', runner = ? WHERE id = ?", (args["runner"].lower(), args["jobId"]))
        elif name == "JobCompleted":
            completion = json.dumps(_jsonable({k: args[k] for k in args if k != "jobId"}))
            db.execute("UPDATE jobs SET status = 'completed', completion = ? WHERE id = ?", (completion, args["jobId"]))
        elif name == "JobFailed":
            db.execute(
                "UPDATE jobs SET status = 'failed', reason = ?, charge_kept = ? WHERE id = ?",
                (args["reason"], int(args["chargeKept"]), args["jobId"]),
            )
        elif name == "JobRefunded":
            db.execute("UPDATE jobs SET status = 'refunded' WHERE id = ?", (args["jobId"],))

    # ------------------------------------------------------------------ queries

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [dict(r) for r in db.execute(query, params)]

    def datasets(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM datasets ORDER BY id")

    def dataset(self, dataset_id: int) -> dict[str, Any] | None:
        found = self._rows("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return found[0] if found else None

    def datasets_served_by(self, runner: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM datasets WHERE lower(runner) = ? ORDER BY id", (runner.lower(),))

    def latest_policy(self, dataset_id: int) -> dict[str, Any] | None:
        found = self._rows(
            "SELECT * FROM policies WHERE dataset_id = ? ORDER BY version DESC LIMIT 1", (dataset_id,)
        )
        return {**found[0], "policy": json.loads(found[0]["policy"])} if found else None

    def policies(self, dataset_id: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM policies WHERE dataset_id = ? ORDER BY version", (dataset_id,))
        return [{**row, "policy": json.loads(row["policy"])} for row in rows]

    def purchases(self, buyer: str | None = None) -> list[dict[str, Any]]:
        query, params = "SELECT * FROM purchases", ()
        if buyer is not None:
            query, params = query + " WHERE buyer = ?", (buyer,)
        return self._rows(query + " ORDER BY block, log_index", params)

    def endpoint(self, runner: str) -> str | None:
        found = self._rows("SELECT url FROM endpoints WHERE runner = ?", (runner.lower(),))
        return found[0]["url"] or None if found else None

    def jobs(self, *, consumer: str | None = None, runner: str | None = None, dataset_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Jobs, oldest first, with their request and completion events decoded."""
        clauses, params = [], []
        if consumer is not None:
            clauses.append("consumer = ?")
            params.append(consumer.lower())
        if runner is not None:
            clauses.append("runner = ?")
            params.append(runner.lower())
        if dataset_ids is not None:
            clauses.append(f"dataset_id IN ({','.join('?' * len(dataset_ids))})")
            params.extend(dataset_ids)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT * FROM jobs{where} ORDER BY id", tuple(params))  # noqa: S608 - fixed clauses
        return [_job_row(row) for row in rows]

    def job(self, job_id: int) -> dict[str, Any] | None:
        found = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_row(found[0]) if found else None

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
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def _job_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "request": json.loads(row["request"]),
        "completion": json.loads(row["completion"]) if row["completion"] else None,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
