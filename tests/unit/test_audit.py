"""The owner's privacy audit: the bound is the paper's, the attack can fail a leaky training
(positive control: no noise, no clipping) and does not fail the runner's DP training."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from compute_to_data import audit as audit_module
from compute_to_data import training
from compute_to_data.audit import (
    GUESS_PLANS,
    RUNNER_TRAINING,
    AuditReport,
    auc,
    audit,
    correct_guesses,
    craft_canaries,
    epsilon_lower_bound,
    guess_plans,
    p_value,
    score_canaries,
)
from exchange.datasets.schema import ColumnSchema, DatasetSchema, check_frame, draft_schema
from exchange.errors import InputError, SpecError
from exchange.ml.accounting import DpParams
from exchange.ml.model import build_model, encode_features, encode_target
from exchange.ml.spec import ModelSpec

FEATURES = [f"f{i}" for i in range(40)]


# ---------------------------------------------------------------------------------------
# The bound


def test_the_bound_reproduces_the_papers_published_example() -> None:
    # Steinke, Nasr & Jagielski, arXiv:2305.08846v1, Appendix D: m=1000, r=100, v=75,
    # δ=1e-4, p=0.05 gives ε ≥ 0.673.
    assert epsilon_lower_bound(1000, 100, 75, 1e-4, 0.95) == pytest.approx(0.673, abs=5e-4)


def test_with_all_guesses_right_the_bound_grows_with_the_number_of_guesses() -> None:
    bounds = [epsilon_lower_bound(1000, r, r, 1e-5, 0.95) for r in (10, 20, 50, 100, 200, 500, 1000)]
    assert all(a < b for a, b in pairwise(bounds)), bounds
    assert bounds[0] > 0.5 and bounds[-1] > 5


def test_guessing_no_better_than_chance_gives_no_bound() -> None:
    for r in (10, 100, 1000):
        assert epsilon_lower_bound(1000, r, r // 2, 1e-5, 0.95) == 0.0
    assert epsilon_lower_bound(1000, 100, 20, 1e-5, 0.95) == 0.0  # worse than chance
    assert epsilon_lower_bound(1000, 0, 0, 1e-5, 0.95) == 0.0  # all abstentions


def test_the_bound_shrinks_as_the_confidence_or_delta_grows() -> None:
    by_confidence = [epsilon_lower_bound(1000, 200, 170, 1e-5, c) for c in (0.5, 0.9, 0.95, 0.99, 0.999)]
    assert all(a > b for a, b in pairwise(by_confidence)), by_confidence
    by_delta = [epsilon_lower_bound(1000, 200, 170, d, 0.95) for d in (0.0, 1e-6, 1e-4, 1e-3)]
    assert all(a >= b for a, b in pairwise(by_delta)) and by_delta[0] > by_delta[-1], by_delta


def test_for_pure_dp_the_count_is_dominated_by_a_binomial() -> None:
    eps = 1.3
    q = math.exp(eps) / (1 + math.exp(eps))
    assert p_value(500, 40, 31, eps, 0.0) == pytest.approx(binom.sf(30, 40, q), rel=1e-12)
    assert p_value(500, 40, 40, eps, 0.0) == pytest.approx(q**40, rel=1e-9)
    # δ only adds: 2mδ·α on top of the binomial tail
    assert p_value(500, 40, 31, eps, 1e-3) > p_value(500, 40, 31, eps, 0.0)
    assert p_value(500, 40, 0, eps, 1e-3) == 1.0


def test_the_bound_is_where_the_p_value_crosses_the_level() -> None:
    bound = epsilon_lower_bound(1000, 200, 170, 1e-5, 0.95)
    assert p_value(1000, 200, 170, bound, 1e-5) < 0.05 <= p_value(1000, 200, 170, bound + 1e-6, 1e-5)


def test_the_bound_refuses_impossible_counts() -> None:
    with pytest.raises(InputError):
        epsilon_lower_bound(100, 10, 11, 1e-5, 0.95)
    with pytest.raises(InputError):
        epsilon_lower_bound(100, 200, 10, 1e-5, 0.95)
    with pytest.raises(InputError):
        epsilon_lower_bound(100, 10, 5, 1e-5, 1.0)


# ---------------------------------------------------------------------------------------
# AUC and guesses


def test_auc_matches_scikit_learn_and_its_extremes() -> None:
    rng = np.random.default_rng(0)
    included = rng.random(300) < 0.5
    scores = rng.normal(size=300) + included
    scores[:20] = 0.0  # some ties
    assert auc(scores, included) == pytest.approx(roc_auc_score(included, scores), abs=1e-12)
    assert auc([3.0, 2.0, 1.0, 0.0], [True, True, False, False]) == 1.0
    assert auc([0.0, 1.0, 2.0, 3.0], [True, True, False, False]) == 0.0
    assert auc([1.0, 1.0, 1.0, 1.0], [True, False, True, False]) == 0.5
    assert auc([1.0, 2.0], [True, True]) == 0.5  # no excluded canary: nothing to tell apart


def test_guesses_are_in_for_the_highest_and_out_for_the_lowest() -> None:
    rng = np.random.default_rng(0)
    scores = np.array([9.0, 8.0, 7.0, 1.0, 0.0, -1.0])
    included = np.array([True, False, True, False, True, False])
    assert correct_guesses(scores, included, 1, 0, rng) == 1
    assert correct_guesses(scores, included, 2, 0, rng) == 1
    assert correct_guesses(scores, included, 0, 2, rng) == 1
    assert correct_guesses(scores, included, 0, 1, rng) == 1
    assert correct_guesses(scores, included, 3, 3, rng) == 4  # in: 9, 7 right; out: 1, -1 right
    with pytest.raises(InputError):
        correct_guesses(scores, included, 4, 3, rng)


def test_the_guess_plans_are_fixed_before_the_scores_are_seen() -> None:
    plans = guess_plans(1000)
    assert len(plans) == len(GUESS_PLANS)
    assert (0, 50) in plans and (25, 25) in plans and (0, 500) in plans
    assert all(k_in + k_out <= 1000 for k_in, k_out in plans)
    assert all(k_in + k_out >= 1 for k_in, k_out in guess_plans(10))


# ---------------------------------------------------------------------------------------
# Canaries and scores


def _all_kinds_schema() -> DatasetSchema:
    return DatasetSchema(columns=[
        ColumnSchema(name="age", kind="integer", nullable=True, minimum=0, maximum=120),
        ColumnSchema(name="bmi", kind="float", nullable=False, minimum=10.0, maximum=60.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=False),
        ColumnSchema(name="group", kind="categorical", nullable=True, categories=["a", "b", "c"]),
        ColumnSchema(name="seen", kind="datetime", nullable=False,
                     minimum=datetime(2020, 1, 1, tzinfo=UTC), maximum=datetime(2024, 1, 1, tzinfo=UTC)),
        ColumnSchema(name="note", kind="categorical", nullable=False, categories=["x", "y"]),
        ColumnSchema(name="outcome", kind="categorical", nullable=False, categories=["bad", "good", "ok"]),
    ])  # fmt: skip


def _spec(features: list[str], target: str, **changes: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "task": "classification", "features": features, "target": target,
        "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"}, {"type": "Linear", "out_features": 3}],
        "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.02, "expected_batch_size": 64,
        "epochs": 3, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }  # fmt: skip
    data.update(changes)
    return ModelSpec.parse(data)


def test_canaries_are_far_out_rows_of_the_schema_with_random_labels() -> None:
    schema = _all_kinds_schema()
    spec = _spec(["age", "bmi", "smoker", "group", "seen"], "outcome")
    canaries = craft_canaries(schema, spec, 500, np.random.default_rng(1))
    check_frame(canaries, schema)  # every kind, range and category as declared
    assert len(canaries) == 500 and not canaries.isna().any().any()
    encoded = encode_features(spec, schema, canaries).numpy()
    numeric = [spec.input_columns(schema).index(name) for name in ("age", "bmi", "seen")]
    assert set(np.unique(encoded[:, numeric])) == {-1.0, 1.0}  # the ends of each range
    assert len(np.unique(encoded, axis=0)) == 2 * 2 * 2 * 3 * 2  # every corner of this small schema
    counts = canaries["outcome"].value_counts()
    assert set(counts.index) == {"bad", "good", "ok"} and counts.min() > 120  # uniform labels


def test_canaries_join_the_table_without_changing_its_dtypes() -> None:
    table = make_classification_table(50)
    schema = draft_schema(table)
    spec = _spec(FEATURES, "label", layers=[{"type": "Linear", "out_features": 2}])
    canaries = craft_canaries(schema, spec, 30, np.random.default_rng(2))
    joined = audit_module._with_canaries(table, canaries.iloc[::3])  # a subset, as the draw leaves
    assert len(joined) == 60 and list(joined.dtypes) == list(table.dtypes)
    assert not joined.isna().any().any()
    pd.testing.assert_frame_equal(joined.iloc[50:].reset_index(drop=True), canaries.iloc[::3].reset_index(drop=True),
                                  check_dtype=False)  # fmt: skip


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_scores_rank_canaries_as_the_negative_loss_does(loss: str) -> None:
    schema = _all_kinds_schema()
    if loss == "mse":
        spec = _spec(["smoker", "group", "seen", "note"], "bmi", task="regression", loss="mse",
                     layers=[{"type": "Linear", "out_features": 8}, {"type": "Tanh"}, {"type": "Linear", "out_features": 1}])  # fmt: skip
    elif loss == "bce":
        spec = _spec(["age", "bmi", "group", "seen"], "smoker", loss="bce",
                     layers=[{"type": "Linear", "out_features": 8}, {"type": "Tanh"}, {"type": "Linear", "out_features": 1}])  # fmt: skip
    else:
        spec = _spec(["age", "bmi", "smoker", "group", "seen"], "outcome")
    canaries = craft_canaries(schema, spec, 200, np.random.default_rng(3))
    torch.manual_seed(0)
    module = build_model(spec, schema)
    scores = score_canaries(module, spec, schema, canaries)
    features = encode_features(spec, schema, canaries)
    targets, _ = encode_target(spec, schema, canaries)
    with torch.no_grad():
        out = module(features).double()
        losses = {
            "cross_entropy": lambda: torch.nn.functional.cross_entropy(out, targets, reduction="none"),
            "bce": lambda: torch.nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), targets.double(), reduction="none"),
            "mse": lambda: (out.squeeze(-1) - targets.double()) ** 2,
        }[loss]().numpy()  # fmt: skip
    assert scores.shape == (200,)
    assert np.array_equal(np.argsort(scores, kind="stable"), np.argsort(-losses, kind="stable"))
    if loss != "mse":  # the logit scale: loss = log(1 + e^(−score))
        assert np.allclose(np.log1p(np.exp(-scores)), losses, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------
# The audit itself: a positive control, and the runner's DP training


def make_classification_table(rows: int, seed: int = 0) -> pd.DataFrame:
    x, y = make_classification(n_samples=rows, n_features=len(FEATURES), n_informative=6, n_redundant=0,
                               random_state=seed)  # fmt: skip
    table = pd.DataFrame(x.round(3), columns=FEATURES)
    table["label"] = pd.array(np.where(y == 1, "yes", "no"), dtype="string")
    return table


# 300 rows of 40 features; 400 canaries; an MLP that can memorise (64 hidden units, 30 epochs).
AUDIT_CANARIES = 400


def audit_spec() -> ModelSpec:
    return _spec(
        FEATURES, "label", epochs=30, expected_batch_size=64,
        layers=[{"type": "Linear", "out_features": 64}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        dp={"target_epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
    )  # fmt: skip


@pytest.fixture(scope="module")
def owner_table() -> tuple[pd.DataFrame, DatasetSchema]:
    table = make_classification_table(300)
    return table, draft_schema(table)


def without_noise(spec: ModelSpec, table: pd.DataFrame, schema: DatasetSchema, rows: int,
                  device: Any) -> tuple[torch.nn.Module, None]:  # fmt: skip
    """The positive control: the runner's loop (Opacus, Poisson sampling at the same q, the
    same steps) with the noise multiplier at 0 and clipping at 1e6 (none): no privacy at all.
    Test-only, through the audit's private trainer hook; `audit` never trains this way."""
    honest = DpParams.for_spec(spec, rows)
    leaky = DpParams.model_construct(**{**honest.model_dump(), "noise_multiplier": 0.0, "max_grad_norm": 1e6})
    model = build_model(spec, schema)
    with training.quiet():
        features, targets = training._encode(spec, schema, table)
        trained = training.fit_private(
            model, features, targets, spec=spec, params=leaky, device=torch.device("cpu"),
            sample_seed=int(np.random.default_rng().integers(2**62)), noise_seed=0,
        )  # fmt: skip
    return training._fresh_copy(spec, schema, trained), None  # no ε: it has none


