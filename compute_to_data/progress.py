"""A job's step count, from the sandbox to the runner's screen, through the job's log.

The sandboxed child writes `cove progress: step N/M` to its stderr, which is the job's log
on the owner's disk (`compute_to_data.sandbox`), at most once a second and at the last step;
the runner reads the last such line back. Nothing else crosses: the step count is public
(the job's DP parameters fix M), and no loss or other value computed from rows is written.
The line stays on the owner's premises, like the rest of the log.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import TextIO

PREFIX = "cove progress: "
_LINE = re.compile(rb"^cove progress: step (\d{1,12})/(\d{1,12})$", re.MULTILINE)
_TAIL_BYTES = 4096


class StepReporter:
    """`reporter(done)` after each step: writes a progress line at most every `every` seconds."""

    def __init__(self, total: int, stream: TextIO | None = None, every: float = 1.0):
        self.total = total
        self.stream = stream
        self.every = every
        self._last = float("-inf")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last < self.every:
            return
        self._last = now
        stream = self.stream or sys.stderr
        stream.write(f"{PREFIX}step {done}/{self.total}\n")
        stream.flush()


def read_progress(log_path: Path) -> tuple[int, int] | None:
    """(steps done, steps) from the last progress line of a job's log, or None."""
    try:
        with open(log_path, "rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - _TAIL_BYTES))
            tail = log.read(_TAIL_BYTES)
    except OSError:
        return None
    matches = _LINE.findall(tail)
    if not matches:
        return None
    done, total = matches[-1]
    return int(done), int(total)
