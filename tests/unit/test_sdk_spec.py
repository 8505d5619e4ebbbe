"""The SDK's spec builder: task inference, δ from the policy, and the runner's own refusals."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from exchange.datasets.mock import generate_mock
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import SpecError
from exchange.ml.spec import Linear, ModelSpec, ReLU, Tanh
from exchange.sdk import Spec
from exchange.sdk.spec import check_spec, spec_summary
from exchange.sdk.tryout import try_spec

SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", kind="integer", nullable=False, minimum=20, maximum=80),
        ColumnSchema(name="bmi", kind="float", nullable=True, minimum=10.0, maximum=50.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=False),
        ColumnSchema(name="region", kind="categorical", nullable=False, categories=["n", "s", "w"]),
        ColumnSchema(name="seen", kind="datetime", nullable=False,
                     minimum="2020-01-01T00:00:00Z", maximum="2024-01-01T00:00:00Z"),
        ColumnSchema(name="cost", kind="float", nullable=False, minimum=0.0, maximum=1000.0),
        ColumnSchema(name="visits", kind="integer", nullable=False, minimum=0, maximum=50),
        ColumnSchema(name="diagnosis", kind="categorical", nullable=False, categories=["benign", "malignant"]),
        ColumnSchema(name="single", kind="categorical", nullable=False, categories=["only"]),
    ]
)  # fmt: skip
FEATURES = ["age", "bmi", "smoker", "region"]


def dataset(delta: str = "1e-6", max_epochs: int = 20, rows: int = 500) -> Any:
    """What Spec.mlp reads of a Dataset: its schema, its policy, its row count and id."""
    policy = SimpleNamespace(delta=Decimal(delta), max_epochs=max_epochs)
    return SimpleNamespace(schema_=SCHEMA, policy=policy, rows=rows, id=7)


def runner_sentence(**changes: Any) -> str:
    """What the runner (ModelSpec.check_against) says about a spec with these fields."""
    data: dict[str, Any] = {
        "task": "classification", "features": FEATURES, "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 2}], "loss": "cross_entropy", "optimizer": "adam",
        "learning_rate": 0.01, "expected_batch_size": 64, "epochs": 3,
        "dp": {"target_epsilon": 1.0, "delta": 1e-6, "max_grad_norm": 1.0},
    } | changes  # fmt: skip
    with pytest.raises(SpecError) as info:
        ModelSpec.parse(data).check_against(SCHEMA)
    return str(info.value)


# --------------------------------------------------------------------------- task inference


@pytest.mark.parametrize(
    ("target", "task", "loss", "outputs"),
    [
        ("diagnosis", "classification", "cross_entropy", 2),
        ("region", "classification", "cross_entropy", 3),
        ("smoker", "classification", "cross_entropy", 2),
        ("cost", "regression", "mse", 1),
        ("visits", "regression", "mse", 1),
    ],
)
def test_task_and_outputs_come_from_the_target_kind(target: str, task: str, loss: str, outputs: int) -> None:
    features = [f for f in ("age", "bmi") if f != target]
    spec = Spec.mlp(features, target, dataset=dataset())
    assert (spec.task, spec.loss) == (task, loss)
    assert isinstance(spec.layers[-1], Linear) and spec.layers[-1].out_features == outputs
    spec.check_against(SCHEMA)  # what the runner will check passes


def test_layers_follow_hidden_and_activation() -> None:
    spec = Spec.mlp(FEATURES, "diagnosis", hidden=(8, 4), activation="Tanh", dataset=dataset())
    kinds = [type(layer) for layer in spec.layers]
    assert kinds == [Linear, Tanh, Linear, Tanh, Linear]
    assert [getattr(layer, "out_features", None) for layer in spec.layers] == [8, None, 4, None, 2]
    single = Spec.mlp(FEATURES, "diagnosis", hidden=16, dataset=dataset())
    assert [type(layer) for layer in single.layers] == [Linear, ReLU, Linear]
    assert Spec.mlp(FEATURES, "diagnosis", hidden=(), dataset=dataset()).layers == (Linear(type="Linear", out_features=2),)


def test_training_and_dp_fields_are_passed_through() -> None:
    spec = Spec.mlp(FEATURES, "diagnosis", epsilon=2.5, epochs=4, batch_size=32, learning_rate=0.05,
                    max_grad_norm=0.5, optimizer="SGD", dataset=dataset())  # fmt: skip
    assert (spec.epochs, spec.expected_batch_size, spec.learning_rate, spec.optimizer) == (4, 32, 0.05, "sgd")
    assert (spec.dp.target_epsilon, spec.dp.noise_multiplier, spec.dp.max_grad_norm) == (2.5, None, 0.5)
    fixed = Spec.mlp(FEATURES, "diagnosis", noise_multiplier=1.3, dataset=dataset())
    assert (fixed.dp.target_epsilon, fixed.dp.noise_multiplier) == (None, 1.3)
    assert "classification of 'diagnosis' from 4 feature(s)" in spec_summary(spec)


def test_features_default_to_every_other_column() -> None:
    spec = Spec.mlp(None, "diagnosis", dataset=dataset())
    assert "diagnosis" not in spec.features
    assert list(spec.features) == [c.name for c in SCHEMA.columns if c.name != "diagnosis"]
    assert Spec.mlp("age", "cost", dataset=dataset()).features == ("age",)


# --------------------------------------------------------------------------- δ


def test_delta_defaults_to_the_policy_delta() -> None:
    assert Spec.mlp(FEATURES, "diagnosis", dataset=dataset("1e-6")).dp.delta == 1e-6
    assert Spec.mlp(FEATURES, "diagnosis", dataset=dataset("0.00001")).dp.delta == 1e-5
    # Without a dataset: the policy default, and the task must be named.
    assert Spec.mlp(["x"], "y", task="regression").dp.delta == 1e-5


def test_a_delta_other_than_the_policy_one_is_refused() -> None:
    with pytest.raises(SpecError, match=r"The spec's δ \(1e-05\) must be the dataset's δ \(1e-06\)\."):
        Spec.mlp(FEATURES, "diagnosis", delta=1e-5, dataset=dataset("1e-6"))


# --------------------------------------------------------------------------- schema errors


@pytest.mark.parametrize(
    ("features", "target", "runner_fields"),
    [
        (["age", "weight"], "diagnosis", {"features": ["age", "weight"]}),
        (FEATURES, "outcome", {"target": "outcome", "task": "regression", "loss": "mse",
                               "layers": [{"type": "Linear", "out_features": 1}]}),
        (["age", "diagnosis"], "diagnosis", {"features": ["age", "diagnosis"]}),
        (FEATURES, "seen", {"target": "seen", "task": "regression", "loss": "mse",
                            "layers": [{"type": "Linear", "out_features": 1}]}),
        (FEATURES, "single", {"target": "single", "layers": [{"type": "Linear", "out_features": 1}]}),
    ],
)  # fmt: skip
def test_schema_errors_are_the_runners_sentences(features: list[str], target: str, runner_fields: dict) -> None:
    with pytest.raises(SpecError) as info:
        Spec.mlp(features, target, dataset=dataset())
    message = str(info.value)
    assert message == runner_sentence(**runner_fields)
    assert "\n" not in message and message.endswith(".")


def test_wrong_column_names_the_columns_there_are() -> None:
    with pytest.raises(SpecError, match=r"feature column 'weight' that the dataset does not have; its columns are: age, bmi"):
        Spec.mlp(["age", "weight"], "diagnosis", dataset=dataset())


def test_policy_and_size_limits_are_checked_before_sending() -> None:
    with pytest.raises(SpecError, match=r"The spec trains 30 epochs; dataset #7 allows at most 20\."):
        Spec.mlp(FEATURES, "diagnosis", epochs=30, dataset=dataset(max_epochs=20))
    with pytest.raises(SpecError, match=r"expected batch size \(64\) is larger than the dataset's 50 rows"):
        Spec.mlp(FEATURES, "diagnosis", dataset=dataset(rows=50))
    spec = Spec.mlp(FEATURES, "diagnosis", epochs=3, dataset=dataset())
    with pytest.raises(SpecError, match="allows at most 2"):
        check_spec(spec, dataset(max_epochs=2))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: Spec.mlp(FEATURES, "diagnosis", activation="swish", dataset=dataset()), "activation 'swish' is not allowed"),
        (lambda: Spec.mlp(FEATURES, "diagnosis", optimizer="rmsprop", dataset=dataset()), "optimizer is invalid"),
        (lambda: Spec.mlp(FEATURES, "diagnosis", epsilon=-1, dataset=dataset()), "dp.target_epsilon is invalid"),
        (lambda: Spec.mlp(FEATURES, "diagnosis", hidden=(0,), dataset=dataset()), "layers.0.out_features"),
        (lambda: Spec.mlp(FEATURES, "diagnosis"), "Pass dataset="),
        (lambda: Spec.mlp(FEATURES, "diagnosis", task="classification"), "needs dataset="),
        (lambda: Spec.mlp(None, "diagnosis", task="regression"), "Name the feature columns"),
        (lambda: Spec.mlp(FEATURES, "diagnosis", dataset=object()), "must be a Dataset"),
    ],
)
def test_bad_arguments_are_one_sentence(call: Any, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        call()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value) and "pydantic" not in str(info.value).lower()


# --------------------------------------------------------------------------- JSON and trying


def test_from_json_accepts_text_files_and_mappings(tmp_path: Path) -> None:
    spec = Spec.mlp(FEATURES, "diagnosis", dataset=dataset())
    text = spec.to_json().decode()
    path = tmp_path / "spec.json"
    path.write_text(text)
    assert Spec.from_json(text) == Spec.from_json(path) == Spec.from_json(str(path)) == spec
    assert Spec.from_json(spec.model_dump(mode="json")) == spec
    assert Spec.parse(text) == spec
    with pytest.raises(SpecError, match="Cannot read the spec file"):
        Spec.from_json(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="not valid JSON"):
        Spec.from_json("{nope")


@pytest.mark.parametrize("target", ["diagnosis", "smoker", "cost"])
def test_try_spec_trains_on_a_mock_sample(target: str) -> None:
    mock = generate_mock(SCHEMA, rows=40, seed=1)
    spec = Spec.mlp(["age", "bmi", "region", "seen"], target, hidden=(8,), learning_rate=0.05, dataset=dataset())
    outcome = try_spec(spec, SCHEMA, mock, epochs=4)
    assert outcome["ran"] is True and outcome["epochs"] == 4 and outcome["rows"] == 40
    assert outcome["input_width"] == spec.input_width(SCHEMA)
    assert outcome["loss_last"] < outcome["loss_first"]  # plain training on 40 rows: the loss moves
    assert try_spec(spec, SCHEMA, mock, epochs=4) == outcome  # seeded: the same every time


def test_try_spec_refuses_what_the_runner_would() -> None:
    spec = ModelSpec.parse({
        "task": "classification", "features": ["age"], "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 3}], "loss": "cross_entropy", "optimizer": "adam",
        "learning_rate": 0.01, "expected_batch_size": 8, "epochs": 1,
        "dp": {"target_epsilon": 1.0, "delta": 1e-6, "max_grad_norm": 1.0},
    })  # fmt: skip
    with pytest.raises(SpecError, match="set its out_features to 2"):
        try_spec(spec, SCHEMA, generate_mock(SCHEMA, rows=10))
