"""An empirical privacy audit of the runner's DP training, run by the owner before selling.

One training run, many canaries, in the style of Steinke, Nasr and Jagielski, "Privacy
Auditing with One (1) Training Run" (NeurIPS 2023, arXiv:2305.08846):

1. Craft `m` canary rows from the dataset's public schema alone (`craft_canaries`): every
   numeric or datetime feature at one end of its published range, chosen at random (a corner
   of the encoded input cube, far from real rows and from one another), every boolean and
   categorical feature and the target drawn uniformly at random. Each canary is thus a
   distinctive input-space point with a random ("mislabelled") target, which the model can
   fit only by memorising that one row: the usual canary for a black-box audit of DP-SGD,
   where only the final model is seen. A random target carries no pattern a model could
   learn from the other canaries, so an excluded canary's fit is chance.
2. Include each canary independently with probability ½, from the operating system's
   entropy, and train once with the runner's own training function,
   `compute_to_data.training.train(spec, table + included canaries, schema, device,
   public_rows=rows, seed=None)`: the same checks, encoding, Opacus loop, Poisson sampling,
   clipping and noise as a job gets. The public row count that sets the sample rate
   (q = expected_batch_size / rows) is fixed before any canary is drawn, by default the
   table's rows plus half the canaries (what is expected to be trained on), so q and the
   steps do not depend on which canaries are in: exactly the mechanism the accountant
   analyses. The claimed ε is the spec's on that count, computed as the runner computes it
   (`DpParams.for_spec(spec, rows).epsilon()`), and reported with the DP parameters.
3. Score every canary with the trained module (`score_canaries`): its loss under the
   spec's loss, negated and put on a logit scale (for cross-entropy −log(e^loss − 1), the
   margin of its label's logit over the others, computed from the logits in float64). It
   orders canaries exactly as the negative loss does, without the float32 saturation of
   tiny losses; included canaries tend to score higher.
4. Guess "in" for the k+ highest scores and "out" for the k− lowest, abstain on the rest,
   and count the correct guesses v among the r = k+ + k− made. Under (ε, δ)-DP the count is
   bounded as in the paper (see `p_value`), which turns v into an ε lower bound at the
   stated confidence (`epsilon_lower_bound`). The plans in `GUESS_PLANS` (r a share of m;
   all "out", or half and half) are all tried, each at confidence 1 − (1 − c)/len(plans)
   (Bonferroni), so the best bound is valid at confidence c. "Out" guesses carry most of
   the signal here: an excluded canary's random label disagrees with the model half the
   time, and such a canary scores lower than any canary the model has learnt, while half the
   excluded canaries agree with the model by chance and crowd the top of the ranking.

The bound is a lower bound: a sound DP implementation keeps it below the claimed ε (except
with probability at most 1 − confidence), while a broken one (no noise, no clipping, a
leak) can push it above. A black-box audit of DP-SGD from the final model is far from tight,
so a bound well below the claim says the implementation is not grossly broken, not that the
claim is tight. Its power depends on the spec and the schema: a model too small to memorise
random labels shows little even without noise (on the demo's breast-cancer spec, 16 hidden
units and 15 epochs, training with no noise and no clipping gives a bound of only about 2 to
2.9 with 1000 canaries), and with only a handful of numeric features there are few far-apart
corners, so the canaries crowd together. The audit trains in this process, not in the
runner's sandbox, which confines the training but does not change what it computes.

Nothing the audit computes leaves the owner's machine: `audit` returns a report and writes
nothing; the CLI (`cove audit`, compute_to_data.audit_cmd) prints it to the owner's terminal.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from exchange.datasets.schema import KIND_DTYPES, ColumnSchema, DatasetSchema, check_kinds
from exchange.errors import InputError, PrivacyError
from exchange.ml.accounting import DpParams
from exchange.ml.model import encode_features, encode_target
from exchange.ml.spec import ModelSpec, target_classes

DEFAULT_CANARIES = 1000
DEFAULT_CONFIDENCE = 0.95
MIN_CANARIES = 10
MAX_CANARIES = 1_000_000
# The guess plans tried: (share of the canaries guessed, share of those guesses that are "in").
# Each is tested at confidence 1 − (1 − c)/len(GUESS_PLANS), so the best is valid at c.
GUESS_PLANS: tuple[tuple[float, float], ...] = tuple(
    (fraction, share_in) for fraction in (0.05, 0.1, 0.2, 0.5) for share_in in (0.0, 0.5)
)
_BISECTION_STEPS = 60

# The stages `audit` reports to its `progress` callback, in order.
STAGES: tuple[str, ...] = (
    "crafting canaries",
    "training with the runner's DP training",
    "scoring the canaries",
    "computing the bound",
)
RUNNER_TRAINING = "compute_to_data.training.train (seed=None)"

# (spec, table, schema, public rows, device) -> (the trained module, the ε the training
# reports, or None for a training that reports none).
Trainer = Callable[
    [ModelSpec, pd.DataFrame, DatasetSchema, int, "str | torch.device | None"], "tuple[nn.Module, float | None]"
]
Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------
# The bound (Steinke, Nasr and Jagielski 2023)


def p_value(canaries: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[at least `correct` of `guesses` guesses are right] under (ε, δ)-DP: the paper's bound.

    With m canaries each included independently with probability ½ and r guesses (the rest
    abstentions), the number of correct guesses W of an (ε, δ)-DP algorithm satisfies, for
    q = e^ε / (1 + e^ε) (Theorem 5.2 / Corollary 5.4, computed as in their Appendix D):

        P[W ≥ v] ≤ β + 2mδ · α,   β = P[Binomial(r, q) ≥ v],
        α = max over i in 1..v of P[v − i ≤ Binomial(r, q) < v] / i.

    For δ = 0 this is the pure-DP statement: W is stochastically dominated by Binomial(r, q).
    """
    m, r, v = _counts(canaries, guesses, correct)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise InputError("ε must be a finite number of at least 0.")
    if not 0 <= delta <= 1:
        raise InputError("δ must lie between 0 and 1.")
    if v == 0:
        return 1.0
    from scipy.stats import binom  # scipy comes with scikit-learn

    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(binom.sf(v - 1, r, q))
    alpha = 0.0
    if delta > 0:
        # P[v - i <= Binomial(r, q) < v] for i = 1..v, each divided by i.
        below = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, q))
        alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(
    canaries: int, guesses: int, correct: int, delta: float, confidence: float = DEFAULT_CONFIDENCE
) -> float:
    """The largest ε that `correct` right guesses out of `guesses` refute at `confidence`.

    That is sup{ε : p_value(m, r, v, ε, δ) < 1 − confidence}, found by bisection (the p-value
    grows with ε); 0 when even ε = 0 is not refuted. The lower end of the final bracket is
    returned, so the bound never overstates. As in the paper's `get_eps_audit`.
    """
    m, r, v = _counts(canaries, guesses, correct)
    _check_confidence(confidence)
    level = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < level:
        low, high = high, 2 * high
        if high > 1e6:  # all guesses right and δ = 0 with a tiny level: no finite answer needed
            return low
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if p_value(m, r, v, middle, delta) < level:
            low = middle
        else:
            high = middle
    return low


