"""One runner's part in a federated job: join the aggregator's SuperLink, train each round.

It runs in one of the runner's workers (with that worker's warm sandbox), after the job was
claimed and passed every public check a single-dataset job passes. For each round it:

1. checks the round's number (the next one, each round once) and that the model it was sent
   hashes to the digest the aggregator committed on-chain for the previous round (round 1:
   the federation's initial digest), so every round's input is on the public lineage;
2. trains one round (`DpParams.per_round`) from that model in the sandbox, reading the file
   and checking its commitment as a single-dataset job does;
3. hands the DP-trained parameters back to Flower's SecAgg+ mod, which masks them.

It ends when the aggregator has committed the last round on-chain; its result is the last
round's local model (DP-trained, like every round's), which the runner publishes to the
buyer as a single-dataset job's weights, with a provenance record of the job's whole charge.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compute_to_data.federated.client_app import make_client_app
from compute_to_data.federated.supernode import supernode
from compute_to_data.federated.task_loop import TaskLoop
from compute_to_data.job_training import RoundOrder, TrainingOrder, TrainingOutput, encode_arrays
from compute_to_data.sandbox import SandboxPolicy
from exchange.errors import CoveError, SandboxError
from exchange.federated.arrays import model_digest
from exchange.federated.fab import fab_hash
from exchange.provenance import FederatedPartRecord

POLL_S = 1.0


class RoundRefused(CoveError):
    """A round this runner does not train: out of order, or not the committed model."""


@dataclass
class FederatedPart:
    """What a finished part hands back to the runner."""

    output: TrainingOutput  # the last round's
    mechanism: str
    record: FederatedPartRecord  # for the provenance record


class Participation:
    def __init__(
        self, client: Any, federation_id: int, rounds: int, superlink: str, order: TrainingOrder,
        sandbox: Any, policy: SandboxPolicy, home: Path, *, idle_timeout: float, deadline: float,
    ) -> None:  # fmt: skip
        self.client = client
        self.federation_id = federation_id
        self.rounds = rounds
        self.superlink = superlink
        self.order = order
        self.sandbox = sandbox
        self.policy = policy
        self.home = home
        self.idle_timeout = idle_timeout
        self.deadline = deadline  # monotonic
        self.contract = client.session.contract("FederatedRounds", client.deployment.federated_rounds)
        self.done = 0
        self.rows_read = False
        self.last: tuple[TrainingOutput, str] | None = None
        self.round_models: list[str] = []  # 0x digest of the model each round started from
        self.update_digests: list[str] = []  # 0x digest of what this runner sent each round
        self._last_activity = time.monotonic()
        self._lock = threading.Lock()

    # -- one round (called by the ClientApp, in the task loop's thread)

    def train_round(self, round_number: int, claimed: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            self._last_activity = time.monotonic()
            if round_number != self.done + 1 or round_number > self.rounds:
                raise RoundRefused(f"Round {round_number} is not the next of this job's rounds ({self.done} done).")
            digest = model_digest(arrays)
            committed = self._committed_digest(round_number - 1)
            if "0x" + digest.hex() != claimed or digest != committed:
                raise RoundRefused(f"The model sent for round {round_number} is not the one committed on-chain.")
            payload = RoundOrder(**self.order.model_dump(), round=round_number, model=encode_arrays(arrays))
            self.rows_read = True  # from here on, the sandbox may read private rows
            try:
                result = self.sandbox.run(payload.model_dump_json().encode(), self.policy, stage="training",
                                          function="train_round")  # fmt: skip
            except SandboxError as error:
                raise RoundRefused(f"Round {round_number} did not finish ({error.reason}).") from None
            output = TrainingOutput.model_validate_json(result.output)
            update = _arrays_of(output, self.order)
            self.last = (output, result.mechanism)
            self.round_models.append(claimed)
            self.update_digests.append("0x" + model_digest(update).hex())
            self.done = round_number
            self._last_activity = time.monotonic()
            return update

    def _committed_digest(self, round_number: int) -> bytes:
        digest, _ = self.client.session.call(self.contract.functions.roundDigest(self.federation_id, round_number))
        return bytes(digest)

    # -- the whole part

    def run(self) -> FederatedPart:
        """Serves rounds until the last is committed on-chain; CoveError when the part cannot end."""
        node, address = supernode(self.superlink, self.home, max_wait_s=max(10, int(self.idle_timeout)))
        loop = TaskLoop(address, make_client_app(self.train_round), fab_hash())
        thread = threading.Thread(target=loop.run, args=(self.deadline,), name="cove-federated-tasks", daemon=True)
        try:
            node.start()
            thread.start()
            while not self._final_committed():
                if time.monotonic() > self.deadline:
                    raise CoveError(f"The federation did not finish its {self.rounds} rounds before the job's deadline.")
                if time.monotonic() - self._last_activity > self.idle_timeout:
                    raise CoveError(f"No round came from the aggregator for {self.idle_timeout:g} s ({self.done} done).")
                if not node.alive:
                    raise CoveError("The runner's Flower SuperNode stopped.")
                failed = [o for o in loop.outcomes if not o.ok]
                if failed:
                    raise CoveError(f"A round was refused: {failed[0].detail}")
                time.sleep(POLL_S)
        finally:
            loop.stop.set()
            thread.join(timeout=30)
            node.stop()
        if self.done != self.rounds or self.last is None:
            raise CoveError(f"The federation committed its last round, but this runner trained {self.done} of "
                            f"{self.rounds}.")  # fmt: skip
        output, mechanism = self.last
        record = FederatedPartRecord(
            federated_rounds=self.contract.address, federation_id=self.federation_id, rounds=self.rounds,
            round_models=tuple(self.round_models), updates=tuple(self.update_digests),
        )  # fmt: skip
        return FederatedPart(output, mechanism, record)

    def _final_committed(self) -> bool:
        return self._committed_digest(self.rounds) != b"\x00" * 32


def _arrays_of(output: TrainingOutput, order: TrainingOrder) -> list[np.ndarray]:
    """The round's parameters, rebuilt from the sandbox's safetensors into the spec's model
    (so nothing but its parameters leaves), as float32 arrays."""
    import base64

    from exchange.federated.arrays import model_arrays
    from exchange.ml.spec import ModelSpec
    from exchange.ml.weights import load_weights

    spec = ModelSpec.parse(order.spec)
    try:
        module = load_weights(spec, order.dataset_schema, base64.b64decode(output.weights, validate=True))
    except (CoveError, ValueError):
        raise RoundRefused("The sandbox returned something other than the model's parameters.") from None
    return model_arrays(module)
