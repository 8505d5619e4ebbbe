"""The work that runs inside the sandbox: one job's training on the one private file.

The runner checks everything public (spec, DP parameters, curve) before it starts the
sandbox; this side checks that the file is the committed data, trains with DP, and hands
back only the parameters (safetensors) and public facts about the run.

The file is read once, in chunks of rows that feed both the commitment and the encoder
(exchange.ml.streamed): the table is never held whole, only the training arrays (float32),
so memory grows with rows × the model's input width, not with the file. Nothing is trained
unless the whole file matches the commitment.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from compute_to_data.progress import StepReporter
from compute_to_data.training import train
from exchange.datasets import CommitmentKey, DatasetSchema, stream_table
from exchange.datasets.commitment import Committer
from exchange.datasets.stream import Tee
from exchange.errors import TrainingError
from exchange.ml.accounting import DpParams, DpParamsOnchain
from exchange.ml.spec import ModelSpec
from exchange.ml.streamed import TableEncoder
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
    threads: int | None = Field(None, ge=1)  # torch's intra-op threads: the runner's share of the cores


class TrainingOutput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str  # base64 of the safetensors bytes
    run: dict  # TrainingResult.provenance(): DP figures, versions, device


class RoundOrder(TrainingOrder):
    """One round of a federated job: the job's order, and the round's model (public)."""

    round: int = Field(ge=1)
    model: str  # base64 of the round's arrays (np.savez, no pickles), as the aggregator sent them


def encode_arrays(arrays: list[np.ndarray]) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_arrays(text: str) -> list[np.ndarray]:
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def train_job(payload: bytes, dataset: Path) -> bytes:
    """Sandbox entry point: `TrainingOrder` JSON in, `TrainingOutput` JSON out."""
    return _train(TrainingOrder.model_validate_json(payload), dataset, None)


def train_round(payload: bytes, dataset: Path) -> bytes:
    """Sandbox entry point for a federated round: `RoundOrder` JSON in, `TrainingOutput` out."""
    order = RoundOrder.model_validate_json(payload)
    return _train(order, dataset, decode_arrays(order.model))


def _train(order: TrainingOrder, dataset: Path, start_from: list[np.ndarray] | None) -> bytes:
    if order.threads is not None:
        torch.set_num_threads(order.threads)
    spec = ModelSpec.parse(order.spec)
    committer = Committer(CommitmentKey(bytes.fromhex(order.commitment_key)))
    encoder = TableEncoder(spec, order.dataset_schema, expected_rows=order.public_rows)
    layout = stream_table(dataset, Tee(committer, encoder))
    if committer.commitment().digest != order.commitment:
        # Say nothing about the data: only that it is not the committed table.
        raise TrainingError("The private file does not match the dataset's on-chain commitment.")
    result = train(
        spec,
        encoder.table(layout),
        order.dataset_schema,
        order.device,
        public_rows=order.public_rows,
        expected_params=DpParams.from_onchain(order.dp, order.delta),
        on_step=StepReporter(order.dp.steps // spec.rounds),  # the job's log, for the runner's queue
        start_from=start_from,
    )
    output = TrainingOutput(weights=base64.b64encode(export_weights(result.module)).decode(), run=result.provenance())
    return canonical_json(output.model_dump(mode="json"))
