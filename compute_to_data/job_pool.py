"""A bounded pool of training workers, each with a warm sandbox of its own.

The runner's main thread does everything that touches the chain (claims, checks, `complete`,
`fail`), so nonces and the job state move in one order; only the training itself, the
sandbox run, happens in a worker. A worker is a daemon thread holding one `WarmSandbox`
(its own zygote, in its own sandbox), so jobs that run side by side share nothing: not a
process, not a namespace, not a zygote. A zygote serves one job at a time, which is why
the slots and the sandboxes are one-to-one.

How many workers: what the cores and the memory allow, `default_workers`: one per core,
and no more than the machine's available memory divided by one job's memory limit (each
child may use all of its RLIMIT_AS). A runner may ask for fewer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from compute_to_data.warm_sandbox import WarmSandbox

T = TypeVar("T")


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(memory_limit: int | None) -> int:
    """One worker per core, no more than the available memory holds jobs at their limit."""
    available = available_memory_bytes()
    if memory_limit and available:
        return max(1, min(cores(), available // memory_limit))
    return cores()


@dataclass
class Slot(Generic[T]):
    """One job in a worker: its result (or the exception it raised) once `done` is set."""

    job_id: int
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        """The work's return value; re-raises what it raised."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class JobPool(Generic[T]):
    """`size` workers; `submit(job_id, work)` runs `work(sandbox)` in a free one.

    Not thread-safe itself: one thread (the runner's main loop) submits and collects.
    """

    def __init__(self, size: int, make_sandbox: Callable[[], WarmSandbox]):
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self._make_sandbox = make_sandbox
        self._idle: list[WarmSandbox | None] = [None] * size  # started lazily, then kept
        self._busy: dict[int, WarmSandbox | None] = {}
        self._running: dict[int, Slot[T]] = {}
        self._wake = threading.Event()

    @property
    def free(self) -> int:
        return self.size - len(self._running)

    def running(self) -> list[Slot[T]]:
        return sorted(self._running.values(), key=lambda slot: slot.started)

    def submit(self, job_id: int, work: Callable[[WarmSandbox], T]) -> Slot[T]:
        if not self._idle:
            raise RuntimeError("no free worker")
        sandbox = self._idle.pop()
        slot: Slot[T] = Slot(job_id)
        self._running[job_id] = slot
        self._busy[job_id] = sandbox

        def run() -> None:
            nonlocal sandbox
            try:
                if sandbox is None:
                    sandbox = self._busy[job_id] = self._make_sandbox()
                slot.result = work(sandbox)
            except BaseException as error:  # noqa: BLE001  handed to the collecting thread
                slot.error = error
            finally:
                slot.done.set()
                self._wake.set()

        threading.Thread(target=run, name=f"cove-job-{job_id}", daemon=True).start()
        return slot

    def finished(self) -> list[Slot[T]]:
        """The jobs done since the last call, their workers free again, oldest first."""
        done = [slot for slot in self.running() if slot.done.is_set()]
        for slot in done:
            del self._running[slot.job_id]
            self._idle.append(self._busy.pop(slot.job_id))
        return done

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until some job is done (True) or `timeout` passes (False; at once when
        nothing runs and there is no timeout)."""
        if any(slot.done.is_set() for slot in self._running.values()):
            return True
        if not self._running:
            if timeout:
                time.sleep(timeout)
            return False
        self._wake.clear()
        if any(slot.done.is_set() for slot in self._running.values()):  # set before the clear
            return True
        return self._wake.wait(timeout)

    def close(self) -> None:
        """Stops every sandbox. A job still running fails (its zygote is killed under it)."""
        for sandbox in self._busy.values():
            if sandbox is not None:
                sandbox.abort()
        for slot in list(self._running.values()):
            slot.done.wait(10)
        self.finished()
        for sandbox in self._idle:
            if sandbox is not None:
                sandbox.close()
        self._idle = [None] * self.size
