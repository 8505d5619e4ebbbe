"""Tight (ε, δ) figures for DP-SGD jobs, shown next to the ledger's RDP bound and never enforced.

The chain's privacy ledger enforces budgets with an RDP bound (exchange.ml.accounting): sound,
additive, checkable by a contract, but looser than the best known analysis of the same
mechanism (about 1.1–1.2× at typical settings, much more when ε is small). This module gives
the figure a numerical accountant computes for the same jobs, so that users can see how much
privacy a job really costs. It is information only: budgets, caps and refusals stay on the
ledger's figure.

The mechanism is the ledger's: `steps` steps of the Poisson-subsampled Gaussian mechanism
with sample rate q and noise multiplier σ, one row the privacy unit, add/remove adjacency.

Two accountants:

- "pld" (the primary figure): Google's dp_accounting, privacy loss distributions
  (Koskela et al.; Doroshenko et al. 2022, "connect the dots"), discretised pessimistically,
  both directions of add/remove, truncated tails put on the infinite loss. The figure it
  returns is an upper bound on the true ε by construction, with no separate error term.
  This module checks the one thing that construction leaves out, the floating-point noise
  of the FFT convolutions: it reads that noise off the composed distribution (its negative
  masses), and asks for ε at δ less a generous bound on it, or gives no figure when that
  bound exceeds δ/10 (in practice from δ ≈ 1e-11 down; δ below 1e-12 is refused outright).
- "prv": Opacus' PRV accountant (Gopi et al. 2021), kept as the cross-check. It reports an
  estimate with an additive error bound (ε ± 0.01 by default); the figure here is the upper
  end of that bound, and `lower` the lower end.

Whichever accountant, `TightEpsilon.epsilon` is never meant to be below the true ε.

The heavy libraries (dp_accounting, scipy; Opacus and torch for "prv") are imported inside
the functions, so importing this module costs nothing: the CLI starts as fast as before.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from exchange.errors import CoveError, PrivacyError

Accountant = Literal["pld", "prv"]
ACCOUNTANTS: tuple[Accountant, ...] = ("pld", "prv")
PRIMARY: Accountant = "pld"

# The words display code puts next to the figure (see TightEpsilon.text).
LABEL = "tight ε"
NOT_ENFORCED = "not enforced: the ledger charges its RDP bound"

# δ below this is refused: the FFT noise of the composed distributions (about 1e-13 of mass)
# would be a sizeable part of δ, and no accountant here can then promise an upper bound.
MIN_DELTA = 1e-12
# Each step's Gaussian is truncated where its mass is below e^-55; that mass, and the
# tails dropped between compositions (1e-15), go on the infinite loss: pessimistic.
_LOG_MASS_TRUNCATION = -55.0
_TAIL_MASS_TRUNCATION = 1e-15
# PLD grid: a first pass with about this many points per single-step distribution, then a
# finer second pass when the first pass's discretisation error could exceed 0.1 % of ε.
_PLD_POINTS = 20_000
_PLD_MAX_POINTS = 2_000_000
_PLD_MAX_COMPOSED = 4_000_000  # points of the composed distribution (memory: ~0.5 GB)
_PLD_MIN_INTERVAL = 1e-5
_PLD_RELATIVE_ERROR = 1e-3
# The discretisation error of a pessimistic connect-the-dots PLD after T compositions at
# grid h, measured against the analytic Gaussian and the PRV accountant: about 0.6·T·h².
_PLD_ERROR_CONSTANT = 0.6
# PRV: Opacus' defaults, and a cap on its grid (beyond it the run takes minutes).
_PRV_EPS_ERROR = 0.01
_PRV_MAX_POINTS = 5_000_000
# The Gaussian's truncation point in standard deviations, as dp_accounting computes it.
_Z_TRUNCATION = math.sqrt(-2 * _LOG_MASS_TRUNCATION)

Job = tuple[float, float, int]  # (noise multiplier σ, sample rate q, steps)


class TightAccountingUnavailable(CoveError):
    """No tight figure: the accountant is not installed, or cannot vouch for these parameters.

    Display code shows the ledger's figure alone then; the sentence says why.
    """


@dataclass(frozen=True)
class TightEpsilon:
    """A tight ε at `delta`, from a numerical accountant: shown next to the ledger's, not enforced.

    `epsilon` is the reported value and an upper bound on the true ε: for "pld" the
    accountant's pessimistic figure, for "prv" the upper end of its error bound. `estimate`
    and `lower` are the accountant's point estimate and the lower end of its bound, where it
    gives them (PRV does; dp_accounting's pessimistic PLD gives only the upper bound).
    """

    epsilon: float
    delta: float
    accountant: Accountant
    library: str  # the distribution: "dp-accounting" or "opacus"
    version: str
    method: str  # how it was computed, in words (grid, error, directions)
    estimate: float | None = None
    lower: float | None = None

    @property
    def error_bound(self) -> float | None:
        """How far above the true ε `epsilon` can be at most (upper − lower), if the accountant says."""
        return None if self.lower is None else self.epsilon - self.lower

    @property
    def source(self) -> str:
        """e.g. "PLD accountant, dp-accounting 0.6.0"."""
        return f"{self.accountant.upper()} accountant, {self.library} {self.version}"

    def text(self) -> str:
        """One line for a person, e.g. "tight ε 1.83 at δ 1e-05 (PLD accountant, dp-accounting
        0.6.0; not enforced: the ledger charges its RDP bound)"."""
        return f"{LABEL} {self.epsilon:.3g} at δ {self.delta:g} ({self.source}; {NOT_ENFORCED})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, for `--json` output and the SDK's dicts."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "library": self.library,
            "version": self.version,
            "method": self.method,
            "estimate": self.estimate,
            "lower": self.lower,
            "enforced": False,
        }


