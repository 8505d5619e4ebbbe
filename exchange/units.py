"""Fixed-point conversions shared by the SDK and the contracts, and how numbers are written.

ε is stored in millionths and δ in 1e-18 units (see contracts/src/modules/AccessPolicies.sol).
Conversions go through Decimal so "1.5" becomes exactly 1_500_000, never 1_499_999.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation

EPSILON_SCALE = 10**6
DELTA_SCALE = 10**18
CREDIT = 10**18  # one job credit is one whole datatoken
# The privacy ledger's 42-bit lanes: a fixed-point RDP entry (or sum) this large stands for
# infinite RDP at its order (ComputeJobs.SATURATED); such orders never give ε.
RDP_SATURATED = 2**42 - 2

# Fixed-point arithmetic must be exact: the default context keeps 28 digits and would
# silently round e.g. a uint96 price (29 digits). This one refuses to round instead.
_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation])


def to_decimal(value: object, what: str) -> Decimal:
    """`value` as a finite Decimal, or ValueError naming `what`."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return number


def scaled(value: object, scale: int, what: str) -> int:
    """`value` × `scale` as an exact integer, or ValueError if it needs more precision."""
    exact = to_decimal(value, what)
    try:
        number = _EXACT.multiply(exact, Decimal(scale))
    except Inexact:  # over 100 digits: far above any on-chain integer, or far below its unit
        if exact.adjusted() > 0:
            raise ValueError(f"{what} is too large for the chain to store") from None
        raise ValueError(f"{what} has more decimals than the chain stores (1/{scale})") from None
    if number != number.to_integral_value():
        raise ValueError(f"{what} has more decimals than the chain stores (1/{scale})")
    return int(number)


def epsilon_from_fixed(value: int) -> Decimal:
    return Decimal(value) / EPSILON_SCALE


def delta_from_fixed(value: int) -> Decimal:
    return Decimal(value) / DELTA_SCALE


def from_fixed(value: int, scale: int) -> Decimal:
    """The exact Decimal of a fixed-point integer `value` with `scale` units per whole."""
    return _EXACT.divide(Decimal(value), Decimal(scale))


def number_text(value: Decimal | float | int) -> str:
    """A number as people write it: 2.50 -> 2.5, 1E+1 -> 10; a float to millionths (the
    chain's precision for ε) without float noise: 1.0200000000000001 -> 1.02."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, int):
        return str(value)
    return format(Decimal(f"{value:.6f}").normalize(), "f")


def delta_text(delta: Decimal | float) -> str:
    """δ as people write it, 1e-5 or 0.0001: the shortest exact form, no zero-padded exponent
    (Python's repr writes 1e-05, a Decimal's `:.2E` 1.00E-5)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].replace('+', '')}{m[2]}", repr(float(delta)))

