"""The runner's queue on the owner's screen: each job's stage, step count and elapsed time.

On a terminal it is a live table under the runner's log lines; elsewhere (a log file, a
service manager) a line per job at most every `every` seconds, and whenever the queue's
membership changes. Only public figures: the step count and the time, never a loss.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from compute_to_data.runner import QueuedJob


def describe(entry: QueuedJob) -> str:
    if entry.stage != "training":
        return f"job #{entry.job_id} on dataset #{entry.dataset_id}: waiting for a worker"
    return (f"job #{entry.job_id} on dataset #{entry.dataset_id}: training, step {entry.steps_done or 0}/"
            f"{entry.steps}, {entry.elapsed or 0:.0f} s")  # fmt: skip


def queue_table(queue: list[QueuedJob]) -> Table:
    table = Table(title="runner queue", title_justify="left")
    for column in ("job", "dataset", "stage", "steps", "elapsed"):
        table.add_column(column, justify="right" if column in ("job", "dataset", "elapsed") else "left")
    for entry in queue:
        training = entry.stage == "training"
        table.add_row(
            f"#{entry.job_id}", f"#{entry.dataset_id}", entry.stage,
            f"{entry.steps_done or 0}/{entry.steps}" if training else "",
            f"{entry.elapsed or 0:.0f} s" if training else "",
        )  # fmt: skip
    return table


class QueueView:
    """Call it with the queue after each poll; `close()` at the end."""

    def __init__(self, console: Console, every: float = 10.0):
        self.console = console
        self.every = every
        self._live: Live | None = None
        self._shown: tuple[int, ...] = ()
        self._last = float("-inf")

    def __call__(self, queue: list[QueuedJob]) -> None:
        if self.console.is_terminal:
            self._show_live(queue)
            return
        members = tuple(entry.job_id for entry in queue)
        now = time.monotonic()
        if members != self._shown or (queue and now - self._last >= self.every):
            for entry in queue:
                self.console.print(describe(entry))
            self._shown, self._last = members, now

    def _show_live(self, queue: list[QueuedJob]) -> None:
        if not queue:
            self.close()
            return
        if self._live is None:
            self._live = Live(queue_table(queue), console=self.console, refresh_per_second=2, transient=True)
            self._live.start()
        else:
            self._live.update(queue_table(queue))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
