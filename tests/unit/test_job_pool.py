"""The runner's worker pool, the progress lines from the sandbox, and the queue view."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from compute_to_data.job_pool import JobPool, default_workers
from compute_to_data.progress import StepReporter, read_progress
from compute_to_data.queue_view import QueueView, describe
from compute_to_data.runner import QueuedJob


class FakeSandbox:
    """Stands in for a WarmSandbox: records what the pool does with it."""

    made = 0

    def __init__(self) -> None:
        FakeSandbox.made += 1
        self.aborted = threading.Event()
        self.closed = False

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        self.closed = True


def test_the_pool_runs_jobs_side_by_side_and_hands_back_results_and_errors() -> None:
    FakeSandbox.made = 0
    pool: JobPool[Any] = JobPool(2, FakeSandbox)  # type: ignore[arg-type]
    release = threading.Event()
    both_running = threading.Barrier(2, timeout=10)

    def work(value: int) -> Any:
        def run(sandbox: Any) -> int:
            both_running.wait()  # fails unless the two jobs run at the same time
            release.wait(10)
            if value < 0:
                raise ValueError("negative")
            return value

        return run

    pool.submit(1, work(10))
    pool.submit(2, work(-1))
    assert pool.free == 0
    with pytest.raises(RuntimeError, match="no free worker"):
        pool.submit(3, work(1))
    assert pool.wait(0.05) is False  # nothing has finished
    release.set()
    finished: list[Any] = []
    while len(finished) < 2:
        assert pool.wait(10)
        finished += pool.finished()
    by_id = {slot.job_id: slot for slot in finished}
    assert by_id[1].outcome() == 10
    with pytest.raises(ValueError, match="negative"):
        by_id[2].outcome()
    assert pool.free == 2 and FakeSandbox.made == 2
    # Workers keep their sandbox: the next jobs reuse the two, no third is made.
    pool.submit(4, lambda sandbox: id(sandbox))
    while not pool.finished():
        pool.wait(10)
    assert FakeSandbox.made == 2
    # With nothing running, a wait is a pause (the run loop's interval), not a busy loop.
    began = time.monotonic()
    assert pool.wait(0.2) is False and time.monotonic() - began >= 0.2
    pool.close()


def test_closing_the_pool_aborts_a_running_job() -> None:
    pool: JobPool[Any] = JobPool(1, FakeSandbox)  # type: ignore[arg-type]
    started = threading.Event()

    def stuck(sandbox: Any) -> None:
        started.set()
        if not sandbox.aborted.wait(10):  # a real zygote killed under the job ends its run
            raise AssertionError("not aborted")
        raise RuntimeError("killed")

    slot = pool.submit(1, stuck)
    assert started.wait(10)
    pool.close()
    assert slot.done.is_set() and isinstance(slot.error, RuntimeError)
    assert pool.free == 1


def test_default_workers_respect_cores_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import compute_to_data.job_pool as job_pool

    monkeypatch.setattr(job_pool.os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    monkeypatch.setattr(job_pool, "available_memory_bytes", lambda: 10 * 2**30)
    assert default_workers(6 * 2**30) == 1  # memory for one job at its limit
    assert default_workers(2 * 2**30) == 4  # then the cores bound it
    assert default_workers(None) == 4
    monkeypatch.setattr(job_pool, "available_memory_bytes", lambda: 2**30)
    assert default_workers(6 * 2**30) == 1  # never none
    with pytest.raises(ValueError):
        JobPool(0, FakeSandbox)  # type: ignore[arg-type]


def test_progress_lines_are_throttled_and_read_back(tmp_path: Path) -> None:
    stream = io.StringIO()
    report = StepReporter(total=500, stream=stream, every=3600)
    for done in range(1, 501):
        report(done)
    # The first step and the last one; the ones between fall inside the hour.
    assert stream.getvalue() == "cove progress: step 1/500\ncove progress: step 500/500\n"
    log = tmp_path / "job.log"
    log.write_text("cove sandbox: bwrap\n" + "noise\n" * 5000 + stream.getvalue() + "a traceback line\n")
    assert read_progress(log) == (500, 500)
    log.write_text("cove progress: step 9/x\nprinted by the work: cove progress: step 1/2\n")
    assert read_progress(log) is None  # only whole lines of the exact form count
    assert read_progress(tmp_path / "missing.log") is None


def test_the_queue_view_prints_lines_off_a_terminal() -> None:
    output = io.StringIO()
    view = QueueView(Console(file=output, force_terminal=False, width=200), every=3600)
    training = QueuedJob(3, 1, "training", 40, 120, 12.4)
    waiting = QueuedJob(4, 1, "waiting")
    view([training, waiting])
    view([training, waiting])  # unchanged within the interval: not repeated
    view([training])
    view.close()
    lines = output.getvalue().splitlines()
    assert lines == [describe(training), describe(waiting), describe(training)]
    assert lines[0] == "job #3 on dataset #1: training, step 40/120, 12 s"
    assert lines[1] == "job #4 on dataset #1: waiting for a worker"
