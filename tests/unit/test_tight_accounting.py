"""The tight ε shown next to the ledger's RDP bound: never below the truth, never above the ledger.

References: the analytic Gaussian mechanism (Balle & Wang 2018) for q = 1, Opacus' PRV
accountant against dp_accounting's PLD accountant, and the ledger's own RDP figure.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from importlib.metadata import version

import pytest
from scipy.optimize import brentq
from scipy.special import log_ndtr

from exchange.errors import CoveError, PrivacyError
from exchange.ml import accounting
from exchange.ml.tight_accounting import (
    MIN_DELTA,
    TightAccountingUnavailable,
    TightEpsilon,
    available,
    tight_epsilon,
    tight_epsilon_composed,
)

pytestmark = pytest.mark.skipif(not available("pld"), reason="dp-accounting is not installed")


def ledger_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    """The ε the ledger enforces: the fixed-point RDP curve at the ledger's orders, at δ."""
    return accounting.epsilon(accounting.fixed_curve(accounting.rdp_curve(sigma, q, steps)), delta)


def gaussian_delta(eps: float, sigma: float) -> float:
    """δ(ε) of the Gaussian mechanism, sensitivity 1, noise σ (Balle & Wang 2018, Theorem 8):
    Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ)."""
    first = log_ndtr(1 / (2 * sigma) - eps * sigma)
    second = eps + log_ndtr(-1 / (2 * sigma) - eps * sigma)
    return math.exp(first) * -math.expm1(second - first)


def gaussian_epsilon(sigma: float, delta: float) -> float:
    """The exact ε of the Gaussian mechanism at δ (the analytic Gaussian), by root finding."""
    if gaussian_delta(0.0, sigma) <= delta:
        return 0.0
    high = 1.0
    while gaussian_delta(high, sigma) > delta:
        high *= 2
    return brentq(lambda e: gaussian_delta(e, sigma) - delta, 0.0, high, xtol=1e-13, rtol=1e-13)


# ---------------------------------------------------------------------------------------
# The result and its inputs


def test_importing_the_module_loads_no_accountant() -> None:
    code = (
        "import sys, exchange.ml.tight_accounting\n"
        "print(sorted(m for m in ('dp_accounting', 'opacus', 'torch', 'scipy', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_the_result_names_its_accountant_and_is_labelled_not_enforced() -> None:
    result = tight_epsilon(1.0, 0.01, 1000, 1e-5)
    assert isinstance(result, TightEpsilon)
    assert (result.accountant, result.library, result.version) == ("pld", "dp-accounting", version("dp-accounting"))
    assert result.delta == 1e-5 and result.lower is None and result.error_bound is None
    assert "not enforced" in result.text() and "PLD accountant, dp-accounting" in result.text()
    assert result.as_dict()["enforced"] is False and result.as_dict()["epsilon"] == result.epsilon
    with pytest.raises(AttributeError):
        result.epsilon = 0.0  # type: ignore[misc]

    prv = tight_epsilon(1.0, 0.01, 1000, 1e-5, accountant="prv")
    assert (prv.accountant, prv.library, prv.version) == ("prv", "opacus", version("opacus"))
    assert prv.lower is not None and prv.estimate is not None
    assert prv.lower <= prv.estimate <= prv.epsilon  # the upper end is what is reported
    assert prv.error_bound == pytest.approx(prv.epsilon - prv.lower)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0.0, 0.01, 10, 1e-5), "noise multiplier"),
        ((-1.0, 0.01, 10, 1e-5), "noise multiplier"),
        ((math.nan, 0.01, 10, 1e-5), "noise multiplier"),
        ((math.inf, 0.01, 10, 1e-5), "noise multiplier"),
        ((True, 0.01, 10, 1e-5), "noise multiplier"),
        (("1.0", 0.01, 10, 1e-5), "noise multiplier"),
        ((1.0, 0.0, 10, 1e-5), "sample rate"),
        ((1.0, 1.5, 10, 1e-5), "sample rate"),
        ((1.0, math.nan, 10, 1e-5), "sample rate"),
        ((1.0, 0.01, 0, 1e-5), "steps"),
        ((1.0, 0.01, 2.0, 1e-5), "steps"),
        ((1.0, 0.01, True, 1e-5), "steps"),
        ((1.0, 0.01, 10, 0.0), "δ"),
        ((1.0, 0.01, 10, 1.0), "δ"),
        ((1.0, 0.01, 10, math.nan), "δ"),
        ((1.0, 0.01, 10, -1e-5), "δ"),
    ],
)
def test_invalid_inputs_are_refused_in_one_sentence(args: tuple, words: str) -> None:
    for accountant in ("pld", "prv"):
        with pytest.raises(PrivacyError) as caught:
            tight_epsilon(*args, accountant=accountant)
        message = str(caught.value)
        assert words in message and message.endswith(".") and "\n" not in message


