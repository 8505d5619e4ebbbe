"""The privacy ledger as an inline SVG: ε composed over the dataset's charges, and its budget.

Drawn on the server, so the page needs no script and no chart library. Each charge is a
point with a `<title>` (a tooltip, and what a screen reader says); the figure carries a
`<title>` and `<desc>` too, and the page shows the same figures in a table beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40  # margins: room for the axes' labels


MAX_TICKED_CHARGES = 16  # beyond this many, charges go unlabelled on the x axis (their titles stay)


@dataclass(frozen=True)
class Charge:
    label: str  # "publication" or "job #3"
    composed: float  # ε of the ledger after this charge
    tick: str = ""  # its short label under the x axis: "pub." or "#3"


@dataclass(frozen=True)
class Frame:
    """Maps (charge index, ε) to SVG coordinates."""

    charges: int
    top: float  # the largest ε on the axis

    def x(self, index: int) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + (span / 2 if self.charges == 1 else span * index / (self.charges - 1))

    def y(self, epsilon: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - epsilon / self.top)


def axis_top(charges: list[Charge], budget: float) -> float:
    """The ε at the top of the axis: the budget or the largest charge, with a little headroom."""
    peak = max([budget, *(c.composed for c in charges)])
    return peak * 1.1 if peak > 0 else 1.0


def ledger_svg(charges: list[Charge], budget: float, title: str) -> str:
    """The chart's markup. `charges` in ledger order; `budget` is the policy's ε budget."""
    frame = Frame(len(charges), axis_top(charges, budget))
    parts = [
        f'<svg class="ledger-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="ledger-title ledger-desc">',
        f'<title id="ledger-title">{escape(title)}</title>',
        f'<desc id="ledger-desc">{escape(_description(charges, budget))}</desc>',
        *_axes(frame),
        _budget_line(frame, budget),
    ]
    if charges:
        points = " ".join(f"{frame.x(i):.1f},{frame.y(c.composed):.1f}" for i, c in enumerate(charges))
        parts.append(f'<polyline class="spent" points="{points}" fill="none"/>')
        for index, charge in enumerate(charges):
            parts.append(
                f'<circle class="charge" cx="{frame.x(index):.1f}" cy="{frame.y(charge.composed):.1f}" r="4" '
                f'data-epsilon="{charge.composed}"><title>{escape(charge.label)}: ε {charge.composed:g} '
                f"spent in all</title></circle>"
            )
            if len(charges) <= MAX_TICKED_CHARGES and charge.tick:
                parts.append(f'<text class="tick" x="{frame.x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                             f'text-anchor="middle">{escape(charge.tick)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts)


def _description(charges: list[Charge], budget: float) -> str:
    if not charges:
        return f"Nothing charged yet; the budget is ε {budget:g}."
    return (f"ε spent after each of {len(charges)} charges, from {charges[0].composed:g} to "
            f"{charges[-1].composed:g}, against a budget of ε {budget:g}.")  # fmt: skip


def _budget_line(frame: Frame, budget: float) -> str:
    y = frame.y(budget)
    return (
        f'<line class="budget" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" data-epsilon="{budget}"/>'
        f'<text class="budget-label" x="{WIDTH - RIGHT}" y="{y - 6:.1f}" text-anchor="end">budget ε {budget:g}</text>'
    )


def _axes(frame: Frame) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}"/>',
             f'<line class="axis" x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}"/>']  # fmt: skip
    for tick in _ticks(frame.top):
        y = frame.y(tick)
        parts.append(f'<text class="tick" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
    parts.append(f'<text class="axis-label" x="{(LEFT + right) / 2}" y="{HEIGHT - 4}" text-anchor="middle">'
                 "charges, in ledger order (publication first)</text>")  # fmt: skip
    parts.append(f'<text class="axis-label" x="14" y="{(TOP + bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(TOP + bottom) / 2})">ε spent</text>')  # fmt: skip
    return parts


def _ticks(top: float) -> list[float]:
    """Round ticks from 0 up to `top`, about six of them (steps of 1, 2 or 5 times a power of ten)."""
    raw = top / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = int(top / step + 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]

