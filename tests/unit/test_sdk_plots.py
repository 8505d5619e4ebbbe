"""The SDK's plots (matplotlib, Agg backend): the right lines with the right data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from exchange.errors import InputError  # noqa: E402
from exchange.sdk import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def line(ax: Any, label: str) -> Any:
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(found) == 1, [ln.get_label() for ln in ax.get_lines()]
    return found[0]


def test_budget_plot_steps_composed_epsilon_against_the_budget() -> None:
    history = pd.DataFrame({"job": pd.array([None, 5, 6], dtype="Int64"), "status": ["published", "completed", "completed"],
                            "epsilon": [1.0, 1.0, 1.0], "composed_epsilon": [1.0, 1.52, 1.95]})  # fmt: skip
    ax = plots.budget(history, 4.0)
    composed = line(ax, "ε spent (RDP composition)")
    assert list(composed.get_xdata()) == [0, 1, 2, 3, 3.5]  # the last level runs half a step on
    assert list(composed.get_ydata()) == [0.0, 1.0, 1.52, 1.95, 1.95]
    assert composed.get_drawstyle() == "steps-post"
    markers = line(ax, "_jobs")
    assert list(markers.get_xdata()) == [1, 2, 3] and list(markers.get_ydata()) == [1.0, 1.52, 1.95]
    summed = line(ax, "ε if simply added up")
    assert list(summed.get_ydata()) == [0.0, 1.0, 2.0, 3.0, 3.0]
    budget = line(ax, "budget ε 4")
    assert list(budget.get_ydata()) == [4.0, 4.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["start", "row count", "#5", "#6"]
    assert ax.get_ylim()[1] >= 4.0


def test_budget_plot_without_jobs_and_on_a_given_axes() -> None:
    _, ax = plt.subplots()
    empty = pd.DataFrame(columns=["job", "status", "epsilon", "composed_epsilon"])
    assert plots.budget(empty, 2.0, ax) is ax
    assert list(line(ax, "ε spent (RDP composition)").get_ydata()) == [0.0, 0.0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["ε spent (RDP composition)", "budget ε 2"]


def test_accuracy_vs_epsilon_from_pairs_sorted_by_epsilon() -> None:
    ax = plots.accuracy_vs_epsilon([(2.0, 0.85), (0.5, 0.7), (1.0, 0.8)], baseline=0.55)
    drawn = line(ax, "accuracy")
    assert list(drawn.get_xdata()) == [0.5, 1.0, 2.0]
    assert list(drawn.get_ydata()) == [0.7, 0.8, 0.85]
    assert list(line(ax, "baseline 0.55").get_ydata()) == [0.55, 0.55]
    assert ax.get_ylabel() == "accuracy"


class FakeJob:
    def __init__(self, epsilon: float, accuracy: float):
        self.epsilon = epsilon
        self.accuracy = accuracy
        self.seen: list[pd.DataFrame] = []

    def evaluate(self, frame: pd.DataFrame) -> dict[str, Any]:
        self.seen.append(frame)
        return {"task": "classification", "rows": len(frame), "accuracy": self.accuracy, "majority": 0.5}


def test_accuracy_vs_epsilon_evaluates_jobs_on_the_held_out_rows() -> None:
    held_out = pd.DataFrame({"x": [1, 2, 3]})
    jobs = [FakeJob(1.0, 0.8), FakeJob(0.25, 0.6)]
    ax = plots.accuracy_vs_epsilon(jobs, held_out=held_out)
    assert list(line(ax, "accuracy").get_ydata()) == [0.6, 0.8]
    assert all(job.seen == [held_out] for job in jobs)
    ax2 = plots.accuracy_vs_epsilon((jobs, held_out))  # the (jobs, frame) form
    assert list(line(ax2, "accuracy").get_xdata()) == [0.25, 1.0]
    with pytest.raises(InputError, match="pass held_out="):
        plots.accuracy_vs_epsilon(jobs)


def test_accuracy_vs_epsilon_from_tables_and_dicts() -> None:
    frame = pd.DataFrame({"epsilon": [1.0, 3.0], "rmse": [5.0, 2.0]})
    ax = plots.accuracy_vs_epsilon(frame)
    assert list(line(ax, "rmse").get_ydata()) == [5.0, 2.0] and ax.get_ylabel() == "rmse"
    ax = plots.accuracy_vs_epsilon([{"epsilon": 2, "accuracy": 0.9}, {"epsilon": 1, "accuracy": 0.7}], label="MLP")
    assert list(line(ax, "MLP").get_ydata()) == [0.7, 0.9]
    with pytest.raises(InputError, match="nothing to plot"):
        plots.accuracy_vs_epsilon([])
    with pytest.raises(InputError, match="pair"):
        plots.accuracy_vs_epsilon([object()])