def test_invalid_job_lists_and_accountants_are_refused() -> None:
    for jobs in ("abc", 3, [(1.0, 0.01)], [[1.0, 0.01, 10, 4]], [None]):
        with pytest.raises(PrivacyError):
            tight_epsilon_composed(jobs, 1e-5)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError, match="accountant"):
        tight_epsilon(1.0, 0.01, 10, 1e-5, accountant="rdp")  # type: ignore[arg-type]


def test_delta_below_the_floor_gives_no_tight_figure_rather_than_a_wrong_one() -> None:
    with pytest.raises(TightAccountingUnavailable) as caught:
        tight_epsilon(1.0, 0.01, 1000, MIN_DELTA / 10)
    assert isinstance(caught.value, CoveError) and not isinstance(caught.value, PrivacyError)
    assert "ledger's RDP figure" in str(caught.value)


# ---------------------------------------------------------------------------------------
# Known values


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 5.0, 50.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-6, 1e-10])
def test_one_gaussian_step_matches_the_analytic_gaussian(sigma: float, delta: float) -> None:
    exact = gaussian_epsilon(sigma, delta)
    pld = tight_epsilon(sigma, 1.0, 1, delta)
    assert exact - 1e-9 <= pld.epsilon <= exact * (1 + 1e-3) + 1e-6
    prv = tight_epsilon(sigma, 1.0, 1, delta, accountant="prv")
    assert prv.lower is not None and prv.lower <= exact <= prv.epsilon


@pytest.mark.parametrize(("sigma", "steps"), [(1.0, 4), (5.0, 100), (20.0, 3000)])
def test_gaussian_steps_without_subsampling_compose_to_one_gaussian(sigma: float, steps: int) -> None:
    exact = gaussian_epsilon(sigma / math.sqrt(steps), 1e-5)  # T Gaussian steps at σ = one at σ/√T
    assert exact - 1e-9 <= tight_epsilon(sigma, 1.0, steps, 1e-5).epsilon <= exact * (1 + 1e-3)
    two = tight_epsilon_composed([(sigma, 1.0, steps), (2 * sigma, 1.0, 1)], 1e-5).epsilon
    exact_two = gaussian_epsilon((steps / sigma**2 + 1 / (2 * sigma) ** 2) ** -0.5, 1e-5)
    assert exact_two - 1e-9 <= two <= exact_two * (1 + 1e-3)


# ---------------------------------------------------------------------------------------
# Against the ledger and between accountants

