"""A local SQLite cache of the events of one Cove deployment (the hub and its ComputeJobs).

It answers "which datasets, which policies, which purchases, which jobs, which endpoints"
without a server of our own. Each sync resumes from the last indexed block and commits a
whole block range at once, so an interrupted sync leaves the cache as it was. It remembers
the hash of the last block it read: if the chain no longer has that block (a local chain
was reset under the same contract address, or a reorg), the cache starts over. Logs are
read in bounded block ranges (public RPCs cap eth_getLogs) and decoded with eth_abi
directly (what web3's `process_log` returns, at a quarter of its cost: a first sync of a
busy hub reads tens of thousands of logs).

Listings are one query each: the datasets joined with their latest policy and a summary of
their (validated) metadata, a buyer's jobs by the indexed consumer column. Two caches ride
along, keyed by what they are derived from, so they are never stale and survive a reset:
metadata summaries by the document's digest, RDP curves by a job's DP parameters.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from exchange.chain.logs import LogReader

if TYPE_CHECKING:
    from web3.contract import Contract

    from exchange.chain.deployment import Deployment
    from exchange.chain.session import ChainSession

# Part of the file name: a cache in an older layout is left alone and rebuilt from the chain.
# 3: jobs.deadline, jobs by dataset, the metadata and curve caches.
INDEX_VERSION = 3

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
    charge_kept INTEGER, block INTEGER NOT NULL, tx TEXT NOT NULL, deadline INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_consumer ON jobs (consumer);
CREATE INDEX IF NOT EXISTS jobs_by_runner ON jobs (runner);
CREATE INDEX IF NOT EXISTS jobs_by_dataset ON jobs (dataset_id);
CREATE TABLE IF NOT EXISTS metadata (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, tags TEXT NOT NULL, columns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS curves (dp TEXT PRIMARY KEY, curve TEXT NOT NULL);
"""
# What a reset empties: the chain's events. `metadata` and `curves` are keyed by content.
_TABLES = ("sync", "datasets", "policies", "purchases", "endpoints", "jobs")
_HUB_EVENTS = (
    "DatasetPublished", "PolicyUpdated", "RunnerChanged", "PolicyControllerChanged", "CreditsPurchased",
    "Transfer", "EndpointSet",
)  # fmt: skip
_JOB_EVENTS = ("JobRequested", "JobAccepted", "JobCompleted", "JobFailed", "JobRefunded")
_ZERO_ADDRESS = "0x" + "00" * 20


def _hex(value: bytes) -> str:
    return HexBytes(value).to_0x_hex()


@lru_cache(maxsize=4096)
def checksummed(address: str) -> str:
    """EIP-55 form of `address`, memoised: a hub has few distinct accounts and many rows."""
    return to_checksum_address(address)


_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")