# ---------------------------------------------------------------------------------------
# The API


def tight_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: Accountant = PRIMARY,
) -> TightEpsilon:
    """The tight ε of one DP-SGD job (`steps` Poisson-subsampled Gaussian steps) at `delta`.

    PrivacyError (one sentence) for invalid parameters; TightAccountingUnavailable when the
    accountant is missing or cannot give a figure it can vouch for (δ below 1e-12, say).
    """
    return tight_epsilon_composed([(noise_multiplier, sample_rate, steps)], delta, accountant=accountant)


def tight_epsilon_composed(
    jobs: Iterable[Sequence[float | int]],
    delta: float,
    *,
    accountant: Accountant = PRIMARY,
) -> TightEpsilon:
    """The tight ε at `delta` of several jobs on one dataset: a list of (σ, q, steps).

    One accountant run over all their steps (composition is exact, in any order; jobs with
    the same σ and q are merged). A Gaussian release without subsampling, such as a noisy
    row count of standard deviation σ, is the job (σ, 1.0, 1). No jobs: ε = 0.
    """
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"The accountant must be one of {', '.join(ACCOUNTANTS)}, not {accountant!r}.")
    checked_delta = _check_delta(delta)
    merged = _merge([_check_job(job, index) for index, job in enumerate(_as_list(jobs))])
    if accountant == "pld":
        return _pld_cached(merged, checked_delta)
    return _prv_cached(merged, checked_delta)


def tight_or_reason(jobs: Iterable[Sequence[float | int]], delta: float) -> tuple[TightEpsilon | None, str | None]:
    """The primary accountant's tight ε of `jobs`, or None and the sentence saying why there is none."""
    try:
        return tight_epsilon_composed(jobs, delta), None
    except TightAccountingUnavailable as missing:
        return None, str(missing)


def available(accountant: Accountant = PRIMARY) -> bool:
    """Whether the accountant's library is installed (without importing it)."""
    from importlib.util import find_spec

    module = {"pld": "dp_accounting", "prv": "opacus"}.get(accountant)
    return module is not None and find_spec(module) is not None


# ---------------------------------------------------------------------------------------
# Inputs


def _as_list(jobs: Iterable[Sequence[float | int]]) -> list[Sequence[float | int]]:
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise PrivacyError("The jobs must be a list of (noise multiplier, sample rate, steps) tuples.")
    return list(jobs)