TYPICAL = [  # (σ, q, steps, δ): σ 0.5–10, q 0.001–0.2, steps 1–5000, δ 1e-5 / 1e-6
    (0.5, 0.001, 1, 1e-5),
    (0.5, 0.01, 100, 1e-6),
    (0.7, 0.2, 10, 1e-5),
    (0.8, 0.004, 5000, 1e-5),
    (1.0, 0.01, 1000, 1e-5),
    (1.0, 0.05, 1, 1e-6),
    (2.0, 0.05, 100, 1e-6),
    (2.0, 0.001, 5000, 1e-5),
    (5.0, 0.1, 50, 1e-5),
    (10.0, 0.2, 5000, 1e-6),
    (10.0, 0.001, 10, 1e-5),
]


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), TYPICAL)
def test_tight_is_below_the_ledger_and_agrees_with_prv(sigma: float, q: float, steps: int, delta: float) -> None:
    pld = tight_epsilon(sigma, q, steps, delta)
    prv = tight_epsilon(sigma, q, steps, delta, accountant="prv")
    assert prv.lower is not None and prv.estimate is not None
    assert pld.epsilon <= ledger_epsilon(sigma, q, steps, delta)
    assert prv.lower <= ledger_epsilon(sigma, q, steps, delta)
    # PLD's figure is an upper bound on the true ε, PRV's lower end a lower bound on it: PLD
    # must not fall below PRV's lower end, and lies within PRV's error bound of its estimate
    # (give or take PLD's own grid error, at most 0.1 % of ε).
    assert prv.lower <= pld.epsilon
    assert abs(pld.epsilon - prv.estimate) <= prv.epsilon - prv.estimate + 1e-3 * pld.epsilon


def test_the_grid_is_as_fine_as_dp_accountings_default() -> None:
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    for sigma, q, steps, delta in [(1.0, 0.01, 1000, 1e-5), (0.8, 0.004, 5000, 1e-5), (2.0, 0.05, 100, 1e-6)]:
        reference = PLDAccountant(value_discretization_interval=1e-4)  # the library's default grid
        reference.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps))  # fmt: skip
        assert tight_epsilon(sigma, q, steps, delta).epsilon == pytest.approx(reference.get_epsilon(delta), rel=2e-3)


# ---------------------------------------------------------------------------------------
# Composition


def test_several_jobs_compose_like_one_run_over_all_their_steps() -> None:
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    jobs = [(1.0, 0.01, 300), (2.0, 0.05, 200), (0.8, 0.004, 500)]
    delta = 1e-5
    composed = tight_epsilon_composed(jobs, delta)
    # One dp_accounting run over all the steps (its default grid), and one PRV run.
    reference = PLDAccountant()
    reference.compose(dp_accounting.ComposedDpEvent([
        dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), t)
        for s, q, t in jobs
    ]))  # fmt: skip
    assert composed.epsilon == pytest.approx(reference.get_epsilon(delta), rel=2e-3)
    prv = tight_epsilon_composed(jobs, delta, accountant="prv")
    assert prv.lower is not None and prv.lower <= composed.epsilon <= prv.epsilon + 1e-3 * composed.epsilon
    # In any order; more than any one job and less than their sum; less than the ledger's RDP.
    assert tight_epsilon_composed(list(reversed(jobs)), delta).epsilon == pytest.approx(composed.epsilon, rel=1e-6)
    alone = [tight_epsilon(*job, delta).epsilon for job in jobs]
    assert max(alone) < composed.epsilon < sum(alone)
    ledger = accounting.epsilon(
        accounting.compose([accounting.fixed_curve(accounting.rdp_curve(*job)) for job in jobs]), delta
    )
    assert composed.epsilon <= ledger


def test_jobs_with_the_same_parameters_are_one_job_with_their_steps() -> None:
    split = tight_epsilon_composed([(1.0, 0.01, 300), (1.0, 0.01, 700)], 1e-5)
    assert split.epsilon == tight_epsilon(1.0, 0.01, 1000, 1e-5).epsilon
    assert tight_epsilon_composed([(1.0, 0.01, 300), (1.0, 0.01, 700)], 1e-5, accountant="prv").epsilon == (
        tight_epsilon(1.0, 0.01, 1000, 1e-5, accountant="prv").epsilon
    )


def test_no_jobs_release_nothing() -> None:
    for accountant in ("pld", "prv"):
        assert tight_epsilon_composed([], 1e-5, accountant=accountant).epsilon == 0.0  # type: ignore[arg-type]