def _abi_type(entry: Mapping[str, Any]) -> str:
    """The canonical type of an ABI input: tuples spelled out, e.g. "(address,uint96)[]"."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + kind[len("tuple"):]
    return kind


def _named(entry: Mapping[str, Any], kind: str, value: Any) -> Any:
    """A decoded value as web3 returns it: structs as dicts by component name, checksummed addresses."""
    array = _ARRAY.match(kind)
    if array is not None:
        return [_named(entry, array.group(1), v) for v in value]
    if kind.startswith("("):
        return {c["name"]: _named(c, _abi_type(c), v) for c, v in zip(entry["components"], value, strict=True)}
    if kind == "address":
        return checksummed(value)
    return value


def _topic_value(entry: Mapping[str, Any], kind: str, topic: bytes) -> Any:
    # An indexed string, bytes, array or struct is stored as its keccak hash: the topic itself.
    if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
        return topic
    return _named(entry, kind, abi_decode([kind], topic)[0])


class _EventDecoder:
    """One event's logs decoded with eth_abi: the arguments `process_log` would give, indexed
    ones first, in ABI order (the index's JSON keeps that order)."""

    def __init__(self, abi: Mapping[str, Any]):
        self.name = str(abi["name"])
        self.indexed = [(i, _abi_type(i)) for i in abi["inputs"] if i.get("indexed")]
        self.plain = [(i, _abi_type(i)) for i in abi["inputs"] if not i.get("indexed")]
        self._plain_types = [kind for _, kind in self.plain]

    def args(self, log: Mapping[str, Any]) -> dict[str, Any]:
        topics = log["topics"][1:]
        if len(topics) != len(self.indexed):
            raise ValueError(f"a {self.name} log with {len(topics)} indexed topics, not {len(self.indexed)}")
        args = {
            entry["name"]: _topic_value(entry, kind, bytes(topic))
            for (entry, kind), topic in zip(self.indexed, topics, strict=True)
        }
        values = abi_decode(self._plain_types, bytes(log["data"]))
        args.update((entry["name"], _named(entry, kind, v)) for (entry, kind), v in zip(self.plain, values, strict=True))
        return args


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
            (contract.address.lower(), _hex(event.topic)): _EventDecoder(event.abi)
            for contract, names in ((cove, _HUB_EVENTS), (jobs, _JOB_EVENTS))
            for event in (getattr(contract.events, name)() for name in names)
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
        if not log["topics"]:
            return
        event = self._events.get((str(log["address"]).lower(), _hex(log["topics"][0])))
        if event is None:
            return
        name, args, block = event.name, event.args(log), int(log["blockNumber"])
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
                "INSERT OR REPLACE INTO jobs (id, dataset_id, consumer, request, status, block, tx, deadline) "
                "VALUES (?,?,?,?,'requested',?,?,?)",
                (args["jobId"], args["datasetId"], args["consumer"].lower(), json.dumps(request), block, tx,
                 args["deadline"]),
            )  # fmt: skip
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

    # ------------------------------------------------------------------ listings (one query each)

    def dataset_listing(self) -> list[dict[str, Any]]:
        """Every dataset, by id, with its latest policy (`policy`: PolicyUpdated's struct, None
        before the first; `version`: 0 then) and its metadata summary (`name`, `tags`,
        `columns`; None until `remember_metadata` recorded the document)."""
        rows = self._rows(
            "SELECT d.id, d.owner, d.runner, d.rows, d.metadata_digest, p.policy, p.version, "
            "m.name, m.tags, m.columns FROM datasets d "
            "LEFT JOIN policies p ON p.dataset_id = d.id "
            "AND p.version = (SELECT MAX(version) FROM policies WHERE dataset_id = d.id) "
            "LEFT JOIN metadata m ON m.digest = d.metadata_digest ORDER BY d.id"
        )
        for row in rows:
            row["policy"] = json.loads(row["policy"]) if row["policy"] is not None else None
            row["version"] = row["version"] or 0
            row["tags"] = json.loads(row["tags"]) if row["tags"] is not None else None
        return rows

    def remember_metadata(self, summaries: Iterable[tuple[str, str, Sequence[str], int]]) -> None:
        """Records (digest, name, tags, number of columns) of validated metadata documents."""
        with self._connect() as db, db:
            db.executemany(
                "INSERT OR REPLACE INTO metadata VALUES (?,?,?,?)",
                [(digest.lower(), name, json.dumps(list(tags)), columns) for digest, name, tags, columns in summaries],
            )

    def job_listing(self, consumer: str | None = None) -> list[dict[str, Any]]:
        """Jobs (or `consumer`'s, by the indexed column), oldest first: id, dataset_id,
        consumer, status, runner, deadline and the decoded completion (None before it)."""
        query = "SELECT id, dataset_id, consumer, status, runner, deadline, completion FROM jobs"
        params: tuple[Any, ...] = ()
        if consumer is not None:
            query, params = query + " WHERE consumer = ?", (consumer.lower(),)
        rows = self._rows(query + " ORDER BY id", params)
        for row in rows:
            row["completion"] = json.loads(row["completion"]) if row["completion"] else None
        return rows

    def curves(self, keys: Iterable[str]) -> dict[str, tuple[int, ...]]:
        """Cached fixed-point RDP curves by DP-parameter key (see `remember_curves`)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, tuple[int, ...]] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._rows(f"SELECT dp, curve FROM curves WHERE dp IN ({marks})", tuple(chunk))
            found.update((row["dp"], tuple(json.loads(row["curve"]))) for row in rows)
        return found

    def remember_curves(self, curves: Mapping[str, Sequence[int]]) -> None:
        """Records curves computed from DP parameters: a pure function of its key, so never stale."""
        with self._connect() as db, db:
            db.executemany("INSERT OR REPLACE INTO curves VALUES (?,?)", [(k, json.dumps(list(v))) for k, v in curves.items()])

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