def auc(scores: Sequence[float] | np.ndarray, included: Sequence[bool] | np.ndarray) -> float:
    """The area under the ROC curve of `scores` for telling included canaries from the rest.

    The Mann-Whitney statistic: the chance that a random included canary scores above a random
    excluded one, ties counting ½. 0.5 when either group is empty (no signal can be measured).
    """
    values = np.asarray(scores, dtype=np.float64)
    members = np.asarray(included, dtype=bool)
    if values.shape != members.shape or values.ndim != 1:
        raise InputError("The scores and the inclusion flags must be two lists of the same length.")
    positives, negatives = int(members.sum()), int((~members).sum())
    if positives == 0 or negatives == 0:
        return 0.5
    from scipy.stats import rankdata

    ranks = rankdata(values)  # average ranks: ties count ½
    return float((ranks[members].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def correct_guesses(scores: np.ndarray, included: np.ndarray, guesses_in: int, guesses_out: int,
                    rng: np.random.Generator) -> int:  # fmt: skip
    """How many guesses are right when "in" is guessed for the `guesses_in` highest scores and
    "out" for the `guesses_out` lowest (ties broken at random)."""
    scores, included = np.asarray(scores, dtype=np.float64), np.asarray(included, dtype=bool)
    if min(guesses_in, guesses_out) < 0 or guesses_in + guesses_out > len(scores):
        raise InputError("The guesses must number at most the canaries, none of them negative.")
    shuffled = rng.permutation(len(scores))
    order = shuffled[np.argsort(-scores[shuffled], kind="stable")]  # highest first
    right_in = int(included[order[:guesses_in]].sum())
    right_out = int((~included[order[len(order) - guesses_out:]]).sum())
    return right_in + right_out


def guess_plans(canaries: int) -> tuple[tuple[int, int], ...]:
    """The (k+, k−) guess counts of `GUESS_PLANS` for `canaries` canaries, without repeats."""
    plans: list[tuple[int, int]] = []
    for fraction, share_in in GUESS_PLANS:
        total = max(1, round(fraction * canaries))
        guesses_in = round(share_in * total)
        plan = (guesses_in, total - guesses_in)
        if plan not in plans:
            plans.append(plan)
    return tuple(plans)


# ---------------------------------------------------------------------------------------
# Canaries


def craft_canaries(schema: DatasetSchema, spec: ModelSpec, count: int,
                   rng: np.random.Generator) -> pd.DataFrame:  # fmt: skip
    """`count` canary rows for `spec` on `schema`, from the public schema alone.

    Numeric and datetime columns sit at their minimum or maximum (random), booleans and
    categories are uniform, no cell is missing; the target is uniform over the classes
    (classification) or at either end of its range (regression), independently of the
    features: each canary is a far-out point with a random label. Columns the spec does not
    use are filled the same way (only so the table matches the schema).
    """
    columns = {}
    for column in schema.columns:
        if column.name == spec.target and spec.task == "classification":
            classes = target_classes(column)
            labels = np.array(classes, dtype=object)[rng.integers(0, len(classes), count)]
            if column.kind == "boolean":
                labels = labels == "true"
            columns[column.name] = pd.Series(labels, dtype=KIND_DTYPES[column.kind], name=column.name)
        else:
            columns[column.name] = _corner_column(column, count, rng)
    return pd.DataFrame(columns, index=pd.RangeIndex(count))


def _corner_column(column: ColumnSchema, count: int, rng: np.random.Generator) -> pd.Series:
    ends = rng.random(count) < 0.5
    if column.kind == "boolean":
        values: Any = ends
    elif column.kind == "categorical":
        categories = np.array(column.categories or [], dtype=object)
        values = categories[rng.integers(0, len(categories), count)]
    elif column.kind == "datetime":
        low, high = pd.Timestamp(column.minimum), pd.Timestamp(column.maximum)
        values = [low if end else high for end in ends]
    else:
        values = np.where(ends, column.minimum, column.maximum)
    return pd.Series(values, dtype=KIND_DTYPES[column.kind], name=column.name)


def _with_canaries(frame: pd.DataFrame, canaries: pd.DataFrame) -> pd.DataFrame:
    """The owner's table with the canaries appended, each column keeping the table's dtype."""
    canaries = canaries.reset_index(drop=True)
    cast = pd.DataFrame({name: _as_dtype(canaries[name], frame[name].dtype) for name in frame.columns})
    return pd.concat([frame.reset_index(drop=True), cast], ignore_index=True)


def _as_dtype(series: pd.Series, dtype: Any) -> pd.Series:
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series


# ---------------------------------------------------------------------------------------
# Scoring


def score_canaries(module: nn.Module, spec: ModelSpec, schema: DatasetSchema,
                   canaries: pd.DataFrame) -> np.ndarray:  # fmt: skip
    """Each canary's score under `module`: its negative loss (the spec's), on a logit scale.

    cross_entropy: the label's logit minus the log-sum-exp of the others, which is
    −log(e^loss − 1); bce: the logit signed by the label, likewise; mse: the negative squared
    error. Each is a strictly increasing function of the negative loss, so it ranks canaries
    exactly as the loss does, but computed from the logits in float64 it does not saturate
    where float32 rounds tiny losses to zero.
    """
    features = encode_features(spec, schema, canaries)
    targets, usable = encode_target(spec, schema, canaries)
    if not usable.all():  # crafted canaries always have a target; guard all the same
        raise PrivacyError("A canary has no usable target; the audit cannot score it.")
    module = module.to("cpu").eval()
    with torch.no_grad():
        outputs = module(features).double()
    if spec.loss == "cross_entropy":
        own = outputs.gather(1, targets[:, None]).squeeze(1)
        others = outputs.masked_fill(nn.functional.one_hot(targets, outputs.shape[1]).bool(), -math.inf)
        scores = own - torch.logsumexp(others, dim=1)
    elif spec.loss == "bce":
        scores = (2 * targets.double() - 1) * outputs.squeeze(-1)
    else:
        scores = -((outputs.squeeze(-1) - targets.double()) ** 2)
    return scores.numpy()


# ---------------------------------------------------------------------------------------
# The audit


@dataclass(frozen=True)
class GuessPlan:
    """One plan tried: "in" for the `guesses_in` highest scores, "out" for the `guesses_out`
    lowest; `correct` of them right; the ε lower bound it gives at the corrected confidence."""

    guesses_in: int
    guesses_out: int
    correct: int
    epsilon_lower_bound: float

    @property
    def guesses(self) -> int:
        return self.guesses_in + self.guesses_out


@dataclass(frozen=True)
class AuditReport:
    """What the audit found; the owner's alone (it is computed on private rows)."""

    claimed_epsilon: float  # the spec's ε on `public_rows`: the training's (ledger) figure
    delta: float
    epsilon_lower_bound: float  # the empirical lower bound at `confidence` (best plan)
    confidence: float
    auc: float  # of the scores, over all canaries
    canaries: int
    included: int
    guesses: int  # made by the best plan (k+ + k−)
    guesses_in: int
    guesses_out: int
    correct: int
    table_rows: int  # the owner's table
    rows_trained: int  # the table plus the included canaries
    public_rows: int  # the row count that set the sample rate (fixed before the draw)
    noise_multiplier: float
    sample_rate: float
    steps: int
    epochs: int
    max_grad_norm: float
    training: str  # what trained the model: the runner's training, or a test's control
    seconds: float
    plans: tuple[GuessPlan, ...] = field(default_factory=tuple)

    @property
    def violated(self) -> bool:
        """Whether the bound exceeds the claim: the training is not as private as claimed."""
        return self.epsilon_lower_bound > self.claimed_epsilon

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plans"] = [asdict(plan) | {"guesses": plan.guesses} for plan in self.plans]
        data["violated"] = self.violated
        return data


def audit(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    spec: ModelSpec,
    *,
    canaries: int = DEFAULT_CANARIES,
    confidence: float = DEFAULT_CONFIDENCE,
    public_rows: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit the runner's DP training of `spec` on the owner's `frame`; nothing is released.

    `schema`: the declared schema the runner trains with. `canaries`: how many canary rows
    (each included with probability ½). `confidence`: of the lower bound. `public_rows`: the
    row count that sets the sample rate [default: the table's rows plus half the canaries].
    `device`: as for training [default: cuda when available, else cpu]. `progress`: called
    with each of `STAGES` as it starts.

    Raises InputError (bad arguments), SpecError or PrivacyError (the spec does not fit the
    schema or the row count, checked before any row is read), DatasetError (the table's
    columns or kinds are not the schema's) and TrainingError (stage only), as training does.
    """
    return _audit(frame, schema, spec, trainer=_runner_training, training=RUNNER_TRAINING,
                  canaries=canaries, confidence=confidence, public_rows=public_rows,
                  device=device, progress=progress)  # fmt: skip


def _runner_training(spec: ModelSpec, table: pd.DataFrame, schema: DatasetSchema, rows: int,
                     device: str | torch.device | None) -> tuple[nn.Module, float]:  # fmt: skip
    """Exactly what a job gets: the runner's training function, unseeded; with the ε it
    reports (the figure the ledger records)."""
    from compute_to_data.training import train

    result = train(spec, table, schema, device, public_rows=rows, seed=None)
    if result.dp != DpParams.for_spec(spec, rows) or result.seeded:
        raise PrivacyError("The training did not run with the audited DP parameters; the audit stops.")
    return result.module, result.epsilon


def _audit(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    spec: ModelSpec,
    *,
    trainer: Trainer,
    training: str,
    canaries: int,
    confidence: float,
    public_rows: int | None,
    device: str | torch.device | None,
    progress: Progress | None,
) -> AuditReport:
    """`audit` with the training step given. Only `audit` (the runner's training) is for
    use; tests pass another trainer as a positive control, and `training` names it in the
    report."""
    started = time.monotonic()
    report = progress or (lambda stage: None)
    _check_canaries(canaries)
    _check_confidence(confidence)
    rows = len(frame) + canaries // 2 if public_rows is None else public_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError("The public row count must be a positive whole number.")
    spec.check_against(schema)
    params = DpParams.for_spec(spec, rows)  # public checks, before any row is read
    claimed = params.epsilon()  # as the runner computes it; the training's own figure wins
    check_kinds(frame, schema)  # DatasetError naming a column, never a value

    report(STAGES[0])
    rng = np.random.default_rng(secrets.randbits(128))  # OS entropy, never recorded
    crafted = craft_canaries(schema, spec, canaries, rng)
    included = rng.random(canaries) < 0.5
    table = _with_canaries(frame, crafted.loc[included])

    report(STAGES[1])
    module, reported = trainer(spec, table, schema, rows, device)
    del table
    if reported is not None:
        claimed = reported

    report(STAGES[2])
    scores = score_canaries(module, spec, schema, crafted)

    report(STAGES[3])
    plans = guess_plans(canaries)
    level = 1.0 - (1.0 - confidence) / len(plans)  # Bonferroni over the plans
    tried = []
    for guesses_in, guesses_out in plans:
        correct = correct_guesses(scores, included, guesses_in, guesses_out, rng)
        bound = epsilon_lower_bound(canaries, guesses_in + guesses_out, correct, params.delta, level)
        tried.append(GuessPlan(guesses_in, guesses_out, correct, bound))
    best = max(tried, key=lambda plan: (plan.epsilon_lower_bound, -plan.guesses))
    return AuditReport(
        claimed_epsilon=claimed,
        delta=params.delta,
        epsilon_lower_bound=best.epsilon_lower_bound,
        confidence=confidence,
        auc=auc(scores, included),
        canaries=canaries,
        included=int(included.sum()),
        guesses=best.guesses,
        guesses_in=best.guesses_in,
        guesses_out=best.guesses_out,
        correct=best.correct,
        table_rows=len(frame),
        rows_trained=len(frame) + int(included.sum()),
        public_rows=rows,
        noise_multiplier=params.noise_multiplier,
        sample_rate=params.sample_rate,
        steps=params.steps,
        epochs=params.epochs,
        max_grad_norm=params.max_grad_norm,
        training=training,
        seconds=round(time.monotonic() - started, 3),
        plans=tuple(tried),
    )


def _counts(canaries: int, guesses: int, correct: int) -> tuple[int, int, int]:
    values = (canaries, guesses, correct)
    if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in values):
        raise InputError("The numbers of canaries, guesses and correct guesses must be whole numbers.")
    m, r, v = (int(x) for x in values)
    if not 0 <= v <= r <= m:
        raise InputError("Need 0 ≤ correct guesses ≤ guesses ≤ canaries.")
    return m, r, v


def _check_canaries(canaries: int) -> None:
    if isinstance(canaries, bool) or not isinstance(canaries, int) \
            or not MIN_CANARIES <= canaries <= MAX_CANARIES:  # fmt: skip
        raise InputError(
            f"The number of canaries must be a whole number from {MIN_CANARIES} to {MAX_CANARIES:,}."
        )


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0 < confidence < 1:  # fmt: skip
        raise InputError("The confidence must lie strictly between 0 and 1, e.g. 0.95.")
