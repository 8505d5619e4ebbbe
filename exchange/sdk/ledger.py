"""Chain reads behind the SDK's job tables and budget plots (ComputeJobs' events and views).

Publishing charges the release of the row count (its noise σ is in `DatasetPublished`).
A job's privacy cost is fixed at request time by its DP parameters (its `JobRequested`
event). A job charges the dataset's ledger unless it failed before its runner read any row
(the runner says so in `JobFailed`: a failure after reading keeps the charge) or was
refunded before any runner accepted it; a job refunded after it was accepted stays charged
(only its runner can say it released nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from exchange.client import CoveClient
from exchange.jobs import JobInfo, RequestedJob, honest_curves, info_from_index
from exchange.datasets.dp_count import COUNT_NOISE_SCALE
from exchange.ml.accounting import NOISE_SCALE, SAMPLE_RATE_SCALE, compose, count_release_curve, epsilon_fixed
from exchange.units import CREDIT, DELTA_SCALE, EPSILON_SCALE

JOB_COLUMNS = ["job", "dataset", "status", "buyer", "runner", "epsilon", "deadline", "reason"]


def fail_reason(client: CoveClient, job_id: int) -> str | None:
    client.index.sync()
    row = client.index.job(job_id)
    return None if row is None else row["reason"]


def job_epsilon(curve: Any, delta: float) -> float:
    """A job's ε at δ from its on-chain curve, as the ledger charges it (millionths, rounded up)."""
    return epsilon_fixed(tuple(int(v) for v in curve), delta) / EPSILON_SCALE


def charged(status: str, accepted: bool, charge_kept: bool = False) -> bool:
    """Whether a job's curve is on the dataset's ledger."""
    if status == "failed":
        return charge_kept
    if status == "refunded":
        return accepted
    return status in ("requested", "accepted", "completed")


def indexed_jobs(client: CoveClient, *, consumer: str | None = None, dataset_id: int | None = None) -> list[dict[str, Any]]:
    """Index rows of the jobs (a buyer's, a dataset's or all), synced first: one query."""
    client.index.sync()
    return client.index.jobs(consumer=consumer, dataset_ids=None if dataset_id is None else [dataset_id])


def policy_deltas(client: CoveClient, dataset_ids: set[int]) -> dict[int, float]:
    """Each dataset's current δ, from its latest PolicyUpdated in the (synced) index."""
    deltas = {}
    for dataset_id in dataset_ids:
        latest = client.index.latest_policy(dataset_id)
        if latest is not None:
            deltas[dataset_id] = float(Decimal(int(latest["policy"]["delta"])) / DELTA_SCALE)
    return deltas


def job_rows(client: CoveClient, rows: list[dict[str, Any]], deltas: dict[int, float]) -> list[dict[str, Any]]:
    """One record of JOB_COLUMNS per job (index rows, as `indexed_jobs` gives them): id,
    dataset, status, buyer, runner, ε at its dataset's δ (from `deltas`), deadline, the
    runner's fail reason."""
    requests = [RequestedJob.from_index(row) for row in rows]
    curves = honest_curves(client, requests) if rows else {}
    epsilons: dict[tuple[str, float], float] = {}  # jobs repeat parameters: ε once per (curve, δ)
    records = []
    for row, request in zip(rows, requests, strict=True):
        info: JobInfo = info_from_index(row)
        delta = deltas.get(info.dataset_id)
        curve = curves.get(info.job_id)
        epsilon = None
        if delta and curve is not None:
            key = (request.curve_key, delta)
            if key not in epsilons:
                epsilons[key] = job_epsilon(curve, delta)
            epsilon = epsilons[key]
        records.append({
            "job": info.job_id,
            "dataset": info.dataset_id,
            "status": info.status,
            "buyer": info.consumer,
            "runner": info.runner,
            "epsilon": epsilon,
            "deadline": datetime.fromtimestamp(info.deadline, UTC),
            "reason": row["reason"],
        })  # fmt: skip
    return records


def jobs_frame(client: CoveClient, rows: list[dict[str, Any]], deltas: dict[int, float]) -> pd.DataFrame:
    """`job_rows` as a DataFrame."""
    return pd.DataFrame(job_rows(client, rows, deltas), columns=JOB_COLUMNS)


def budget_points(client: CoveClient, dataset_id: int, delta: float) -> list[dict[str, Any]]:
    """The dataset's charges in order, each a record of HISTORY_COLUMNS with its own ε and
    the composed ε after it: first the release of its row count at publication (job None),
    then its charged jobs.

    Composition is RDP: the curves add up order by order (`accounting.compose`) and ε is
    read off the sum at the policy's δ, as the on-chain ledger does.
    """
    count_noise, jobs = _charges(client, dataset_id)
    if count_noise is None:
        return []
    curves = [count_release_curve(count_noise)]
    rows = [_history_row(None, "published", curves, delta)]
    for status, job in jobs:
        curves.append(job.honest_curve)
        rows.append(_history_row(job.job_id, status, curves, delta))
    return rows


def budget_history(client: CoveClient, dataset_id: int, delta: float) -> pd.DataFrame:
    """`budget_points` as a DataFrame (columns: job, status, epsilon, composed_epsilon)."""
    return pd.DataFrame(budget_points(client, dataset_id, delta), columns=HISTORY_COLUMNS).astype({"job": "Int64"})


HISTORY_COLUMNS = ["job", "status", "epsilon", "composed_epsilon"]


def _history_row(job: int | None, status: str, curves: list[tuple[int, ...]], delta: float) -> dict[str, Any]:
    return {
        "job": job,
        "status": status,
        "epsilon": epsilon_fixed(curves[-1], delta) / EPSILON_SCALE,
        "composed_epsilon": epsilon_fixed(compose(curves), delta) / EPSILON_SCALE,
    }


def charged_mechanisms(client: CoveClient, dataset_id: int) -> list[tuple[float, float, int]]:
    """(σ, q, steps) of every release on the dataset's ledger, for the tight accountant: the
    row count's Gaussian (σ of the count, q 1, one step), then each charged job's DP-SGD."""
    count_noise, jobs = _charges(client, dataset_id)
    if count_noise is None:
        return []
    releases = [(count_noise / COUNT_NOISE_SCALE, 1.0, 1)]
    for _, job in jobs:
        noise, rate, steps, _, _ = job.dp
        releases.append((noise / NOISE_SCALE, rate / SAMPLE_RATE_SCALE, steps))
    return releases


def _charges(client: CoveClient, dataset_id: int) -> tuple[int | None, list[tuple[str, RequestedJob]]]:
    """The dataset's count noise (millionths; None for no such dataset) and its charged jobs,
    in order, with their status."""
    client.index.sync()
    dataset = client.index.dataset(dataset_id)
    if dataset is None:
        return None, []
    jobs = [
        (row["status"], RequestedJob.from_index(row))
        for row in client.index.jobs(dataset_ids=[dataset_id])
        if charged(row["status"], row["runner"] is not None, bool(row["charge_kept"]))
    ]
    return int(dataset["count_noise"]), jobs


def composed_epsilon(client: CoveClient, dataset_id: int) -> float:
    """The dataset's ε spent so far, as the chain's ledger holds it."""
    return int(client.session.call(client.jobs.functions.composedEpsilon(dataset_id))) / EPSILON_SCALE


def credits_of(client: CoveClient, datatoken: str, holder: str) -> int:
    """Whole job credits of a dataset held by `holder`."""
    return int(client.session.call(client.datatoken(datatoken).functions.balanceOf(holder))) // CREDIT
