"""The runner's memory estimate: public quantities only, growing with the encoded rows."""

from __future__ import annotations

from compute_to_data.resources import BASELINE_BYTES, estimated_memory_bytes
from conftest import PATIENTS_SCHEMA
from exchange.ml.spec import ModelSpec

GIB = 1024**3
SPEC = ModelSpec.parse({
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 100,
    "epochs": 1, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
})  # fmt: skip


def test_the_estimate_grows_with_the_encoded_rows_not_the_file() -> None:
    small = estimated_memory_bytes(SPEC, PATIENTS_SCHEMA, 1_000)
    large = estimated_memory_bytes(SPEC, PATIENTS_SCHEMA, 1_001_000)
    width = SPEC.input_width(PATIENTS_SCHEMA)
    # float32 inputs and target, 2.5 copies while growing: 10 bytes a value.
    assert large - small == 1_000_000 * (width + 1) * 10
    assert BASELINE_BYTES < small < BASELINE_BYTES + GIB // 2


def test_the_default_limit_takes_ten_million_rows_and_refuses_a_billion() -> None:
    limit = 6 * GIB  # RunnerLimits' default
    assert estimated_memory_bytes(SPEC, PATIENTS_SCHEMA, 10_000_000) < limit
    assert estimated_memory_bytes(SPEC, PATIENTS_SCHEMA, 1_000_000_000) > limit
