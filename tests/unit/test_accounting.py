"""The privacy accountant: Opacus-exact ε, fixed-point curves, planning and tamper checks."""

from __future__ import annotations

import math
from fractions import Fraction
import warnings

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from exchange.ml.accounting import (
    MAX_STEPS,
    ORDERS,
    UINT64_MAX,
    DpParams,
    DpParamsOnchain,
    compose,
    count_release_curve,
    curve_matches,
    epsilon,
    epsilon_fixed,
    fixed_curve,
    float_curve,
    noise_for_target,
    rdp_curve,
    sample_rate_for,
    steps_for,
    steps_per_epoch,
)
from exchange.ml.spec import ModelSpec
from exchange.errors import PrivacyError, SpecError
from exchange.units import RDP_SATURATED

N = len(ORDERS)


def opacus_epsilon(noise: float, q: float, steps: int, delta: float) -> float:
    accountant = RDPAccountant()
    accountant.history = [(noise, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha"
        return accountant.get_epsilon(delta, alphas=list(ORDERS))


def test_orders_are_the_contract_list() -> None:
    assert ORDERS == (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160,
                      192, 256, 512, 1024)


@pytest.mark.parametrize(
    ("noise", "q", "steps", "delta"),
    [
        (1.0, 0.01, 1000, 1e-5),
        (0.8, 256 / 60000, 3000, 1e-5),
        (1.1, 0.042666667, 120, 1e-6),
        (5.0, 1.0, 10, 1e-5),
        (0.5, 0.1, 50, 1e-3),
        (2.0, 0.001, 100000, 1e-7),
    ],
)
def test_epsilon_matches_opacus_rdp_accountant(noise: float, q: float, steps: int, delta: float) -> None:
    curve = rdp_curve(noise, q, steps)
    assert len(curve) == len(ORDERS)
    ours = epsilon(curve, delta)
    theirs = opacus_epsilon(noise, q, steps, delta)
    assert ours == pytest.approx(theirs, rel=1e-9)
    # The recorded (fixed-point, rounded up) curve never gives a smaller ε.
    recorded = epsilon(fixed_curve(curve), delta)
    assert ours <= recorded <= ours + 1e-6


def test_fixed_curve_rounds_up_exactly() -> None:
    # 0.1 as a float is 0.1000000000000000055..., so ×1e9 rounds up to 100000001.
    assert fixed_curve((0.1,) * N) == (100_000_001,) * N
    assert fixed_curve((0.5,) * N) == (500_000_000,) * N
    assert fixed_curve((0.0,) * N) == (0,) * N
    assert float_curve((1_500_000_000,) * N) == (1.5,) * N


@pytest.mark.parametrize("bad", [-1e-12, math.nan, math.inf, True, "1"])
def test_fixed_curve_refuses_bad_values(bad: object) -> None:
    with pytest.raises(PrivacyError):
        fixed_curve((0.1,) * (N - 1) + (bad,))  # type: ignore[arg-type]


def test_huge_values_are_recorded_as_infinite_and_skipped() -> None:
    # RDP at high orders of little noise overflows the lanes: it is recorded as "infinite"
    # and ε comes from the finite orders only, as ComputeJobs.epsilonOf does.
    curve = rdp_curve(0.6, 0.05, 2000)
    fixed = fixed_curve(curve)
    assert fixed[-1] >= RDP_SATURATED > fixed[0]
    assert fixed_curve((2e10,) * N) == (UINT64_MAX,) * N
    assert epsilon(fixed, 1e-5) == pytest.approx(epsilon(curve, 1e-5), abs=1e-6)
    assert epsilon((UINT64_MAX,) * N, 1e-5) == math.inf


def test_count_release_curve_is_the_gaussian_mechanism() -> None:
    sigma = 20.0
    curve = count_release_curve(20_000_000)
    exact = [Fraction(alpha) / (2 * Fraction(sigma) ** 2) * 10**9 for alpha in ORDERS]
    assert curve == tuple(math.ceil(value) for value in exact)
    # One count with σ = 20 at δ = 1e-5 costs well under 0.3 ε.
    assert 0.1 < epsilon(curve, 1e-5) < 0.3
    with pytest.raises(PrivacyError):
        count_release_curve(0)


def test_curve_length_and_uint64_range() -> None:
    with pytest.raises(PrivacyError, match="24 values"):
        fixed_curve((0.1,) * (N - 1))
    with pytest.raises(PrivacyError):
        epsilon((UINT64_MAX + 1,) + (0,) * (N - 1), 1e-5)
    with pytest.raises(PrivacyError):
        epsilon((-1,) + (0,) * (N - 1), 1e-5)
    with pytest.raises(PrivacyError):
        epsilon((math.nan,) + (0.0,) * (N - 1), 1e-5)


def test_epsilon_is_floored_at_zero_and_infinite_curves_give_infinity() -> None:
    assert epsilon((0.0,) * N, 0.99) == 0.0
    assert epsilon((math.inf,) * N, 1e-5) == math.inf
    with pytest.raises(PrivacyError):
        epsilon((0.0,) * N, 0.0)
    with pytest.raises(PrivacyError):
        epsilon((0.0,) * N, 1.0)


def test_composition_adds_curves_and_beats_summing_epsilons() -> None:
    one = rdp_curve(1.1, 0.01, 1000)
    fixed = fixed_curve(one)
    three = compose([fixed, fixed, fixed])
    assert three == tuple(3 * v if 3 * v < RDP_SATURATED else UINT64_MAX for v in fixed)
    assert three[0] == 3 * fixed[0] and three[-1] == UINT64_MAX  # high orders saturate
    eps_one = epsilon(fixed, 1e-5)
    eps_three = epsilon(three, 1e-5)
    assert eps_one < eps_three < 3 * eps_one * 0.6  # RDP composition is far below the sum
    floats = compose([one, one, one])
    assert floats == pytest.approx(tuple(3 * v for v in one))
    assert compose([]) == (0,) * N
    with pytest.raises(PrivacyError):
        compose([fixed, one])
    # Lanes saturate as ComputeJobs' do: a sum of RDP_SATURATED or more is infinite.
    assert compose([(RDP_SATURATED - 1,) * N, (1,) * N]) == (UINT64_MAX,) * N
    assert compose([(RDP_SATURATED - 2,) * N, (1,) * N]) == (RDP_SATURATED - 1,) * N


def test_epsilon_fixed_is_millionths_rounded_up() -> None:
    curve = fixed_curve(rdp_curve(1.0, 0.01, 1000))
    eps = epsilon(curve, 1e-5)
    assert epsilon_fixed(curve, 1e-5) == math.ceil(eps * 1e6)


def test_sample_rate_and_steps() -> None:
    assert sample_rate_for(64, 3000) == 0.021333334  # rounded up to the 1e-9 grid
    assert sample_rate_for(1, 3) == 0.333333334
    assert steps_per_epoch(0.333333334) == 3
    assert sample_rate_for(1000, 4000) == 0.25
    assert steps_per_epoch(0.25) == 4
    assert steps_per_epoch(0.3) == 4
    assert steps_per_epoch(1.0) == 1
    assert steps_for(0.021333334, 5) == 5 * 47
    with pytest.raises(SpecError, match="larger than the dataset's 10 rows"):
        sample_rate_for(11, 10)


def test_noise_for_target_is_the_smallest_on_the_grid() -> None:
    q, steps, delta = 0.021333334, 470, 1e-5
    noise = noise_for_target(3.0, delta, q, steps)
    assert noise == round(noise, 6)
    assert epsilon(fixed_curve(rdp_curve(noise, q, steps)), delta) <= 3.0
    assert epsilon(fixed_curve(rdp_curve(noise - 1e-6, q, steps)), delta) > 3.0
    assert noise_for_target(1.0, delta, q, steps) > noise > noise_for_target(8.0, delta, q, steps)
    with pytest.raises(PrivacyError, match="No noise multiplier"):
        noise_for_target(1e-4, delta, 1.0, 100000)


def spec(**dp: object) -> ModelSpec:
    return ModelSpec.parse(
        {
            "task": "classification", "features": ["a"], "target": "b",
            "layers": [{"type": "Linear", "out_features": 2}], "loss": "cross_entropy",
            "optimizer": "sgd", "learning_rate": 0.1, "expected_batch_size": 64, "epochs": 5,
            "dp": {"delta": 1e-5, "max_grad_norm": 1.5, **dp},
        }
    )


def test_dp_params_for_a_spec() -> None:
    given_noise = DpParams.for_spec(spec(noise_multiplier=1.25), 3000)
    assert given_noise.noise_multiplier == 1.25 and given_noise.epochs == 5
    assert given_noise.sample_rate == 0.021333334 and given_noise.steps == 5 * 47
    assert given_noise.max_grad_norm == 1.5 and given_noise.delta == 1e-5
    targeted = DpParams.for_spec(spec(target_epsilon=2.5), 3000)
    assert targeted.noise_multiplier == noise_for_target(2.5, 1e-5, 0.021333334, 235)
    assert targeted.epsilon() <= 2.5
    assert DpParams.for_spec(spec(target_epsilon=2.5), 3000) == targeted  # deterministic
    with pytest.raises(SpecError):
        DpParams.for_spec(spec(noise_multiplier=1.0), 10)


def test_onchain_units() -> None:
    params = DpParams(noise_multiplier=1.1, sample_rate=0.021333334, max_grad_norm=0.75,
                      epochs=10, steps=470, delta=1e-5)
    onchain = params.to_onchain()
    assert onchain == DpParamsOnchain(noise_multiplier=1_100_000, sample_rate=21_333_334,
                                      steps=470, clip_norm=750_000, epochs=10)
    # ComputeJobs' struct order: noiseMultiplier, sampleRate, steps, clipNorm, epochs
    assert onchain.as_tuple() == (1_100_000, 21_333_334, 470, 750_000, 10)
    assert params.delta_fixed == 10**13
    assert DpParams.from_onchain(onchain, 10**13) == params
    assert DpParams.from_onchain(onchain.model_dump(), 10**13) == params
    with pytest.raises(ValueError):
        DpParams.from_onchain(onchain.model_copy(update={"steps": 471}), 10**13)
    with pytest.raises(ValueError):
        DpParams.from_onchain(onchain, 1e-5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # uint32 on chain
        DpParamsOnchain(noise_multiplier=2**32, sample_rate=1, steps=1, clip_norm=1, epochs=1)


BASE = {"noise_multiplier": 1.0, "sample_rate": 0.01, "max_grad_norm": 1.0, "epochs": 1,
        "steps": 100, "delta": 1e-5}


@pytest.mark.parametrize(
    "field", [{"noise_multiplier": 1.0000001}, {"sample_rate": 0.1234567891}, {"max_grad_norm": 1e-7},
              {"delta": 1e-19}, {"sample_rate": 1.5}, {"steps": 0}, {"noise_multiplier": math.nan},
              {"steps": 99}, {"epochs": 2}, {"max_grad_norm": 5000.0}],
)
def test_off_grid_or_inconsistent_params_are_refused(field: dict) -> None:
    DpParams(**BASE)
    with pytest.raises(ValueError):
        DpParams(**(BASE | field))


@settings(max_examples=100, deadline=None)
@given(
    noise=st.integers(1, 1000 * 10**6),
    rate=st.integers(10**4, 10**9),
    clip=st.integers(1, 2**32 - 1),
    epochs=st.integers(1, 1000),
    digits=st.integers(1, 10**15 - 1),  # δ with up to 15 significant digits
    exponent=st.integers(0, 3),
)
def test_fixed_point_round_trip(
    noise: int, rate: int, clip: int, epochs: int, digits: int, exponent: int
) -> None:
    steps = epochs * -(-(10**9) // rate)
    assume(steps <= MAX_STEPS)
    onchain = DpParamsOnchain(noise_multiplier=noise, sample_rate=rate, steps=steps,
                              clip_norm=clip, epochs=epochs)
    delta = digits * 10**exponent
    params = DpParams.from_onchain(onchain, delta)
    assert params.to_onchain() == onchain and params.delta_fixed == delta
    assert DpParams.from_onchain(params.to_onchain(), params.delta_fixed) == params


@settings(max_examples=100, deadline=None)
@given(delta=st.floats(1e-12, 0.999, allow_nan=False), noise=st.integers(1, 1000 * 10**6))
def test_float_params_round_trip(delta: float, noise: int) -> None:
    delta = float(f"{delta:.6g}")
    params = DpParams(noise_multiplier=noise / 10**6, sample_rate=0.01, max_grad_norm=1.0,
                      epochs=1, steps=100, delta=delta)
    assert DpParams.from_onchain(params.to_onchain(), params.delta_fixed) == params


def test_unrepresentable_onchain_delta_is_refused() -> None:
    onchain = DpParamsOnchain(noise_multiplier=1, sample_rate=10**9, steps=1, clip_norm=1,
                              epochs=1)
    with pytest.raises(ValueError):
        DpParams.from_onchain(onchain, 999_999_999_999_999_945)


def test_curve_matches_detects_tampering() -> None:
    params = DpParams.for_spec(spec(target_epsilon=3.0), 3000)
    onchain = params.to_onchain()
    curve = params.curve_fixed()
    assert curve_matches(onchain, curve)
    assert curve_matches(onchain.model_dump(), list(curve))

    for i in (0, 7, N - 1):  # a curve lowered (or raised) at any one order
        for change in (-1, 1):
            tampered = list(curve)
            tampered[i] += change
            assert not curve_matches(onchain, tampered)
    assert not curve_matches(onchain, curve[:-1])
    assert not curve_matches(onchain, [float(v) for v in curve])
    assert not curve_matches(onchain, (-1,) + curve[1:])

    for field in ("noise_multiplier", "sample_rate", "steps"):
        changed = onchain.model_copy(update={field: getattr(onchain, field) + 1})
        assert not curve_matches(changed, curve), field
    # The clip norm does not enter the curve (sensitivity is normalised); the runner checks
    # it against the spec instead.
    assert curve_matches(onchain.model_copy(update={"clip_norm": 2_000_000}), curve)
    assert not curve_matches(onchain.model_dump() | {"noise_multiplier": 0}, curve)
    assert not curve_matches({"bogus": 1}, curve)
