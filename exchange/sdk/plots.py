"""Plots for notebooks (matplotlib): the privacy budget of a dataset, accuracy against ε.

Each function draws on `ax` (a new figure when None) and returns the Axes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from exchange.errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6, 3.5))
    return ax


def budget(
    history: pd.DataFrame, total: float, ax: Axes | None = None, *, title: str | None = None, show_sum: bool = True
) -> Axes:
    """The composed ε after each charge, as a step line, against the total budget.

    `history` has one row per charge, in order, with columns `job` (None for the row count's
    release at publication), `epsilon` (the charge's own ε) and `composed_epsilon` (the
    dataset's ε after it), as `Dataset.budget_history()` gives. With `show_sum`, a dotted
    line shows what simply adding each ε would have charged: the gap is what RDP
    composition saves.
    """
    ax = _axes(ax)
    charges = ["row count" if pd.isna(j) else f"#{int(j)}" for j in history["job"]]
    x = list(range(len(charges) + 1))
    composed = [0.0, *(float(v) for v in history["composed_epsilon"])]
    # Each level holds from its charge to the next; the last one runs half a step on.
    ax.step([*x, len(charges) + 0.5], [*composed, composed[-1]], where="post", color="tab:blue",
            label="ε spent (RDP composition)")  # fmt: skip
    if charges:
        ax.plot(x[1:], composed[1:], "o", color="tab:blue", label="_jobs")
    if show_sum and len(charges) > 1:
        summed = [0.0, *(float(v) for v in history["epsilon"].cumsum())]
        ax.step([*x, len(charges) + 0.5], [*summed, summed[-1]], where="post", linestyle=":", color="grey",
                label="ε if simply added up")  # fmt: skip
    ax.axhline(float(total), linestyle="--", color="tab:red", label=f"budget ε {float(total):g}")
    ax.set_xticks(x, ["start", *charges])
    ax.set_xlim(-0.25, len(charges) + 0.5)
    ax.set_xlabel("charges, in order")
    ax.set_ylabel("ε")
    ax.set_ylim(bottom=0, top=max(float(total), *composed) * 1.1)
    ax.set_title(title or "Privacy budget")
    ax.legend(loc="best", fontsize="small")
    return ax


def _points(results: Any, held_out: pd.DataFrame | None, metric: str | None) -> tuple[list[tuple[float, float]], str]:
    """(ε, value) pairs and the metric's name, from whatever `accuracy_vs_epsilon` accepts."""
    if isinstance(results, tuple) and len(results) == 2 and isinstance(results[1], pd.DataFrame):
        results, held_out = results
    if isinstance(results, pd.DataFrame):
        name = metric or ("accuracy" if "accuracy" in results.columns else "rmse")
        if "epsilon" not in results.columns or name not in results.columns:
            raise InputError(f"The results table needs the columns 'epsilon' and '{name}'.")
        return [(float(e), float(v)) for e, v in zip(results["epsilon"], results[name], strict=True)], name
    points: list[tuple[float, float]] = []
    name = metric
    for item in results:
        if hasattr(item, "evaluate") and hasattr(item, "epsilon"):  # a Job
            if held_out is None:
                raise InputError("To plot jobs, pass held_out= (your own rows to evaluate the models on).")
            scores = item.evaluate(held_out)
            name = name or ("accuracy" if "accuracy" in scores else "rmse")
            points.append((float(item.epsilon), float(scores[name])))
        elif isinstance(item, dict):
            name = name or ("accuracy" if "accuracy" in item else "rmse")
            points.append((float(item["epsilon"]), float(item[name])))
        elif isinstance(item, Sequence) and len(item) == 2:
            points.append((float(item[0]), float(item[1])))
        else:
            raise InputError("Each result must be an (epsilon, accuracy) pair, a dict or a Job.")
    return points, name or "accuracy"


def accuracy_vs_epsilon(
    results: Iterable[Any] | tuple[Iterable[Any], pd.DataFrame] | pd.DataFrame,
    ax: Axes | None = None,
    *,
    held_out: pd.DataFrame | None = None,
    metric: str | None = None,
    baseline: float | None = None,
    label: str | None = None,
) -> Axes:
    """The model's quality against the ε it cost: one point per result, sorted by ε.

    `results`: (ε, accuracy) pairs; or Jobs with `held_out=` (each job's model is evaluated
    on it, e.g. accuracy for classification and RMSE for regression); or `(jobs, held_out)`;
    or a DataFrame with columns `epsilon` and `accuracy`. `baseline` draws a horizontal
    reference line (e.g. the majority-class share).
    """
    points, name = _points(results, held_out, metric)
    if not points:
        raise InputError("There is nothing to plot: no results were given.")
    points.sort()
    ax = _axes(ax)
    ax.plot([e for e, _ in points], [v for _, v in points], marker="o", label=label or name)
    if baseline is not None:
        ax.axhline(float(baseline), linestyle="--", color="grey", label=f"baseline {float(baseline):.3g}")
    ax.set_xlabel("ε (privacy cost of the job)")
    ax.set_ylabel(name)
    ax.set_title(f"{name} against ε")
    ax.legend(loc="best", fontsize="small")
    return ax
