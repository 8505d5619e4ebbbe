"""How the page writes numbers: as people write them (`exchange.units`), never in exponent
or float noise, and nothing at all for a figure that is not there."""

from __future__ import annotations

from decimal import Decimal

from exchange.units import delta_from_fixed, delta_text, epsilon_from_fixed, number_text


def number(value: Decimal | float | int | None) -> str:
    return "" if value is None else number_text(value)


def price(amount: Decimal | float, currency: str) -> str:
    return "free" if currency == "free" or amount == 0 else f"{number_text(amount)} {currency}"


def epsilon_fixed(value: int) -> str:
    """An on-chain ε (millionths)."""
    return number_text(epsilon_from_fixed(value))


def delta_fixed(value: int) -> str:
    """An on-chain δ (1e-18 units)."""
    return delta_text(delta_from_fixed(value))