def _number(value: Any) -> bool:
    """A real number (NumPy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_job(job: Any, index: int) -> Job:
    if isinstance(job, (str, bytes)) or not isinstance(job, Sequence) or len(job) != 3:
        raise PrivacyError(
            f"Job {index + 1} must be a (noise multiplier, sample rate, steps) tuple, not {job!r}."
        )
    sigma, q, steps = job
    if not (_number(sigma) and math.isfinite(sigma) and sigma > 0):
        raise PrivacyError(f"The noise multiplier must be a positive finite number, not {sigma!r}.")
    if not (_number(q) and 0 < q <= 1):
        raise PrivacyError(f"The sample rate must lie in (0, 1], not {q!r}.")
    if not _whole(steps) or steps < 1:
        raise PrivacyError(f"The number of steps must be a positive whole number, not {steps!r}.")
    return (float(sigma), float(q), int(steps))  # plain Python numbers: hashable, one cache key


def _check_delta(delta: Any) -> float:
    if not (_number(delta) and 0 < delta < 1):
        raise PrivacyError(f"δ must lie strictly between 0 and 1, not {delta!r}.")
    if delta < MIN_DELTA:
        raise TightAccountingUnavailable(
            f"δ {delta:g} is below {MIN_DELTA:g}, where the tight accountants' floating-point "
            "error is no longer small next to δ; only the ledger's RDP figure applies."
        )
    return float(delta)


def _merge(jobs: list[Job]) -> tuple[Job, ...]:
    """Jobs with equal (σ, q) as one, steps added up, in first-seen order (composition commutes)."""
    steps: dict[tuple[float, float], int] = {}
    for sigma, q, count in jobs:
        steps[(sigma, q)] = steps.get((sigma, q), 0) + count
    return tuple((sigma, q, count) for (sigma, q), count in steps.items())


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _no_jobs(delta: float, accountant: Accountant, library: str) -> TightEpsilon:
    return TightEpsilon(0.0, delta, accountant, library, _version(library), "no jobs: nothing released")


# ---------------------------------------------------------------------------------------
# PLD (dp_accounting)


@lru_cache(maxsize=256)
def _pld_cached(jobs: tuple[Job, ...], delta: float) -> TightEpsilon:
    if not jobs:
        return _no_jobs(delta, "pld", "dp-accounting")
    try:
        import numpy as np
        from dp_accounting.pld import common
        from dp_accounting.pld import privacy_loss_distribution as pld_lib
    except ImportError:
        raise TightAccountingUnavailable(
            "The PLD accountant needs the dp-accounting package; install it with "
            "`pip install dp-accounting`."
        ) from None

    # Gaussian releases without subsampling compose exactly into one Gaussian:
    # T_i steps at σ_i are one step at (Σ T_i / σ_i²)^(-1/2).
    unsampled = [(sigma, steps) for sigma, q, steps in jobs if q == 1.0]
    parts: list[Job] = [job for job in jobs if job[1] != 1.0]
    if unsampled:
        parts.append((1 / math.sqrt(math.fsum(steps / sigma**2 for sigma, steps in unsampled)), 1.0, 1))
    total_steps = sum(steps for _, _, steps in parts)
    widest = max(_loss_range(sigma, q) for sigma, q, _ in parts)

    def run(interval: float) -> tuple[float, float, float]:
        """(ε, FFT noise, grid) at this grid, or coarser where the composed support would not fit."""
        for _ in range(8):
            try:
                return (*_pld_epsilon(pld_lib, common, parts, delta, interval), interval)
            except _TooFine as too_fine:
                interval *= 1.25 * too_fine.factor
        raise TightAccountingUnavailable(
            "The PLD accountant's composed distribution is too large for these parameters; "
            "only the ledger's RDP figure applies."
        )

    first = max(widest / _PLD_POINTS, _PLD_MIN_INTERVAL)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            eps, noise, interval = run(first)
            # A second pass where the first grid's error (≈ 0.6·T·h²) could exceed 0.1 % of ε.
            if math.isfinite(eps) and eps > 0:
                wanted = math.sqrt(_PLD_RELATIVE_ERROR * eps / (_PLD_ERROR_CONSTANT * total_steps))
                finer = max(wanted, widest / _PLD_MAX_POINTS, _PLD_MIN_INTERVAL)
                if finer < 0.7 * interval:
                    try:
                        second = run(finer)
                    except TightAccountingUnavailable:  # the finer grid's FFT noise: keep the first
                        second = (math.inf, 0.0, finer)
                    if second[0] <= eps:  # both are upper bounds: the smaller one is reported
                        eps, noise, interval = second
    except TightAccountingUnavailable:
        raise
    # AttributeError/TypeError: a dp-accounting other than the pinned one (this module reads
    # its distributions' fields); the tests fail loudly then, display code degrades.
    except (ValueError, ArithmeticError, MemoryError, RuntimeError, AttributeError, TypeError) as error:
        raise TightAccountingUnavailable(
            f"The PLD accountant could not compute ε for these parameters ({type(error).__name__}); "
            "only the ledger's RDP figure applies."
        ) from None
    if math.isnan(eps):
        raise TightAccountingUnavailable(
            "The PLD accountant returned no number for these parameters; only the ledger's RDP figure applies."
        )
    method = (
        f"privacy loss distributions, connect-the-dots, pessimistic, grid {interval:.3g}, "
        f"add and remove, {total_steps:,} composed steps"
        + (f", ε read at δ less the FFT noise bound {noise:.1g}" if noise else "")
    )
    return TightEpsilon(max(0.0, eps), delta, "pld", "dp-accounting", _version("dp-accounting"), method)


class _TooFine(Exception):
    def __init__(self, factor: float):
        super().__init__(factor)
        self.factor = factor


def _pld_epsilon(
    pld_lib: Any, common: Any, parts: list[Job], delta: float, interval: float
) -> tuple[float, float]:
    """(ε, FFT noise bound) of the composed parts on a grid of `interval`; _TooFine if too large."""
    built = []
    length = 0
    for sigma, q, steps in parts:
        one = pld_lib.from_gaussian_mechanism(
            standard_deviation=sigma, sampling_prob=q, value_discretization_interval=interval,
            pessimistic_estimate=True, use_connect_dots=True,
            log_mass_truncation_bound=_LOG_MASS_TRUNCATION,
        )
        if steps > 1:
            one = _dense(pld_lib, one)
            part_length = 0
            for pmf in _pmfs(one):
                low, high = common.compute_self_convolve_bounds(pmf._probs, steps, _TAIL_MASS_TRUNCATION)
                part_length = max(part_length, high - low + 1)
        else:
            part_length = max(pmf.size for pmf in _pmfs(one))
        length += part_length
        built.append((one, steps))
    if length > _PLD_MAX_COMPOSED:
        raise _TooFine(length / _PLD_MAX_COMPOSED)
    composed = None
    for one, steps in built:
        if steps > 1:
            one = one.self_compose(steps, tail_mass_truncation=_TAIL_MASS_TRUNCATION)
        composed = one if composed is None else composed.compose(one, tail_mass_truncation=_TAIL_MASS_TRUNCATION)
    assert composed is not None
    noise = _fft_noise(composed)
    if noise > delta / 10:
        raise TightAccountingUnavailable(
            f"At δ {delta:g} the PLD accountant's floating-point error (about {noise:.1g}) is too "
            "large a part of δ to vouch for a tight figure; only the ledger's RDP figure applies."
        )
    # The computed δ(ε) can be below the true δ(ε) by at most the noise: reading ε at
    # δ − noise keeps the figure an upper bound on the true ε.
    return float(composed.get_epsilon_for_delta(delta - noise)), noise


def _pmfs(distribution: Any) -> list[Any]:
    """The distribution's PMFs: remove, and add where it differs."""
    if distribution._symmetric:
        return [distribution._pmf_remove]
    return [distribution._pmf_remove, distribution._pmf_add]


