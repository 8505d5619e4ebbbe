"""The work that runs inside the sandbox: one job's training on the one private file.

The runner checks everything public (spec, DP parameters, curve) before it starts the
sandbox; this side checks that the file is the committed data, trains with DP, and hands
back only the parameters (safetensors) and public facts about the run.
"""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from compute_to_data.training import train
from exchange.datasets import CommitmentKey, DatasetSchema, commit, load_table
from exchange.errors import TrainingError
from exchange.ml.accounting import DpParams, DpParamsOnchain
from exchange.ml.spec import ModelSpec
from exchange.ml.weights import export_weights
from exchange.storage import canonical_json

# Modules the first training step imports lazily (torch.optim reaches torch._dynamo): a warm
# sandbox's zygote imports them with this module, so that no job pays for them again
# (compute_to_data.warm_sandbox). Imports only: nothing here runs a torch op.
WARM_IMPORTS = ("torch._dynamo",)


class TrainingOrder(BaseModel):
    """What the runner asks the sandbox to do: public inputs, and the owner's commitment key
    (a secret of the owner's premises, passed on stdin, never on a command line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: str  # the spec's canonical JSON
    dataset_schema: DatasetSchema  # the declared schema
    public_rows: int  # the dataset's public (DP) row count: it sets q
    commitment: str  # 0x keyed hash the file must match
    commitment_key: str  # hex of the owner's commitment key
    dp: DpParamsOnchain  # the job's on-chain DP parameters
    delta: int  # the policy's δ, 1e-18 units
    device: str | None = None


class TrainingOutput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str  # base64 of the safetensors bytes
    run: dict  # TrainingResult.provenance(): DP figures, versions, device


def train_job(payload: bytes, dataset: Path) -> bytes:
    """Sandbox entry point: `TrainingOrder` JSON in, `TrainingOutput` JSON out."""
    order = TrainingOrder.model_validate_json(payload)
    frame = load_table(dataset)
    if commit(frame, CommitmentKey(bytes.fromhex(order.commitment_key))).digest != order.commitment:
        # Say nothing about the data: only that it is not the committed table.
        raise TrainingError("The private file does not match the dataset's on-chain commitment.")
    result = train(
        ModelSpec.parse(order.spec),
        frame,
        order.dataset_schema,
        order.device,
        public_rows=order.public_rows,
        expected_params=DpParams.from_onchain(order.dp, order.delta),
    )
    output = TrainingOutput(weights=base64.b64encode(export_weights(result.module)).decode(), run=result.provenance())
    return canonical_json(output.model_dump(mode="json"))
