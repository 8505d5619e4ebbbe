"""Model building, schema-only encoding, and the runner's module gate."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn

from exchange.ml.model import (
    build_model,
    decode_regression,
    encode_features,
    encode_target,
    validate_module,
)
from exchange.ml.spec import ModelSpec
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import ModuleRefused, PrivacyError

SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", kind="integer", nullable=False, minimum=20, maximum=80),
        ColumnSchema(name="bmi", kind="float", nullable=True, minimum=10.0, maximum=50.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=True),
        ColumnSchema(name="region", kind="categorical", nullable=True, categories=["n", "s", "w"]),
        ColumnSchema(name="seen", kind="datetime", nullable=False,
                     minimum="2020-01-01T00:00:00Z", maximum="2024-01-01T00:00:00Z"),
        ColumnSchema(name="cost", kind="float", nullable=True, minimum=0.0, maximum=1000.0),
        ColumnSchema(name="stage", kind="categorical", nullable=True, categories=["i", "ii", "iii"]),
        ColumnSchema(name="flag", kind="boolean", nullable=True),
    ]
)
FEATURES = ["age", "bmi", "smoker", "region", "seen"]


def make_spec(**changes: object) -> ModelSpec:
    data: dict = {
        "task": "classification",
        "features": FEATURES,
        "target": "stage",
        "layers": [
            {"type": "Linear", "out_features": 6},
            {"type": "GELU"},
            {"type": "LayerNorm"},
            {"type": "Linear", "out_features": 3},
        ],
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "learning_rate": 0.5,
        "expected_batch_size": 8,
        "epochs": 1,
        "dp": {"noise_multiplier": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }
    data.update(changes)
    return ModelSpec.parse(data)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": pd.array([20, 50, 80, 35], dtype="Int64"),
            "bmi": [10.0, np.nan, 50.0, 30.0],
            "smoker": pd.array([True, False, None, True], dtype="boolean"),
            "region": pd.array(["s", None, "w", "n"], dtype="string"),
            "seen": pd.to_datetime(
                ["2020-01-01", "2022-01-01", "2024-01-01", "2023-01-01"], utc=True
            ),
            "cost": [0.0, 500.0, np.nan, 1000.0],
            "stage": pd.array(["iii", "i", None, "ii"], dtype="string"),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
        }
    )


def test_build_model_layers_and_names() -> None:
    model = build_model(make_spec(), SCHEMA)
    assert isinstance(model, nn.Sequential)
    # age, bmi, bmi:missing, smoker, smoker:missing, region×3, seen = 9 inputs
    assert model[0].in_features == 9 and model[0].out_features == 6
    assert isinstance(model[1], nn.GELU) and isinstance(model[2], nn.LayerNorm)
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias",
    ]
    assert list(model.buffers()) == []
    out = model(encode_features(make_spec(), SCHEMA, frame()))
    assert out.shape == (4, 3)


def test_features_use_the_schema_ranges_not_the_data() -> None:
    spec = make_spec()
    encoded = encode_features(spec, SCHEMA, frame())
    assert encoded.dtype == torch.float32 and encoded.shape == (4, 9)
    expected = torch.tensor(
        [
            # age  bmi  bmi? smoker smoker? n  s  w  seen
            [-1.0, -1.0, 0, 1, 0, 0, 1, 0, -1.0],
            [0.0, 0.0, 1, 0, 0, 0, 0, 0, 0.0],
            [1.0, 1.0, 0, 0, 1, 0, 0, 1, 1.0],
            [-0.5, 0.0, 0, 1, 0, 1, 0, 0, 0.5],
        ]
    )
    # 2022-01-01 and 2023-01-01 on [2020, 2024]: leap days make them not exactly 0 / 0.5
    assert torch.allclose(encoded, expected, atol=1e-3)
    # Each row is encoded on its own: no statistic of the other (private) rows enters.
    for i in range(4):
        alone = encode_features(spec, SCHEMA, frame().iloc[[i]].reset_index(drop=True))
        assert torch.equal(alone[0], encoded[i])


def test_values_outside_the_public_range_are_clipped() -> None:
    spec = make_spec(features=["age"])
    rows = pd.DataFrame({"age": pd.array([0, 200], dtype="Int64")})
    assert encode_features(spec, SCHEMA, rows)[:, 0].tolist() == [-1.0, 1.0]


def test_hand_built_frames_encode_the_same() -> None:
    spec = make_spec(features=["age", "smoker"], target="flag",
                     layers=[{"type": "Linear", "out_features": 2}])
    nullable = pd.DataFrame({"age": pd.array([20, 80], dtype="Int64"),
                             "smoker": pd.array([True, False], dtype="boolean")})
    plain = pd.DataFrame({"age": np.array([20, 80]), "smoker": np.array([True, False])})
    assert torch.equal(encode_features(spec, SCHEMA, nullable), encode_features(spec, SCHEMA, plain))


def test_targets_for_each_loss() -> None:
    table = frame()
    labels, usable = encode_target(make_spec(), SCHEMA, table)
    assert usable.tolist() == [True, True, False, True]
    assert labels.dtype == torch.int64 and labels.tolist() == [2, 0, 1]

    bce = make_spec(target="flag", loss="bce", layers=[{"type": "Linear", "out_features": 1}])
    flags, usable = encode_target(bce, SCHEMA, table)
    assert usable.tolist() == [True, False, True, True]
    assert flags.dtype == torch.float32 and flags.tolist() == [1.0, 0.0, 1.0]

    ce_bool = make_spec(target="flag", layers=[{"type": "Linear", "out_features": 2}])
    assert encode_target(ce_bool, SCHEMA, table)[0].tolist() == [1, 0, 1]

    mse = make_spec(task="regression", loss="mse", target="cost",
                    layers=[{"type": "Linear", "out_features": 1}])
    values, usable = encode_target(mse, SCHEMA, table)
    assert usable.tolist() == [True, True, False, True]
    assert values.tolist() == [-1.0, 0.0, 1.0]
    assert decode_regression(mse, SCHEMA, values).tolist() == [0.0, 500.0, 1000.0]


class WithBuffer(nn.Module):
    """A module that would smuggle a training row out in a buffer."""

    def __init__(self, persistent: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("seen", torch.zeros(3), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.copy_(x[0].detach())
        return self.linear(x)


class SneakyLinear(nn.Linear):
    pass


class Stash(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.last = torch.zeros(3)  # a plain tensor attribute, not a registered buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def frozen_linear() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    return model


def hooked() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 2))
    model[0].register_forward_hook(lambda module, inputs, output: None)
    return model


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "'1' (BatchNorm1d) holds buffers"),
        (lambda: WithBuffer(), "(WithBuffer) holds buffers (seen)"),
        (lambda: WithBuffer(persistent=False), "holds buffers (seen)"),
        (frozen_linear, "'0' (Linear) has frozen parameters (weight)"),
        (hooked, "has hooks registered"),
        (Stash, "keeps tensors outside its parameters (last)"),
        (lambda: nn.Sequential(SneakyLinear(3, 2)), "SneakyLinear, which is not on"),
        (lambda: nn.Sequential(nn.Linear(3, 2), nn.Dropout()), "Dropout, which is not on"),
        (lambda: nn.Embedding(4, 2), "Embedding, which is not on"),
    ],
)
def test_unsafe_modules_are_refused(make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModuleRefused) as info:
        validate_module(make())
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.endswith(".")
    assert isinstance(info.value, PrivacyError)


def test_opacus_alone_would_accept_a_buffer_leak() -> None:
    # Why the runner has its own gate: Opacus' validator passes a module whose buffer
    # copies an input row, and a frozen layer.
    assert ModuleValidator.validate(WithBuffer(), strict=False) == []
    assert ModuleValidator.validate(frozen_linear(), strict=False) == []


def test_models_built_from_specs_pass_the_gate() -> None:
    for activation in ("ReLU", "GELU", "Tanh", "Sigmoid", "LayerNorm"):
        spec = make_spec(layers=[{"type": "Linear", "out_features": 4}, {"type": activation},
                                 {"type": "Linear", "out_features": 3, "bias": False}])
        validate_module(build_model(spec, SCHEMA))


def test_datetime_encoding_uses_the_schema_bounds() -> None:
    spec = make_spec(features=["seen"])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    end = datetime(2024, 1, 1, tzinfo=UTC)
    middle = start + (end - start) / 2
    rows = pd.DataFrame({"seen": pd.to_datetime([start, middle, end], utc=True)})
    assert encode_features(spec, SCHEMA, rows)[:, 0].tolist() == [-1.0, 0.0, 1.0]
