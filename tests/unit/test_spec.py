"""ModelSpec: declarative validation, canonical hashing, and checks against a public schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exchange.ml.spec import MAX_PARAMETERS, ModelSpec
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import InputError, SpecError
from exchange.storage.canonical import canonical_json

SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", kind="integer", nullable=False, minimum=20, maximum=80),
        ColumnSchema(name="bmi", kind="float", nullable=True, minimum=10.0, maximum=50.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=False),
        ColumnSchema(name="region", kind="categorical", nullable=False, categories=["n", "s", "w"]),
        ColumnSchema(name="seen", kind="datetime", nullable=False,
                     minimum="2020-01-01T00:00:00Z", maximum="2024-01-01T00:00:00Z"),
        ColumnSchema(name="cost", kind="float", nullable=False, minimum=0.0, maximum=1000.0),
        ColumnSchema(name="diagnosis", kind="categorical", nullable=False,
                     categories=["benign", "malignant"]),
        ColumnSchema(name="stage", kind="categorical", nullable=False, categories=["i", "ii", "iii"]),
        ColumnSchema(name="single", kind="categorical", nullable=False, categories=["only"]),
    ]
)


def spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task": "classification",
        "features": ["age", "bmi", "smoker", "region"],
        "target": "diagnosis",
        "layers": [
            {"type": "Linear", "out_features": 16},
            {"type": "ReLU"},
            {"type": "LayerNorm"},
            {"type": "Linear", "out_features": 2},
        ],
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "expected_batch_size": 64,
        "epochs": 3,
        "dp": {"target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }
    data.update(changes)
    return data


def refused(data: Any) -> str:
    with pytest.raises(SpecError) as info:
        ModelSpec.parse(data)
    return sentence(info.value)


def mismatch(**changes: Any) -> str:
    spec = ModelSpec.parse(spec_data(**changes))
    with pytest.raises(SpecError) as info:
        spec.check_against(SCHEMA)
    return sentence(info.value)


def sentence(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message and message.endswith("."), message
    assert "validation error" not in message.lower() and "pydantic" not in message.lower()
    return message


def test_valid_spec_parses_from_mapping_and_json() -> None:
    spec = ModelSpec.parse(spec_data())
    assert spec.family == "mlp" and spec.version == 1
    assert ModelSpec.parse(json.dumps(spec_data())) == spec
    assert ModelSpec.parse(json.dumps(spec_data()).encode()) == spec
    spec.check_against(SCHEMA)
    assert isinstance(SpecError("x"), InputError)


def test_spec_hash_is_keccak_of_canonical_json() -> None:
    from eth_utils import keccak

    spec = ModelSpec.parse(spec_data())
    digest = spec.spec_hash()
    assert digest.startswith("0x") and len(digest) == 66
    assert digest == "0x" + keccak(canonical_json(spec.model_dump(mode="json"))).hex()
    assert spec.to_json() == canonical_json(json.loads(spec.to_json()))


def test_spec_hash_ignores_spelling_but_not_content() -> None:
    base = ModelSpec.parse(spec_data()).spec_hash()
    spelled = spec_data(family="mlp", version=1)
    spelled["layers"][0]["bias"] = True
    reordered = dict(reversed(list(spelled.items())))
    assert ModelSpec.parse(reordered).spec_hash() == base
    assert ModelSpec.parse(spec_data(learning_rate=0.02)).spec_hash() != base
    assert ModelSpec.parse(spec_data(epochs=4)).spec_hash() != base
    other_dp = {"noise_multiplier": 1.1, "delta": 1e-5, "max_grad_norm": 1.0}
    assert ModelSpec.parse(spec_data(dp=other_dp)).spec_hash() != base


def test_spec_is_frozen() -> None:
    spec = ModelSpec.parse(spec_data())
    with pytest.raises(Exception):
        spec.epochs = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"layers": [{"type": "BatchNorm1d"}, {"type": "Linear", "out_features": 2}]}, "not allowed"),
        ({"layers": [{"type": "LayerNorm", "elementwise_affine": False},
                     {"type": "Linear", "out_features": 2}]}, "elementwise_affine"),
        ({"layers": [{"type": "Linear", "out_features": 2}, {"type": "Sigmoid"}]}, "last layer"),
        ({"layers": [{"type": "ReLU"}]}, "Linear"),
        ({"layers": []}, "layers"),
        ({"layers": [{"type": "Linear", "out_features": 0}]}, "out_features"),
        ({"dp": {"delta": 1e-5, "max_grad_norm": 1.0}}, "exactly one"),
        ({"dp": {"target_epsilon": 2, "noise_multiplier": 1, "delta": 1e-5, "max_grad_norm": 1}},
         "exactly one"),
        ({"dp": {"noise_multiplier": 1.0000001, "delta": 1e-5, "max_grad_norm": 1}}, "0.000001"),
        ({"dp": {"noise_multiplier": 1.0, "delta": 1e-5, "max_grad_norm": 1.00000001}}, "0.000001"),
        ({"dp": {"noise_multiplier": 1.0, "delta": 1.5, "max_grad_norm": 1}}, "delta"),
        ({"dp": {"noise_multiplier": -1.0, "delta": 1e-5, "max_grad_norm": 1}}, "noise_multiplier"),
        ({"dp": {"target_epsilon": 0, "delta": 1e-5, "max_grad_norm": 1}}, "target_epsilon"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"expected_batch_size": 0}, "expected_batch_size"),
        ({"loss": "mse"}, "classification task needs"),
        ({"task": "regression"}, "regression task needs the mse loss"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"features": ["age", "age"]}, "only once"),
        ({"features": []}, "features"),
        ({"family": "transformer"}, "family"),
        ({"code": "import os"}, "unknown field 'code'"),
    ],
)
def test_malformed_specs_are_refused_with_one_sentence(changes: dict, fragment: str) -> None:
    assert fragment in refused(spec_data(**changes))


def test_missing_field_and_bad_json() -> None:
    data = spec_data()
    del data["dp"]
    assert "missing the field 'dp'" in refused(data)
    assert "not valid JSON" in refused("{not json")
    assert "JSON object" in refused("[1, 2]")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"features": ["age", "height"]}, "feature column 'height' that the dataset does not have"),
        ({"target": "outcome"}, "target column 'outcome' is not in the dataset"),
        ({"features": ["age", "diagnosis"]}, "'diagnosis' is also listed as a feature"),
        ({"target": "cost"}, "kind float, which does not fit a classification task"),
        ({"target": "single", "layers": [{"type": "Linear", "out_features": 1}]}, "only 1 category"),
        ({"target": "stage", "loss": "bce", "layers": [{"type": "Linear", "out_features": 1}]},
         "bce loss needs a target with two classes"),
        ({"target": "stage"}, "needs 3; set its out_features to 3"),
        ({"layers": [{"type": "Linear", "out_features": 1}]}, "needs 2"),
        ({"task": "regression", "loss": "mse", "target": "stage",
          "layers": [{"type": "Linear", "out_features": 1}]}, "kind categorical"),
        ({"task": "regression", "loss": "mse", "target": "cost"}, "needs 1"),
    ],
)
def test_spec_that_does_not_fit_the_schema_is_refused(changes: dict, fragment: str) -> None:
    assert fragment in mismatch(**changes)


def test_fitting_variants_pass() -> None:
    bce = spec_data(loss="bce", layers=[{"type": "Linear", "out_features": 1}])
    ModelSpec.parse(bce).check_against(SCHEMA)
    ModelSpec.parse(spec_data(target="smoker", features=["age", "seen"])).check_against(SCHEMA)
    ModelSpec.parse(
        spec_data(task="regression", loss="mse", target="cost",
                  layers=[{"type": "Linear", "out_features": 8}, {"type": "GELU"},
                          {"type": "Tanh"}, {"type": "Linear", "out_features": 1}])
    ).check_against(SCHEMA)


def test_parameter_limit() -> None:
    wide = [{"type": "Linear", "out_features": 4096}] * 2 + [{"type": "Linear", "out_features": 2}]
    spec = ModelSpec.parse(spec_data(layers=wide))
    assert spec.parameter_count(SCHEMA) < MAX_PARAMETERS  # two 4096-wide layers still fit
    spec.check_against(SCHEMA)
    huge = [{"type": "Linear", "out_features": 8192}] * 2 + [{"type": "Linear", "out_features": 2}]
    message = mismatch(layers=huge)
    assert "parameters, more than" in message


def test_input_layout_comes_from_the_schema() -> None:
    spec = ModelSpec.parse(spec_data(features=["age", "bmi", "smoker", "region", "seen"]))
    assert spec.input_columns(SCHEMA) == [
        "age", "bmi", "bmi:missing", "smoker", "region=n", "region=s", "region=w", "seen",
    ]
    assert spec.input_width(SCHEMA) == 8
    assert spec.output_width(SCHEMA) == 2
    # Linear(8→16) + LayerNorm(16) + Linear(16→2)
    assert spec.parameter_count(SCHEMA) == 8 * 16 + 16 + 2 * 16 + 16 * 2 + 2
