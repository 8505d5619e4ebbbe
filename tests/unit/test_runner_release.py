"""The runner releases only the spec's parameters and DP figures it computed itself."""

from __future__ import annotations

import base64

import pytest
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from compute_to_data.job_training import TrainingOrder, TrainingOutput
from compute_to_data.runner import JobRefused, releasable
from conftest import make_table
from exchange.datasets import draft_schema
from exchange.ml.accounting import ORDERS_FIXED, DpParams, epsilon_fixed
from exchange.ml.model import build_model
from exchange.ml.spec import ModelSpec
from exchange.ml.weights import export_weights

SPEC = ModelSpec.parse({
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01, "expected_batch_size": 32,
    "epochs": 1, "dp": {"noise_multiplier": 1.5, "delta": 1e-5, "max_grad_norm": 1.0},
})  # fmt: skip
SCHEMA = draft_schema(make_table(rows=300))
PARAMS = DpParams.for_spec(SPEC, 300)
ORDER = TrainingOrder(spec=SPEC.to_json().decode(), dataset_schema=SCHEMA, public_rows=300, commitment="0x" + "ab" * 32,
                      commitment_key="00" * 32, dp=PARAMS.to_onchain(), delta=PARAMS.delta_fixed)  # fmt: skip


def honest_output(weights: bytes | None = None, **changes: object) -> TrainingOutput:
    curve = PARAMS.curve_fixed()
    run = {
        "dp": PARAMS.to_onchain().model_dump(), "rdp_orders": list(ORDERS_FIXED), "rdp_curve": list(curve),
        "epsilon": epsilon_fixed(curve, PARAMS.delta), "delta": PARAMS.delta_fixed, "device": "cpu",
        "library_versions": {"torch": "x"},
    }  # fmt: skip
    run.update(changes)
    blob = weights if weights is not None else export_weights(build_model(SPEC, SCHEMA))
    return TrainingOutput(weights=base64.b64encode(blob).decode(), run=run)


def test_honest_output_is_released_as_parameters_and_own_figures() -> None:
    weights, run = releasable(SPEC, ORDER, honest_output(device="cuda:0 (NVIDIA H100 80GB HBM3)"))
    assert set(load_safetensors(weights)) == {name for name, _ in build_model(SPEC, SCHEMA).named_parameters()}
    assert run["epsilon"] == epsilon_fixed(PARAMS.curve_fixed(), PARAMS.delta)
    assert run["library_versions"] != {"torch": "x"}  # this process's versions, not the child's
    assert run["public_rows"] == 300 and not {"started_at", "finished_at"} & set(run)  # no durations


def test_extra_tensors_and_metadata_never_leave() -> None:
    tensors = load_safetensors(export_weights(build_model(SPEC, SCHEMA)))
    with_metadata = save_safetensors(tensors, metadata={"row": "a private value"})
    weights, _ = releasable(SPEC, ORDER, honest_output(with_metadata))
    assert b"private value" not in weights
    smuggled = save_safetensors({**tensors, "extra": tensors["0.bias"].clone()})
    with pytest.raises(JobRefused, match="other than the model's parameters"):
        releasable(SPEC, ORDER, honest_output(smuggled))


@pytest.mark.parametrize(
    "changes",
    [{"epsilon": 1}, {"rdp_curve": [1] * len(ORDERS_FIXED)}, {"device": "cpu; a row: 42"}],
)
def test_a_report_that_is_not_the_jobs_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(JobRefused, match="not the job's") as refused:
        releasable(SPEC, ORDER, honest_output(**changes))
    assert refused.value.rows_read  # the child had read the rows: the charge stays
