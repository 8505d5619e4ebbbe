"""How reliably federated training beats each hospital alone, on the e2e test's non-IID split.

Run: `.venv/bin/python benchmarks/federated_accuracy.py [--runs 12] [--hidden 8 16]`.

Each run trains the spec of `tests/e2e/test_federated.py` (ε 4 per hospital over 4 rounds of
2 local epochs, Adam at 0.05) with the runner's own DP-SGD (`compute_to_data.training.train`),
each round's updates averaged in this process as SecAgg+'s sum would give them (without its
quantisation), from a fresh initial model; then each hospital's own model with the same ε and
as many epochs. It prints, per hidden width, the held-out accuracy of the federated model
(min, mean, and the share of runs at or under the best lone model plus the test's 0.03 margin)
and of the best lone model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e")]

from compute_to_data.training import train  # noqa: E402
from conftest import write_schema  # noqa: E402
from exchange.datasets.schema import DatasetSchema  # noqa: E402
from exchange.federated.arrays import model_arrays  # noqa: E402
from exchange.federated.server import initial_arrays  # noqa: E402
from exchange.ml.model import build_model, encode_features, encode_target  # noqa: E402
from exchange.ml.spec import FederationSpec, ModelSpec  # noqa: E402
from test_federated import LOCAL_EPOCHS, hospital_slices, spec_dict  # noqa: E402

ROUNDS, EPSILON, MARGIN = 4, 4.0, 0.03


def accuracy(spec: ModelSpec, schema: DatasetSchema, arrays: list[np.ndarray], rows: pd.DataFrame) -> float:
    model = build_model(spec, schema)
    with torch.no_grad():
        for parameter, array in zip(model.parameters(), arrays, strict=True):
            parameter.copy_(torch.from_numpy(array))
        targets, _ = encode_target(spec, schema, rows, fill_missing=True)
        return float((model(encode_features(spec, schema, rows)).argmax(dim=1) == targets).float().mean())


def federated(spec: ModelSpec, schema: DatasetSchema, slices: list[pd.DataFrame], seed: int) -> list[np.ndarray]:
    arrays = initial_arrays(spec, schema, seed)
    for _ in range(ROUNDS):
        updates = [model_arrays(train(spec, rows, schema, "cpu", public_rows=len(rows), start_from=arrays).module)
                   for rows in slices]  # fmt: skip
        arrays = [np.mean([u[i] for u in updates], axis=0).astype(np.float32) for i in range(len(arrays))]
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--hidden", type=int, nargs="+", default=[8, 16])
    args = parser.parse_args()
    schema = DatasetSchema.model_validate_json(write_schema(Path(tempfile.mkdtemp()) / "schema.json").read_text())
    slices, held_out = hospital_slices(seed=31), pd.concat(hospital_slices(seed=77))
    print(f"{'hidden':>6} {'federated min':>14} {'mean':>6} {'≤ lone + 0.03':>14} {'best lone max':>14}")
    for hidden in args.hidden:
        base = ModelSpec.parse(spec_dict(epochs=LOCAL_EPOCHS, epsilon=EPSILON, hidden=hidden) | {"learning_rate": 0.05})
        spec = base.model_copy(update={"federation": FederationSpec(rounds=ROUNDS, superlink="127.0.0.1:1")})
        alone_spec = base.model_copy(update={"epochs": ROUNDS * LOCAL_EPOCHS})
        together, alone = [], []
        for seed in range(args.runs):
            together.append(accuracy(spec, schema, federated(spec, schema, slices, seed), held_out))
            alone.append(max(accuracy(alone_spec, schema, model_arrays(train(alone_spec, rows, schema, "cpu",
                                      public_rows=len(rows)).module), held_out) for rows in slices))  # fmt: skip
        fed, lone = np.array(together), np.array(alone)
        beaten = float(np.mean(fed <= lone + MARGIN))
        print(f"{hidden:>6} {fed.min():>14.3f} {fed.mean():>6.3f} {beaten:>14.0%} {lone.max():>14.3f}", flush=True)


if __name__ == "__main__":
    main()