def _dense(pld_lib: Any, distribution: Any) -> Any:
    """The distribution with dense PMFs.

    dp_accounting self-composes a sparse PMF of one or two points by composing it with
    itself once per step, in Python (ten million steps: minutes); dense, it is one FFT.
    """
    remove = distribution._pmf_remove.to_dense_pmf()
    if distribution._symmetric:
        return pld_lib.PrivacyLossDistribution(remove)
    return pld_lib.PrivacyLossDistribution(remove, distribution._pmf_add.to_dense_pmf())


def _loss_range(sigma: float, q: float) -> float:
    """The width of one step's privacy-loss range that dp_accounting discretises (either direction)."""
    gaussian = 1 / (2 * sigma**2) + _Z_TRUNCATION / sigma  # the largest Gaussian loss kept
    if q == 1.0:
        return 2 * gaussian
    # log(1 − q + q·e^L), in forms that neither overflow nor lose a tiny q.
    if gaussian > 30:
        top = gaussian + math.log(q) + math.log1p((1 - q) * math.exp(-gaussian) / q)
    else:
        top = math.log1p(q * math.expm1(gaussian))
    return 2 * max(top, -math.log1p(-q))


def _fft_noise(composed: Any) -> float:
    """A generous bound on the probability mass the FFT's rounding added or removed.

    The true distributions are non-negative; the FFT leaves values of about ±η where the
    true mass is near 0, so the most negative value shows η. Ten times η on every point
    of the support bounds the total error δ can see. 0 where no FFT was used.
    """
    import numpy as np

    bound = 0.0
    for pmf in _pmfs(composed):
        probs = getattr(pmf, "_probs", None)
        if probs is None:  # a sparse distribution: composed exactly, no FFT
            continue
        probs = np.asarray(probs, dtype=float)
        if probs.size < 2:
            continue
        eta = max(-float(probs.min()), float(np.finfo(float).eps) * float(probs.max()))
        bound = max(bound, 10 * probs.size * eta)
    return bound


