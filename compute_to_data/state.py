"""The runner's durable job state (SQLite), so a killed runner resumes without losing,
repeating or wrongly charging any job.

Each job moves forward only: seen → accepted → training → trained → completed, or →
failed. `training` is recorded before the sandbox may read a private row: a job that fails
from there on keeps its privacy charge (its failure may depend on the rows).
Every transition is one committed SQLite transaction, written *before* the on-chain
action it prepares is considered done, and reconciled with the chain's own job status
on restart (the chain is the authority on who accepted and what completed).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    stage TEXT NOT NULL,
    weights_cid TEXT,
    provenance_cid TEXT,
    outputs TEXT,
    reason TEXT,
    updated_at REAL NOT NULL
);
"""


class Stage(StrEnum):
    SEEN = "seen"  # requested on-chain, not yet claimed by us
    ACCEPTED = "accepted"  # we won `accept`; no private row read yet
    TRAINING = "training"  # the sandbox was started: private rows may have been read
    TRAINED = "trained"  # weights and provenance stored; `complete` not yet confirmed
    COMPLETED = "completed"
    FAILED = "failed"  # refunded on-chain (or taken by another worker: reason says)


_FORWARD = {
    Stage.SEEN: {Stage.ACCEPTED, Stage.FAILED},
    Stage.ACCEPTED: {Stage.TRAINING, Stage.FAILED},
    Stage.TRAINING: {Stage.TRAINED, Stage.FAILED},
    Stage.TRAINED: {Stage.COMPLETED, Stage.FAILED},
    Stage.COMPLETED: set(),
    Stage.FAILED: set(),
}


@dataclass(frozen=True)
class JobRecord:
    job_id: int
    dataset_id: int
    stage: Stage
    weights_cid: str | None
    provenance_cid: str | None
    outputs: str | None  # JSON of what `complete` needs, kept so a restart can resend it
    reason: str | None


class RunnerState:
    """Job stages of one runner worker, in one SQLite file."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._db()) as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def see(self, job_id: int, dataset_id: int) -> bool:
        """Records a newly requested job; False if it was already known."""
        with closing(self._db()) as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, dataset_id, stage, updated_at) VALUES (?, ?, ?, ?)",
                (job_id, dataset_id, Stage.SEEN, time.time()),
            ).rowcount
        return inserted == 1

    def get(self, job_id: int) -> JobRecord | None:
        with closing(self._db()) as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def in_stage(self, *stages: Stage) -> list[JobRecord]:
        marks = ",".join("?" * len(stages))
        with closing(self._db()) as db:
            rows = db.execute(f"SELECT * FROM jobs WHERE stage IN ({marks}) ORDER BY job_id", stages).fetchall()  # noqa: S608
        return [_record(r) for r in rows]

    def advance(self, job_id: int, stage: Stage, **fields: str | None) -> None:
        """Moves a job forward; refuses to move it backwards or sideways."""
        with closing(self._db()) as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT stage FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or stage not in _FORWARD[Stage(row["stage"])]:
                db.execute("ROLLBACK")
                current = None if row is None else row["stage"]
                raise ValueError(f"job {job_id} cannot move from {current} to {stage}")
            columns = {"stage": str(stage), "updated_at": time.time(), **fields}
            assignments = ", ".join(f"{name} = ?" for name in columns)
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*columns.values(), job_id))  # noqa: S608
            db.execute("COMMIT")


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=int(row["job_id"]),
        dataset_id=int(row["dataset_id"]),
        stage=Stage(row["stage"]),
        weights_cid=row["weights_cid"],
        provenance_cid=row["provenance_cid"],
        outputs=row["outputs"],
        reason=row["reason"],
    )