def run_control(table: pd.DataFrame, schema: DatasetSchema) -> AuditReport:
    return audit_module._audit(
        table, schema, audit_spec(), trainer=without_noise, training="positive control (no noise, no clipping)",
        canaries=AUDIT_CANARIES, confidence=0.95, public_rows=None, device="cpu", progress=None,
    )  # fmt: skip


def test_positive_control_without_noise_breaks_the_claim(owner_table: tuple[pd.DataFrame, DatasetSchema]) -> None:
    table, schema = owner_table
    report = run_control(table, schema)
    claimed = DpParams.for_spec(audit_spec(), len(table) + AUDIT_CANARIES // 2).epsilon()
    assert report.claimed_epsilon == claimed and claimed == pytest.approx(1.0, abs=1e-3)
    assert report.training.startswith("positive control")
    assert report.epsilon_lower_bound > claimed + 0.5, report
    assert report.violated and report.auc > 0.65
    assert report.correct <= report.guesses == report.guesses_in + report.guesses_out
    assert report.table_rows == 300 and report.rows_trained == 300 + report.included
    assert len(report.plans) == len(GUESS_PLANS)


def test_the_runners_dp_training_stays_below_its_claim(
    owner_table: tuple[pd.DataFrame, DatasetSchema], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, schema = owner_table
    calls: list[dict[str, Any]] = []
    reported: list[float] = []
    real_train = training.train

    def spy(spec: ModelSpec, frame: pd.DataFrame, schema: DatasetSchema, device: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        calls.append({"rows": len(frame), "device": device, **kwargs})
        result = real_train(spec, frame, schema, device, **kwargs)
        reported.append(result.epsilon)
        return result

    monkeypatch.setattr(training, "train", spy)
    stages: list[str] = []
    report = audit(table, schema, audit_spec(), canaries=AUDIT_CANARIES, device="cpu", progress=stages.append)
    # the runner's own training, unseeded, on the table plus exactly the included canaries
    assert calls == [{"rows": 300 + report.included, "device": "cpu", "public_rows": 500, "seed": None}]
    assert stages == list(audit_module.STAGES)
    assert report.training == RUNNER_TRAINING
    params = DpParams.for_spec(audit_spec(), 500)
    assert report.claimed_epsilon == reported[0] == params.epsilon()  # the runner's own figure
    assert (report.noise_multiplier, report.sample_rate, report.steps) == (
        params.noise_multiplier, params.sample_rate, params.steps)
    assert report.epsilon_lower_bound < report.claimed_epsilon, report
    assert not report.violated
    assert 0.0 <= report.auc <= 1.0 and report.canaries == AUDIT_CANARIES
    assert 0 < report.included < AUDIT_CANARIES and report.confidence == 0.95


def test_bad_arguments_are_refused_before_any_training(owner_table: tuple[pd.DataFrame, DatasetSchema]) -> None:
    table, schema = owner_table

    def never(*args: Any) -> tuple[torch.nn.Module, None]:
        raise AssertionError("trained despite bad arguments")

    def run(spec: ModelSpec | None = None, **changes: Any) -> None:
        options: dict[str, Any] = {"canaries": 100, "confidence": 0.95, "public_rows": None, "device": "cpu",
                                   "progress": None} | changes  # fmt: skip
        audit_module._audit(table, schema, spec or audit_spec(), trainer=never, training="never", **options)

    with pytest.raises(InputError, match="canaries"):
        run(canaries=5)
    with pytest.raises(InputError, match="confidence"):
        run(confidence=1.5)
    with pytest.raises(InputError, match="row count"):
        run(public_rows=0)
    with pytest.raises(SpecError, match="not in the dataset"):
        run(_spec(FEATURES, "nope", layers=[{"type": "Linear", "out_features": 2}]))
    with pytest.raises(SpecError, match="batch size"):
        run(audit_spec(), public_rows=10)