def test_a_noisy_row_count_composes_with_training() -> None:
    """Publishing charges a Gaussian row count (σ_count, no subsampling): the job (σ, 1.0, 1)."""
    training = tight_epsilon(1.0, 0.01, 1000, 1e-5).epsilon
    with_count = tight_epsilon_composed([(1.0, 0.01, 1000), (100.0, 1.0, 1)], 1e-5).epsilon
    assert training < with_count < training + gaussian_epsilon(100.0, 1e-5) + 0.01


# ---------------------------------------------------------------------------------------
# Edge cases


def test_extreme_noise() -> None:
    # Tiny σ: a huge but finite figure, or none where the library overflows; never a small one.
    assert tight_epsilon(1e-3, 0.5, 1, 1e-5).epsilon > 1e5
    with pytest.raises(TightAccountingUnavailable):
        tight_epsilon(1e-6, 0.5, 1, 1e-5)
    # Huge σ: next to nothing, and still at least the exact Gaussian figure when q = 1.
    assert 0.0 <= tight_epsilon(1e6, 0.5, 10, 1e-5).epsilon < 1e-3
    exact = gaussian_epsilon(1000.0, 1e-5)
    assert exact - 1e-9 <= tight_epsilon(1000.0, 1.0, 1, 1e-5).epsilon <= exact * 1.01 + 1e-6


def test_many_steps_are_fast() -> None:
    start = time.monotonic()
    tiny = tight_epsilon(1.0, 1e-9, 10_000_000, 1e-5)  # one point per step: dp_accounting loops in Python
    many = tight_epsilon(1.0, 1e-6, 1_000_000, 1e-6)
    assert time.monotonic() - start < 10
    assert 0 < tiny.epsilon < many.epsilon <= ledger_epsilon(1.0, 1e-6, 1_000_000, 1e-6)


def test_delta_near_the_ends() -> None:
    small = tight_epsilon(2.0, 0.01, 100, 1e-10)
    prv = tight_epsilon(2.0, 0.01, 100, 1e-10, accountant="prv")
    assert prv.lower is not None and prv.lower <= small.epsilon <= ledger_epsilon(2.0, 0.01, 100, 1e-10)
    assert tight_epsilon(1.0, 0.01, 1000, 0.5).epsilon == 0.0  # δ above the total variation distance


# ---------------------------------------------------------------------------------------
# The outside check: RDP is 1.07–1.21× looser at the median, much more when ε is small

RATIO_GRID = [  # 24 settings, δ 1e-5 at 100 steps and 1e-6 at 2000
    (sigma, q, steps, 1e-5 if steps == 100 else 1e-6)
    for sigma in (0.7, 1.0, 2.0, 5.0)
    for q in (0.004, 0.02, 0.1)
    for steps in (100, 2000)
]
SMALL_EPSILON = [(10.0, 0.001, 1, 1e-5), (10.0, 0.001, 10, 1e-6), (5.0, 0.005, 1, 1e-5), (20.0, 0.01, 100, 1e-5)]


def test_the_outside_checks_ratios_are_reproduced() -> None:
    def ratio(sigma: float, q: float, steps: int, delta: float) -> float:
        return ledger_epsilon(sigma, q, steps, delta) / tight_epsilon(sigma, q, steps, delta).epsilon

    typical = {setting: ratio(*setting) for setting in RATIO_GRID}
    small = {setting: ratio(*setting) for setting in SMALL_EPSILON}
    median = statistics.median(typical.values())
    worst = max(typical, key=typical.__getitem__)
    print(f"\nRDP/tight on {len(typical)} typical settings: median {median:.3f}, "
          f"range {min(typical.values()):.3f}–{typical[worst]:.3f} (max at σ, q, steps, δ = {worst})")  # fmt: skip
    for setting, value in small.items():
        print(f"RDP/tight at small ε, σ, q, steps, δ = {setting}: {value:.2f}")
    assert all(value >= 1.0 for value in [*typical.values(), *small.values()])
    assert 1.03 <= median <= 1.4
    assert max(small.values()) >= 2.0