# ---------------------------------------------------------------------------------------
# PRV (Opacus)


@lru_cache(maxsize=256)
def _prv_cached(jobs: tuple[Job, ...], delta: float) -> TightEpsilon:
    if not jobs:
        return _no_jobs(delta, "prv", "opacus")
    try:
        import numpy as np
        from opacus.accountants.analysis.prv import (
            Domain,
            PoissonSubsampledGaussianPRV,
            TruncatedPrivacyRandomVariable,
            compose_heterogeneous,
            compute_safe_domain_size,
            discretize,
        )
    except ImportError:
        raise TightAccountingUnavailable(
            "The PRV accountant needs Opacus; install it with `pip install opacus`."
        ) from None

    eps_error = _PRV_EPS_ERROR
    delta_error = delta / 1000  # Opacus' default
    counts = [steps for _, _, steps in jobs]
    total = sum(counts)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            # What opacus.accountants.PRVAccountant does, with its grid checked first.
            prvs = [PoissonSubsampledGaussianPRV(q, sigma) for sigma, q, _ in jobs]
            half_width = compute_safe_domain_size(
                prvs=prvs, max_self_compositions=counts, eps_error=eps_error, delta_error=delta_error
            )
            mesh = eps_error / math.sqrt(total * math.log(12 / delta_error) / 2)
            points = 2 * half_width / mesh
            if not math.isfinite(points) or points > _PRV_MAX_POINTS:
                raise TightAccountingUnavailable(
                    f"The PRV accountant would need a grid of {points:.2g} points for these "
                    "parameters; use the PLD accountant."
                )
            domain = Domain.create_aligned(-half_width, half_width, mesh)
            tprvs = [TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max) for prv in prvs]
            dprv = compose_heterogeneous(
                dprvs=[discretize(tprv, domain) for tprv in tprvs], num_self_compositions=counts
            )
            lower, estimate, upper = (float(v) for v in dprv.compute_epsilon(delta, delta_error, eps_error))
    except TightAccountingUnavailable:
        raise
    except (ValueError, ArithmeticError, MemoryError, RuntimeError) as error:
        raise TightAccountingUnavailable(
            f"The PRV accountant could not compute ε for these parameters ({error}); "
            "use the PLD accountant."
        ) from None
    if not all(map(np.isfinite, (lower, estimate, upper))):
        raise TightAccountingUnavailable(
            "The PRV accountant found no finite ε for these parameters; use the PLD accountant."
        )
    method = (
        f"privacy random variables, ε error {eps_error:g}, δ error {delta_error:.3g}, "
        f"grid {domain.size:,} points, remove direction, {total:,} composed steps; the upper end is reported"
    )
    return TightEpsilon(
        max(0.0, upper), delta, "prv", "opacus", _version("opacus"), method,
        estimate=max(0.0, estimate), lower=max(0.0, lower),
    )
