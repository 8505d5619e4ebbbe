"""The public row count, released with differential privacy.

A dataset's exact row count is a function of its private rows: under add/remove-one-row
neighbours, publishing it exactly would tell anyone comparing two versions whether a
person's row is there, and the model's privacy accounting (which assumes those neighbours)
would no longer cover the whole release. So the owner publishes the count plus noise from
the discrete Gaussian distribution N_Z(0, σ²) (Canonne, Kamath and Steinke, "The Discrete
Gaussian for Differential Privacy", NeurIPS 2020): sensitivity 1, Rényi DP of α/(2σ²) at
every order α, which the hub charges to the dataset's ledger at publish. Everything after
(the sampling rate q = batch/n, δ < 1/n) uses that public count.

Sampling is exact, with integer and rational arithmetic and the operating system's CSPRNG
(`secrets`): no floating point, so no floating-point attack on the noise (Mironov 2012).
"""

from __future__ import annotations

import math
import secrets
from fractions import Fraction

from exchange.errors import PrivacyError

DEFAULT_COUNT_NOISE = 20.0  # σ of the count's noise: small next to typical tables, cheap in ε
COUNT_NOISE_SCALE = 10**6  # on chain, σ is stored in millionths (uint32)
_MAX_COUNT_NOISE_MICRO = 2**32 - 1


def _bernoulli(p: Fraction) -> bool:
    return secrets.randbelow(p.denominator) < p.numerator


def _bernoulli_exp_minus(gamma: Fraction) -> bool:
    """Bernoulli(exp(−γ)) for γ ≥ 0, exactly (CKS20, Algorithm 1)."""
    while gamma > 1:
        if not _bernoulli_exp_minus(Fraction(1)):
            return False
        gamma -= 1
    k = 1
    while _bernoulli(gamma / k):
        k += 1
    return k % 2 == 1


def _discrete_laplace(t: int) -> int:
    """A draw from the discrete Laplace distribution of scale t: P(x) ∝ exp(−|x|/t) (CKS20, Algorithm 2)."""
    while True:
        u = secrets.randbelow(t)
        if not _bernoulli_exp_minus(Fraction(u, t)):
            continue
        v = 0
        while _bernoulli_exp_minus(Fraction(1)):
            v += 1
        magnitude = u + t * v
        negative = secrets.randbelow(2) == 1
        if negative and magnitude == 0:
            continue
        return -magnitude if negative else magnitude


def discrete_gaussian(sigma_squared: Fraction) -> int:
    """A draw from N_Z(0, σ²): P(x) ∝ exp(−x²/(2σ²)) on the integers (CKS20, Algorithm 3)."""
    if sigma_squared <= 0:
        raise PrivacyError("The noise of a DP count must have a positive variance.")
    t = math.isqrt(math.floor(sigma_squared)) + 1
    while True:
        y = _discrete_laplace(t)
        gamma = (abs(y) - sigma_squared / t) ** 2 / (2 * sigma_squared)
        if _bernoulli_exp_minus(gamma):
            return y


def count_noise_micro(sigma: float | str) -> int:
    """σ of the count's noise as the chain stores it (millionths), or PrivacyError."""
    try:
        value = Fraction(str(sigma))
    except (ValueError, ZeroDivisionError):
        raise PrivacyError(f"The row count's noise must be a number, not {sigma!r}.") from None
    micro = value * COUNT_NOISE_SCALE
    if micro.denominator != 1 or not 0 < micro <= _MAX_COUNT_NOISE_MICRO:
        raise PrivacyError(
            "The row count's noise σ must be positive, at most 4294.967295, with at most six decimals."
        )
    return int(micro)


def noisy_count(rows: int, noise_micro: int) -> int:
    """The public row count: `rows` plus N_Z(0, σ²), σ = noise_micro / 1e6, and at least 1
    (clamping is post-processing: it costs no privacy)."""
    sigma_squared = Fraction(noise_micro, COUNT_NOISE_SCALE) ** 2
    return max(1, rows + discrete_gaussian(sigma_squared))
