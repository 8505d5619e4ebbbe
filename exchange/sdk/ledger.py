"""Chain reads behind the SDK's job tables and budget plots (ComputeJobs' events and views).

A job's privacy cost is fixed at request time: its RDP curve is in its `JobRequested`
event. A job charges the dataset's ledger unless it failed (the runner refunds it and its
curve leaves the ledger) or was refunded before any runner accepted it; a job refunded
after it was accepted stays charged (only its runner can say it released nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from exchange.client import CoveClient
from exchange.jobs import JobInfo, job_info
from exchange.ml.accounting import compose, epsilon_fixed
from exchange.units import CREDIT, EPSILON_SCALE

JOB_COLUMNS = ["job", "dataset", "status", "buyer", "runner", "epsilon", "deadline", "reason"]


def _indexed_jobs(client: CoveClient, dataset_id: int | None = None) -> list[dict[str, Any]]:
    client.index.sync()
    return client.index.jobs(dataset_ids=None if dataset_id is None else [dataset_id])


def fail_reason(client: CoveClient, job_id: int) -> str | None:
    client.index.sync()
    row = client.index.job(job_id)
    return None if row is None else row["reason"]


def job_epsilon(curve: Any, delta: float) -> float:
    """A job's ε at δ from its on-chain curve, as the ledger charges it (millionths, rounded up)."""
    return epsilon_fixed(tuple(int(v) for v in curve), delta) / EPSILON_SCALE


def charged(status: str, accepted: bool) -> bool:
    """Whether a job's curve is on the dataset's ledger."""
    if status == "failed":
        return False
    if status == "refunded":
        return accepted
    return status in ("requested", "accepted", "completed")


def jobs_frame(client: CoveClient, infos: list[JobInfo], deltas: dict[int, float]) -> pd.DataFrame:
    """One row per job: id, dataset, status, buyer, runner, ε, deadline, the runner's fail reason."""
    rows_by_id = {row["id"]: row for row in _indexed_jobs(client)} if infos else {}
    rows = []
    for info in infos:
        row = rows_by_id.get(info.job_id)
        delta = deltas.get(info.dataset_id)
        rows.append({
            "job": info.job_id,
            "dataset": info.dataset_id,
            "status": info.status,
            "buyer": info.consumer,
            "runner": info.runner,
            "epsilon": job_epsilon(row["request"]["rdpCurve"], delta) if row is not None and delta else None,
            "deadline": datetime.fromtimestamp(info.deadline, UTC),
            "reason": row["reason"] if row is not None else None,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def dataset_jobs(client: CoveClient, dataset_id: int) -> list[JobInfo]:
    return [job_info(client, row["id"]) for row in _indexed_jobs(client, dataset_id)]


def budget_history(client: CoveClient, dataset_id: int, delta: float) -> pd.DataFrame:
    """The dataset's charged jobs in order, with each one's ε and the composed ε after it.

    Columns: job, status, epsilon, composed_epsilon. Composition is RDP: the curves add up
    order by order (`accounting.compose`) and ε is read off the sum at the policy's δ, as
    the on-chain ledger does.
    """
    rows, curves = [], []
    for row in _indexed_jobs(client, dataset_id):
        if not charged(row["status"], row["runner"] is not None):
            continue
        curve = tuple(int(v) for v in row["request"]["rdpCurve"])
        curves.append(curve)
        rows.append({
            "job": row["id"],
            "status": row["status"],
            "epsilon": epsilon_fixed(curve, delta) / EPSILON_SCALE,
            "composed_epsilon": epsilon_fixed(compose(curves), delta) / EPSILON_SCALE,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["job", "status", "epsilon", "composed_epsilon"])


def composed_epsilon(client: CoveClient, dataset_id: int) -> float:
    """The dataset's ε spent so far, as the chain's ledger holds it."""
    return int(client.session.call(client.jobs.functions.composedEpsilon(dataset_id))) / EPSILON_SCALE


def credits_of(client: CoveClient, datatoken: str, holder: str) -> int:
    """Whole job credits of a dataset held by `holder`."""
    return int(client.session.call(client.datatoken(datatoken).functions.balanceOf(holder))) // CREDIT
