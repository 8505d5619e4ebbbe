"""The privacy accountant shared by the runner and the chain's privacy ledger.

Training is the Sampled Gaussian Mechanism: every step includes each row independently with
probability q (Poisson sampling), clips each row's gradient to norm C and adds Gaussian
noise of standard deviation σ·C. Its Rényi-DP curve comes from Opacus' analysis
(`compute_rdp`, Mironov et al. 2019) at the fixed list of orders `ORDERS`; curves add up
under composition, and (ε, δ) comes from the conversion Opacus uses (Balle et al. 2020,
Theorem 21):

    ε = max(0, min over i of RDP_i + ln((α_i − 1)/α_i) − (ln δ + ln α_i)/(α_i − 1))

Definitions the ledger relies on (the privacy unit is one row, add/remove adjacency):

- sample rate q = expected_batch_size / rows, rounded *up* to the chain's 1e-9 grid; the
  Poisson sampler uses exactly that q, so the figure accounts for what is run;
- steps per epoch = ceil(1 / q), computed exactly on the grid: ceil(1e9 / q_nano);
- steps = epochs × steps per epoch, and training takes exactly that many steps (an empty
  Poisson batch is still a step: its update is pure noise);
- a curve is recorded on chain as ceil(RDP_i × 1e9) per order (never rounded down), and
  ε is computed from that recorded curve, so the reported ε is what the ledger holds;
- the ledger's lanes hold 42 bits: an entry or a composed sum of RDP_SATURATED or more is
  infinite RDP at that order (the order gives no ε), exactly as ComputeJobs saturates;
- publishing charges the release of the dataset's row count: a count plus Gaussian noise of
  standard deviation σ has RDP α/(2σ²) (sensitivity 1 under add/remove of a row), recorded
  as `count_release_curve`, the same integer arithmetic as `ComputeJobs.countReleaseCurve`.

On chain the DP parameters are fixed-point integers (ComputeJobs' `DpParams` struct: noise
multiplier and clip norm in millionths, sample rate in billionths, steps, epochs) and δ is
the policy's, in 1e-18 units (as exchange.units stores it).
Every float parameter here lies exactly on that grid, so the on-chain integers and the
floats the trainer uses convert into each other without loss, and anyone can recompute
the curve from the on-chain parameters bit for bit (`curve_matches`).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exchange.errors import PrivacyError, SpecError
from exchange.units import DELTA_SCALE, EPSILON_SCALE, RDP_SATURATED, scaled

if TYPE_CHECKING:
    from exchange.ml.spec import ModelSpec

# The Rényi orders of every curve. A contract uses exactly these, in this order.
ORDERS: tuple[float, ...] = (
    1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160, 192, 256, 512, 1024,
)  # fmt: skip

CURVE_SCALE = 10**9  # RDP values on chain, in billionths
NOISE_SCALE = 10**6  # noise multiplier σ, in millionths
SAMPLE_RATE_SCALE = 10**9  # sample rate q, in billionths
CLIP_SCALE = 10**6  # clip norm C, in millionths
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
UINT16_MAX = 2**16 - 1

MAX_NOISE_MULTIPLIER = 1000.0
MAX_CLIP_NORM = UINT32_MAX / CLIP_SCALE  # 4294.967295: ComputeJobs stores C as uint32
MAX_STEPS = 10_000_000
# Rényi orders in thousandths, as provenance records write them (1.5 -> 1500).
ORDERS_FIXED: tuple[int, ...] = tuple(int(alpha * 1000) for alpha in ORDERS)

Curve = tuple[float, ...]
FixedCurve = tuple[int, ...]


# ---------------------------------------------------------------------------------------
# Curves

_OPACUS_RDP = "opacus.accountants.analysis.rdp"


@cache
def opacus_compute_rdp() -> Callable[..., Any]:
    """Opacus' own `compute_rdp`, loaded on first use without importing Opacus.

    `import opacus` imports torch and all of Opacus (seconds of CPU) for this one function,
    whose file needs only numpy and scipy.special; so the file is loaded by itself from
    Opacus' install: the same code, hence the same curve bit for bit as the runner's (which
    imports Opacus anyway, and then that module is used). Any other layout: the plain import.
    """
    if _OPACUS_RDP in sys.modules:
        return sys.modules[_OPACUS_RDP].compute_rdp  # type: ignore[no-any-return]
    try:
        return load_opacus_rdp_file()
    except (ImportError, OSError, AttributeError, SyntaxError):
        from opacus.accountants.analysis.rdp import compute_rdp

        return compute_rdp


def load_opacus_rdp_file() -> Callable[..., Any]:
    """`compute_rdp` from Opacus' analysis file, executed on its own (ImportError if absent)."""
    package = importlib.util.find_spec("opacus")  # finds the package without running it
    if package is None or package.origin is None:
        raise ImportError("Opacus is not installed.")
    path = Path(package.origin).parent / "accountants" / "analysis" / "rdp.py"
    spec = importlib.util.spec_from_file_location("exchange.ml._opacus_rdp", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot load {path}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_rdp  # type: ignore[no-any-return]


def rdp_curve(noise_multiplier: float, sample_rate: float, steps: int) -> Curve:
    """The RDP of `steps` Poisson-subsampled Gaussian steps at each of ORDERS."""
    if not (noise_multiplier > 0 and math.isfinite(noise_multiplier)):
        raise PrivacyError("The noise multiplier must be a positive finite number.")
    if not 0 < sample_rate <= 1:
        raise PrivacyError("The sample rate must lie in (0, 1].")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PrivacyError("The number of steps must be a positive whole number.")
    values = opacus_compute_rdp()(
        q=float(sample_rate), noise_multiplier=float(noise_multiplier), steps=steps,
        orders=list(ORDERS),
    )
    return tuple(float(v) for v in values)


def fixed_curve(curve: Sequence[float]) -> FixedCurve:
    """The curve as on-chain integers: ceil(RDP × 1e9) per order, exactly (via Decimal).

    Values past uint64 are recorded as the uint64 maximum: like any entry of RDP_SATURATED or
    more, they mean infinite RDP at that order. Refuses negative, NaN and infinite values.
    """
    _check_length(curve)
    fixed = []
    for value in curve:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PrivacyError("An RDP curve value is not a number; the curve cannot be recorded.")
        if not math.isfinite(value) or value < 0:
            raise PrivacyError(
                "An RDP curve value is negative, NaN or infinite; the curve cannot be recorded."
            )
        number = int((Decimal(value) * CURVE_SCALE).to_integral_value(rounding=ROUND_CEILING))
        fixed.append(min(number, UINT64_MAX))
    return tuple(fixed)


def count_release_curve(count_noise_micro: int) -> FixedCurve:
    """The fixed-point RDP curve of releasing a row count with Gaussian noise of σ =
    `count_noise_micro` / 1e6 (sensitivity 1): ceil(α/(2σ²) × 1e9) per order, uint64-capped;
    the integer arithmetic of ComputeJobs.countReleaseCurve, so it is what publishing charges."""
    if isinstance(count_noise_micro, bool) or not isinstance(count_noise_micro, int) or not 0 < count_noise_micro <= UINT32_MAX:
        raise PrivacyError("The row count's noise must be positive (and at most 4294.967295).")
    denominator = 4 * count_noise_micro * count_noise_micro
    doubled = [round(2 * alpha) for alpha in ORDERS]
    values = (-(-a * 10**21 // denominator) for a in doubled)
    return tuple(UINT64_MAX if value >= RDP_SATURATED else value for value in values)


def float_curve(curve: Sequence[int]) -> Curve:
    """An on-chain (fixed-point) curve as floats."""
    _check_fixed(curve)
    return tuple(v / CURVE_SCALE for v in curve)


def compose(curves: Iterable[Sequence[float] | Sequence[int]]) -> Curve | FixedCurve:
    """The curve of running all `curves` on the same data: the sum, order by order.

    Fixed-point curves (ints) compose exactly into a fixed-point curve, saturating as the
    ledger does (a sum of RDP_SATURATED or more is the uint64 maximum: infinite); float
    curves into a float curve. Mixing the two is refused. No curves compose to the zero curve.
    """
    curves = [tuple(c) for c in curves]
    if not curves:
        return tuple(0 for _ in ORDERS)
    kinds = {_is_fixed(c) for c in curves}
    if len(kinds) != 1:
        raise PrivacyError("Fixed-point and float RDP curves cannot be composed together.")
    if kinds == {True}:
        for c in curves:
            _check_fixed(c)
        return tuple(
            UINT64_MAX if (total := sum(values)) >= RDP_SATURATED else total for values in zip(*curves, strict=True)
        )
    for c in curves:
        _check_floats(c)
    return tuple(math.fsum(values) for values in zip(*curves, strict=True))


def epsilon(curve: Sequence[float] | Sequence[int], delta: float) -> float:
    """ε at `delta` of a curve at ORDERS (ints are read as the on-chain fixed-point form).

    ε = max(0, min_i RDP_i + ln((α_i − 1)/α_i) − (ln δ + ln α_i)/(α_i − 1)), the
    conversion Opacus' RDPAccountant uses (Balle et al. 2020), over the orders whose entry is
    below RDP_SATURATED (in nano-units; the others are infinite). Infinite if no order is finite.
    """
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyError("δ must lie strictly between 0 and 1.")
    values = float_curve(curve) if _is_fixed(curve) else _check_floats(tuple(curve))
    best = math.inf
    for alpha, rdp in zip(ORDERS, values, strict=True):
        if rdp * CURVE_SCALE >= RDP_SATURATED:
            continue
        eps = (
            rdp + math.log((alpha - 1) / alpha)
            - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        )
        best = min(best, eps)
    return max(0.0, best)


def epsilon_fixed(curve: Sequence[float] | Sequence[int], delta: float) -> int:
    """ε as the chain stores it (millionths), rounded up."""
    eps = epsilon(curve, delta)
    if not math.isfinite(eps):
        raise PrivacyError("The curve gives no finite ε; it cannot be recorded.")
    return int((Decimal(eps) * EPSILON_SCALE).to_integral_value(rounding=ROUND_CEILING))


def _is_fixed(curve: Sequence[Any]) -> bool:
    return len(curve) > 0 and all(isinstance(v, int) and not isinstance(v, bool) for v in curve)


def _check_length(curve: Sequence[Any]) -> None:
    if len(curve) != len(ORDERS):
        raise PrivacyError(
            f"An RDP curve has {len(ORDERS)} values, one per order; this one has {len(curve)}."
        )


def _check_fixed(curve: Sequence[int]) -> None:
    _check_length(curve)
    for value in curve:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
            raise PrivacyError("A fixed-point RDP curve value is outside the uint64 range.")


def _check_floats(curve: tuple[float, ...]) -> tuple[float, ...]:
    _check_length(curve)
    for value in curve:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PrivacyError("An RDP curve value is not a number.")
        if math.isnan(value) or value < 0:
            raise PrivacyError("An RDP curve value is negative or NaN.")
    return tuple(float(v) for v in curve)


# ---------------------------------------------------------------------------------------
# Planning: sample rate, steps, noise


def sample_rate_for(expected_batch_size: int, rows: int) -> float:
    """q = expected_batch_size / rows, rounded up to the chain's 1e-9 grid."""
    if rows < 1:
        raise SpecError("The dataset has no rows to train on.")
    if expected_batch_size > rows:
        raise SpecError(
            f"The expected batch size ({expected_batch_size}) is larger than the dataset's "
            f"{rows} rows; choose at most {rows}."
        )
    nano = -(-expected_batch_size * SAMPLE_RATE_SCALE // rows)
    return nano / SAMPLE_RATE_SCALE


def steps_per_epoch(sample_rate: float) -> int:
    """ceil(1 / q), exactly, for a q on the 1e-9 grid."""
    nano = scaled(repr(float(sample_rate)), SAMPLE_RATE_SCALE, "the sample rate")
    if not 0 < nano <= SAMPLE_RATE_SCALE:
        raise PrivacyError("The sample rate must lie in (0, 1].")
    return -(-SAMPLE_RATE_SCALE // nano)


def steps_for(sample_rate: float, epochs: int) -> int:
    """steps = epochs × ceil(1 / q): the exact number of steps training takes."""
    return epochs * steps_per_epoch(sample_rate)


def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier on the chain's 1e-6 grid whose ε is at most the target.

    ε is computed as the ledger will record it: from the fixed-point curve at ORDERS. A
    binary search over whole millionths; PrivacyError if even σ = 1000 does not reach it.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise PrivacyError("The target ε must be a positive finite number.")

    def fits(micro: int) -> bool:
        try:
            curve = fixed_curve(rdp_curve(micro / NOISE_SCALE, sample_rate, steps))
        except PrivacyError:  # the curve overflows: far too little noise
            return False
        return epsilon(curve, delta) <= target_epsilon

    top = int(MAX_NOISE_MULTIPLIER * NOISE_SCALE)
    hi = NOISE_SCALE  # σ = 1
    while not fits(hi):
        if hi >= top:
            raise PrivacyError(
                f"No noise multiplier up to {MAX_NOISE_MULTIPLIER:g} reaches ε {target_epsilon:g} "
                "with these parameters; raise the target ε, or train fewer epochs or with a "
                "smaller batch."
            )
        hi = min(2 * hi, top)
    lo = 0  # σ = 0 never fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi / NOISE_SCALE


# ---------------------------------------------------------------------------------------
# DP parameters, on and off chain


class DpParamsOnchain(BaseModel):
    """The DP parameters as ComputeJobs stores them (its `DpParams` struct), all integers.

    δ is not part of it: it is the dataset policy's δ (1e-18 units, `DpParams.delta_fixed`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    noise_multiplier: int = Field(ge=1, le=UINT32_MAX)  # σ in millionths
    sample_rate: int = Field(ge=1, le=SAMPLE_RATE_SCALE)  # q in billionths
    steps: int = Field(ge=1, le=UINT32_MAX)
    clip_norm: int = Field(ge=1, le=UINT32_MAX)  # C in millionths
    epochs: int = Field(ge=1, le=UINT16_MAX)

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """The struct in field order: (noiseMultiplier, sampleRate, steps, clipNorm, epochs)."""
        return (self.noise_multiplier, self.sample_rate, self.steps, self.clip_norm, self.epochs)


class DpParams(BaseModel):
    """The DP parameters of one training run; every float lies exactly on the chain's grid.

    `steps` must be `epochs × ceil(1/q)`: the number of steps training takes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    noise_multiplier: float = Field(gt=0, le=MAX_NOISE_MULTIPLIER)
    sample_rate: float = Field(gt=0, le=1)
    max_grad_norm: float = Field(gt=0, le=MAX_CLIP_NORM)
    epochs: int = Field(ge=1, le=UINT16_MAX)
    steps: int = Field(ge=1, le=MAX_STEPS)
    delta: float = Field(gt=0, lt=1)

    @field_validator("noise_multiplier", "max_grad_norm")
    @classmethod
    def _millionths(cls, value: float) -> float:
        _grid(value, NOISE_SCALE)
        return value

    @field_validator("sample_rate")
    @classmethod
    def _billionths(cls, value: float) -> float:
        _grid(value, SAMPLE_RATE_SCALE)
        return value

    @field_validator("delta")
    @classmethod
    def _atto(cls, value: float) -> float:
        _grid(value, DELTA_SCALE)
        return value

    @model_validator(mode="after")
    def _steps_follow(self) -> DpParams:
        if self.steps != steps_for(self.sample_rate, self.epochs):
            raise ValueError("steps must be epochs × ceil(1 / sample_rate)")
        return self

    @classmethod
    def for_spec(cls, spec: ModelSpec, rows: int) -> DpParams:
        """The parameters a spec trains with on a dataset of `rows` rows (the public count).

        Deterministic: the requester and the runner compute the same integers. With a
        target ε, the noise is the smallest on the grid that reaches it (`noise_for_target`).
        """
        q = sample_rate_for(spec.expected_batch_size, rows)
        steps = steps_for(q, spec.total_epochs)
        if steps > MAX_STEPS:
            raise SpecError(
                f"The spec would train for {steps:,} steps, more than the {MAX_STEPS:,} a runner "
                "takes; train fewer epochs or with a larger batch."
            )
        dp = spec.dp
        if dp.noise_multiplier is not None:
            noise = dp.noise_multiplier
        else:
            assert dp.target_epsilon is not None
            noise = noise_for_target(dp.target_epsilon, dp.delta, q, steps)
        return cls(
            noise_multiplier=noise, sample_rate=q, max_grad_norm=dp.max_grad_norm,
            epochs=spec.total_epochs, steps=steps, delta=dp.delta,
        )

    def per_round(self, rounds: int) -> DpParams:
        """The parameters of one of `rounds` equal rounds: the same σ, q and C, a share of the
        epochs and steps. RDP composes additively in steps, so the rounds' curves sum to this
        job's curve exactly: the ledger charges what the rounds run."""
        if rounds < 1 or self.epochs % rounds:
            raise PrivacyError(f"{self.epochs} epochs do not split into {rounds} equal rounds.")
        epochs = self.epochs // rounds
        return self.model_copy(update={"epochs": epochs, "steps": steps_for(self.sample_rate, epochs)})

    def to_onchain(self) -> DpParamsOnchain:
        return DpParamsOnchain(
            noise_multiplier=_to_int(self.noise_multiplier, NOISE_SCALE),
            sample_rate=_to_int(self.sample_rate, SAMPLE_RATE_SCALE),
            steps=self.steps,
            clip_norm=_to_int(self.max_grad_norm, CLIP_SCALE),
            epochs=self.epochs,
        )

    @property
    def delta_fixed(self) -> int:
        """δ in the chain's 1e-18 units."""
        return _to_int(self.delta, DELTA_SCALE)

    @classmethod
    def from_onchain(
        cls, onchain: DpParamsOnchain | Mapping[str, int], delta_fixed: int
    ) -> DpParams:
        """The parameters from the job's on-chain struct and the policy's δ (1e-18 units).

        ValueError if they are inconsistent (steps ≠ epochs × ceil(1/q)) or do not convert
        back exactly. Every value a DpParams produces round-trips; an on-chain δ with more
        significant digits than a float holds (about 16) does not, and is refused.
        """
        if not isinstance(onchain, DpParamsOnchain):
            onchain = DpParamsOnchain.model_validate(dict(onchain))
        if isinstance(delta_fixed, bool) or not isinstance(delta_fixed, int):
            raise ValueError("δ must be given in 1e-18 units, as an integer")
        params = cls(
            noise_multiplier=onchain.noise_multiplier / NOISE_SCALE,
            sample_rate=onchain.sample_rate / SAMPLE_RATE_SCALE,
            max_grad_norm=onchain.clip_norm / CLIP_SCALE,
            epochs=onchain.epochs,
            steps=onchain.steps,
            delta=delta_fixed / DELTA_SCALE,
        )
        if params.to_onchain() != onchain or params.delta_fixed != delta_fixed:
            raise ValueError("the on-chain DP parameters are not exactly representable")
        return params

    def curve(self) -> Curve:
        return rdp_curve(self.noise_multiplier, self.sample_rate, self.steps)

    def curve_fixed(self) -> FixedCurve:
        return fixed_curve(self.curve())

    def epsilon(self) -> float:
        """ε at this run's δ, from the fixed-point curve the ledger records."""
        return epsilon(self.curve_fixed(), self.delta)


def _grid(value: float, scale: int) -> None:
    try:
        scaled(repr(float(value)), scale, "the value")
    except ValueError:
        raise ValueError(
            f"must be a multiple of 1/{scale}, the precision the chain stores"
        ) from None


def _to_int(value: float, scale: int) -> int:
    return scaled(repr(float(value)), scale, "a DP parameter")


def curve_matches(
    params_onchain: DpParamsOnchain | Mapping[str, int], curve_onchain: Sequence[int]
) -> bool:
    """Whether `curve_onchain` is exactly the fixed-point curve of `params_onchain`.

    The runner recomputes the curve from the job's on-chain noise multiplier, sample rate
    and steps, and refuses a job whose recorded curve differs at any order (or is
    malformed): a curve below the honest one would let a job spend less budget than it
    uses. (The clip norm does not enter the curve; that steps = epochs × ceil(1/q) is
    checked by `DpParams.from_onchain`, and everything against the spec by `train`.)
    """
    try:
        if not isinstance(params_onchain, DpParamsOnchain):
            params_onchain = DpParamsOnchain.model_validate(dict(params_onchain))
        recorded = tuple(curve_onchain)
        _check_fixed(recorded)
        honest = fixed_curve(rdp_curve(
            params_onchain.noise_multiplier / NOISE_SCALE,
            params_onchain.sample_rate / SAMPLE_RATE_SCALE,
            params_onchain.steps,
        ))
        return honest == recorded
    except (PrivacyError, ValidationError, ValueError, TypeError):
        return False
