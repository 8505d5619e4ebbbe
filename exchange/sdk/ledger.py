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


def _logs(client: CoveClient, name: str, **filters: Any) -> list[dict[str, Any]]:
    event = getattr(client.jobs.events, name)
    logs = event.get_logs(from_block=client.deployment.block, argument_filters=filters or None)
    return [dict(entry["args"]) for entry in logs]


def requested_events(client: CoveClient, dataset_id: int | None = None) -> dict[int, dict[str, Any]]:
    """JobRequested args by job id (of one dataset, or all), oldest first."""
    filters = {"datasetId": dataset_id} if dataset_id is not None else {}
    return {int(args["jobId"]): args for args in _logs(client, "JobRequested", **filters)}


def accepted_jobs(client: CoveClient) -> set[int]:
    return {int(args["jobId"]) for args in _logs(client, "JobAccepted")}


def fail_reasons(client: CoveClient) -> dict[int, str]:
    return {int(args["jobId"]): str(args["reason"]) for args in _logs(client, "JobFailed")}


def fail_reason(client: CoveClient, job_id: int) -> str | None:
    found = _logs(client, "JobFailed", jobId=job_id)
    return str(found[-1]["reason"]) if found else None


def job_epsilon(curve: Any, delta: float) -> float:
    """A job's ε at δ from its on-chain curve, as the ledger charges it (millionths, rounded up)."""
    return epsilon_fixed(tuple(int(v) for v in curve), delta) / EPSILON_SCALE


def charged(info: JobInfo, accepted: set[int]) -> bool:
    """Whether the job's curve is on the dataset's ledger."""
    if info.status == "failed":
        return False
    if info.status == "refunded":
        return info.job_id in accepted
    return info.status in ("requested", "accepted", "completed")


def jobs_frame(client: CoveClient, infos: list[JobInfo], deltas: dict[int, float]) -> pd.DataFrame:
    """One row per job: id, dataset, status, buyer, runner, ε, deadline, the runner's fail reason."""
    events = requested_events(client) if infos else {}
    reasons = fail_reasons(client) if any(i.status == "failed" for i in infos) else {}
    rows = []
    for info in infos:
        event = events.get(info.job_id)
        delta = deltas.get(info.dataset_id)
        rows.append({
            "job": info.job_id,
            "dataset": info.dataset_id,
            "status": info.status,
            "buyer": info.consumer,
            "runner": info.runner,
            "epsilon": job_epsilon(event["rdpCurve"], delta) if event is not None and delta else None,
            "deadline": datetime.fromtimestamp(info.deadline, UTC),
            "reason": reasons.get(info.job_id),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def dataset_jobs(client: CoveClient, dataset_id: int) -> list[JobInfo]:
    return [job_info(client, job_id) for job_id in requested_events(client, dataset_id)]


def budget_history(client: CoveClient, dataset_id: int, delta: float) -> pd.DataFrame:
    """The dataset's charged jobs in order, with each one's ε and the composed ε after it.

    Columns: job, status, epsilon, composed_epsilon. Composition is RDP: the curves add up
    order by order (`accounting.compose`) and ε is read off the sum at the policy's δ, as
    the on-chain ledger does.
    """
    events = requested_events(client, dataset_id)
    accepted = accepted_jobs(client) if events else set()
    rows, curves = [], []
    for job_id, event in events.items():
        info = job_info(client, job_id)
        if not charged(info, accepted):
            continue
        curve = tuple(int(v) for v in event["rdpCurve"])
        curves.append(curve)
        rows.append({
            "job": job_id,
            "status": info.status,
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
