"""Jobs side by side: a pool of workers, each job in its own sandbox, and a queue shown.

Two jobs requested at once are both announced at the first poll; with two workers they
train at the same time (their training intervals overlap), with one the second waits, shown
as waiting, and starts when the first is done. Each job's log ends with its step count, the
figure the queue shows while it trains.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from compute_to_data.progress import read_progress
from compute_to_data.runner import Runner, RunnerLimits
from compute_to_data.state import Stage
from exchange.jobs import job_info, request_job
from exchange.market import buy_credits
from test_compute_jobs import make_spec, publish

pytestmark = pytest.mark.chain


def limits(workers: int) -> RunnerLimits:
    return RunnerLimits(device="cpu", allow_unsandboxed=True, wall_seconds=300, workers=workers)


def two_jobs(client_for, tmp_path: Path) -> tuple[Any, list[int]]:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    dataset_id = publish(owner, tmp_path, "pool", rows=400, seed=4, budget="20", per_job_cap="2.5", free_cap=5)
    buy_credits(buyer, dataset_id, 2)
    spec = make_spec(epochs=2)
    return owner, [request_job(buyer, dataset_id, spec).job_id for _ in range(2)]


def timed_trainings(runner: Runner) -> dict[int, tuple[float, float]]:
    """Each job's training interval (monotonic seconds), recorded around the worker's call."""
    intervals: dict[int, tuple[float, float]] = {}
    train = runner._train

    def timed(job: Any, *rest: Any) -> Any:
        started = time.monotonic()
        try:
            return train(job, *rest)
        finally:
            intervals[job.job_id] = (started, time.monotonic())

    runner._train = timed  # type: ignore[method-assign]
    return intervals


def test_two_workers_train_two_jobs_at_once(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner, jobs = two_jobs(client_for, tmp_path)
    reports: list[str] = []
    runner = Runner(owner, limits(2), report=reports.append)
    intervals = timed_trainings(runner)
    try:
        assert runner.poll(wait=False) == []
        queue = runner.queue()
        assert [(entry.job_id, entry.stage) for entry in queue] == [(jobs[0], "training"), (jobs[1], "training")]
        assert all(entry.steps and entry.steps > 0 for entry in queue)
        assert sorted(runner.poll()) == jobs
    finally:
        runner.close()
    (first_start, first_end), (second_start, second_end) = intervals[jobs[0]], intervals[jobs[1]]
    assert second_start < first_end and first_start < second_end  # they overlapped
    assert [job_info(owner, job_id).status for job_id in jobs] == ["completed", "completed"]
    assert runner.queue() == []
    for job_id in jobs:  # the log's last progress line: every planned step was taken
        done, total = read_progress(owner.home.runner / f"job-{job_id}.log") or (None, None)
        assert done == total and total == next(e.steps for e in queue if e.job_id == job_id)


def test_one_worker_queues_the_second_job_and_shows_it_waiting(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner, jobs = two_jobs(client_for, tmp_path)
    reports: list[str] = []
    runner = Runner(owner, limits(1), report=reports.append)
    intervals = timed_trainings(runner)
    try:
        assert runner.poll(wait=False) == []
        # Both are announced at once, the second with its place in the queue.
        assert f"job #{jobs[0]} requested on dataset #1" in reports
        assert f"job #{jobs[1]} requested on dataset #1; 1 ahead of it" in reports
        assert [(e.job_id, e.stage) for e in runner.queue()] == [(jobs[0], "training"), (jobs[1], "waiting")]
        assert runner.state.get(jobs[1]).stage is Stage.SEEN  # type: ignore[union-attr]  # not claimed yet
        assert job_info(owner, jobs[1]).status == "requested"  # another runner could still take it
        assert sorted(runner.poll()) == jobs
    finally:
        runner.close()
    assert intervals[jobs[0]][1] <= intervals[jobs[1]][0]  # strictly one after the other
    assert [job_info(owner, job_id).status for job_id in jobs] == ["completed", "completed"]


def test_the_run_loop_trains_in_the_background_and_stops(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner, jobs = two_jobs(client_for, tmp_path)
    runner = Runner(owner, limits(2), report=lambda _: None)
    seen: list[list[tuple[int, str]]] = []
    stop = threading.Event()

    def watch(queue: list[Any]) -> None:
        seen.append([(entry.job_id, entry.stage) for entry in queue])
        if all(job_info(owner, job_id).status == "completed" for job_id in jobs):
            stop.set()

    deadline = time.monotonic() + 240
    runner.run(interval=0.2, stop=lambda: stop.is_set() or time.monotonic() > deadline, on_poll=watch)
    assert stop.is_set(), "the jobs did not complete in time"
    assert [(jobs[0], "training"), (jobs[1], "training")] in seen  # the queue was shown while they trained
    assert seen[-1] == []
