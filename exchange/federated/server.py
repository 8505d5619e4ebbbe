"""Cove's ServerApp: Flower's FedAvg over SecAgg+, each round committed on-chain before the next.

It runs on the aggregator's machine, in the `flwr-serverapp` process the aggregator's
SuperLink starts, and reads everything it needs from the chain: the federation (its jobs,
rounds and initial model digest), the jobs' spec. The aggregator's key reaches it in the
environment of the aggregator's own process tree (`AGGREGATOR_KEY_ENV`), never through
Flower's run config, which the SuperLink stores.

What the aggregator sees: that a node took part, the SecAgg+ sum of the updates (their
average, since every runner reports the same public weight, 1) and each update's digest,
whose Merkle root it commits with the round. It never sees one runner's update, and no
runner reports its row count or any metric of its rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from logging import INFO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from exchange.errors import CoveError
from exchange.federated.arrays import UPDATE_DIGEST, as_float32, model_arrays, model_digest, updates_root
from exchange.ml.model import build_model

AGGREGATOR_KEY_ENV = "COVE_AGGREGATOR_KEY"
ROUNDS_DIR_ENV = "COVE_FEDERATION_ROUNDS_DIR"


class FederationError(CoveError):
    """A federated run cannot go on (a round did not aggregate, members did not join)."""


class RunSettings(BaseModel):
    """The run config `cove train` passes to `flwr run` (all public)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    rpc: str
    hub: str
    federation_id: int = Field(ge=1)
    init_seed: int = Field(ge=0)
    join_timeout: float = Field(gt=0)  # seconds to wait for every member to connect
    stage_timeout: float = Field(gt=0)  # seconds SecAgg+ waits for the replies of a key stage
    train_timeout: float = Field(gt=0)  # seconds it waits for the trained, masked updates of a round

    @classmethod
    def from_run_config(cls, config: dict[str, Any]) -> RunSettings:
        return cls.model_validate({key.replace("-", "_"): value for key, value in config.items()})

    def to_run_config(self) -> str:
        """The `--run-config` argument of `flwr run` (TOML-ish key=value pairs)."""
        parts = []
        for key, value in self.model_dump().items():
            text = f'"{value}"' if isinstance(value, str) else repr(value)
            parts.append(f"{key.replace('_', '-')}={text}")
        return " ".join(parts)


def initial_arrays(spec: Any, schema: Any, seed: int) -> list[np.ndarray]:
    """Round 0's model: the spec's model initialised from `seed` (public, recomputable)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_arrays(build_model(spec, schema))


@dataclass
class RoundRecord:
    round: int
    digest: bytes
    tx_hash: str


class RoundCommitter:
    """Commits one aggregated round on-chain and keeps its model in the aggregator's home."""

    def __init__(self, client: Any, federation_id: int, rounds_dir: Path | None) -> None:
        self.client = client
        self.federation_id = federation_id
        self.rounds_dir = rounds_dir
        self.contract = client.session.contract("FederatedRounds", client.deployment.federated_rounds)

    def commit(self, round_number: int, arrays: list[np.ndarray], updates: bytes) -> RoundRecord:
        digest = model_digest(arrays)
        if self.rounds_dir is not None:  # before the commitment: the model is never lost once committed
            self.rounds_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.rounds_dir / f"round-{round_number}.npz.tmp"
            with tmp.open("wb") as handle:
                np.savez(handle, *arrays)
            tmp.replace(self.rounds_dir / f"round-{round_number}.npz")
        function = self.contract.functions.commitRound(self.federation_id, round_number, digest, updates)
        receipt = self.client.session.transact(function)
        return RoundRecord(round_number, digest, receipt["transactionHash"].to_0x_hex())


def make_strategy(initial: list[np.ndarray], members: int, join_timeout: float, committer: RoundCommitter) -> Any:
    """FedAvg that waits (bounded) for every member, sends each round's model digest along,
    and commits each aggregate before the next round is configured."""
    from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg
    from flwr.supercore import log

    class CommittingFedAvg(FedAvg):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(
                fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=members, min_evaluate_clients=0,
                min_available_clients=members, initial_parameters=ndarrays_to_parameters(initial),
                accept_failures=True,
            )  # fmt: skip
            self.committed: list[RoundRecord] = []
            self.left_out: set[int] = set()  # node ids that missed a round's setup: out for good
            self.current_round = 0

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list[tuple[Any, Any]]:
            self.current_round = server_round
            if server_round == 1 and not client_manager.wait_for(members, timeout=int(join_timeout)):
                raise FederationError(
                    f"Only {client_manager.num_available()} of the federation's {members} runners joined within "
                    f"{join_timeout:g} s."
                )
            clients = [c for c in client_manager.all().values() if c.node_id not in self.left_out]
            if len(clients) < 2:
                raise FederationError(f"Round {server_round} has {len(clients)} runner left; SecAgg+ needs two.")
            digest = model_digest(parameters_to_ndarrays(parameters))
            config = {"round": server_round, "model-digest": "0x" + digest.hex()}
            return [(client, FitIns(parameters, dict(config))) for client in clients]

        def aggregate_fit(self, server_round: int, results: list[Any], failures: list[Any]) -> tuple[Any, dict]:
            if not results:
                raise FederationError(f"Round {server_round} produced no aggregate ({len(failures)} failures).")
            aggregate = as_float32(parameters_to_ndarrays(results[0][1].parameters))
            digests = [_update_digest(fit.metrics) for _, fit in results]
            if None in digests:
                raise FederationError(f"A runner's reply in round {server_round} carries no update digest.")
            record = committer.commit(server_round, aggregate, updates_root(digests))  # type: ignore[arg-type]
            self.committed.append(record)
            log(INFO, "round %s committed: digest 0x%s, tx %s", server_round, record.digest.hex(), record.tx_hash)
            return ndarrays_to_parameters(aggregate), {}

        def configure_evaluate(self, server_round: int, parameters: Any, client_manager: Any) -> list:
            return []  # runners report nothing computed on their rows

    return CommittingFedAvg()


def make_secure_fit(strategy: Any, stage_timeout: float, train_timeout: float) -> Any:
    """Flower's SecAgg+ workflow, restarted among the rest when a runner misses a key stage,
    and stopped at the first round that does not aggregate.

    SecAgg+ recovers a runner that drops out after the keys are shared (its masks are rebuilt
    from the others' shares), but not one that drops out before: one silent at the setup
    leaves too few shares of the others' secrets when only two remain, and one silent at the
    key sharing is still asked for in the unmasking, where no runner holds a share of its key
    (Flower's runners then fail the round). Either way the round would be lost after every
    runner had trained. So a round goes past each of those two stages only if every runner
    asked answered it; otherwise the silent ones are left out and the round starts again.
    Nothing has been trained at that point: each runner trains once per round, in the stage
    after.

    That stage (collecting the masked updates) waits `train_timeout`, the others
    `stage_timeout`: a runner's reply there comes after its training, which takes as long as
    its rows need, while a key stage's reply is a few milliseconds of work. A round that
    still does not aggregate ends the run with the reason: the next round could only be
    refused, as its runners check the model they are sent against the last one committed.
    """
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.supercore import log

    class CheckedSecAggPlus(SecAggPlusWorkflow):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(
                num_shares=1.0,  # every runner holds a share of every other's keys
                reconstruction_threshold=0.5,  # half of them: one of three may drop out after the setup
                max_weight=1.0,  # every runner reports weight 1 (never its row count)
                timeout=stage_timeout,
            )
            self.restart = False
            self.halted = ""  # why the round's aggregation stopped, if it did

        def _stage(self, name: str, stage: Any, timeout: float, grid: Any, context: Any, state: Any,
                   advice: str = "") -> bool:  # fmt: skip
            self.timeout = timeout  # Flower's stages read the one `timeout` as they send
            asked = len(state.active_node_ids)  # none yet before the setup, which samples them
            if stage(grid, context, state):
                return True
            asked, answered = asked or len(state.sampled_node_ids), len(state.active_node_ids)
            self.halted = (
                f"{answered} of the {asked} runners asked answered its {name} stage within {timeout:g} s{advice}"
                if answered < asked else f"its {name} stage failed with every runner answering (see the log above)"
            )
            return False

        def _all_answered(self, name: str, stage: Any, grid: Any, context: Any, state: Any) -> bool:
            """Runs a key stage; a runner silent there is left out and the round starts again."""
            asked = set(state.active_node_ids)  # none yet before the setup, which samples them
            answered = self._stage(name, stage, stage_timeout, grid, context, state)
            silent = (asked or set(state.sampled_node_ids)) - set(state.active_node_ids)
            if silent:
                strategy.left_out |= silent
                self.restart = True
                log(INFO, "%s runner(s) missed the %s; the round starts again without them", len(silent), name)
                return False
            return answered

        def setup_stage(self, grid: Any, context: Any, state: Any) -> bool:
            return self._all_answered("setup", super().setup_stage, grid, context, state)

        def share_keys_stage(self, grid: Any, context: Any, state: Any) -> bool:
            return self._all_answered("key sharing", super().share_keys_stage, grid, context, state)

        def collect_masked_vectors_stage(self, grid: Any, context: Any, state: Any) -> bool:
            advice = "; a round's training may need longer (cove train --train-timeout, or train_timeout=)"
            return self._stage("training", super().collect_masked_vectors_stage, train_timeout, grid, context, state,
                               advice)  # fmt: skip

        def unmask_stage(self, grid: Any, context: Any, state: Any) -> bool:
            return self._stage("unmasking", super().unmask_stage, stage_timeout, grid, context, state)

        def __call__(self, grid: Any, context: Any) -> None:
            committed = len(strategy.committed)
            while True:  # each restart leaves one runner out at least: bounded by their number
                self.restart, self.halted = False, ""
                super().__call__(grid, context)
                if not self.restart:
                    break
            if len(strategy.committed) == committed:
                why = self.halted or "its aggregate was not committed"
                raise FederationError(f"Round {strategy.current_round} did not aggregate: {why}.")

    return CheckedSecAggPlus()


def run_federation(grid: Any, context: Any) -> None:
    """The ServerApp's main: read the federation on-chain, then run its rounds."""
    from eth_account import Account
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow

    from exchange.catalog import dataset_view
    from exchange.client import CoveClient
    from exchange.jobs import requested_job
    from exchange.ml.spec import ModelSpec

    settings = RunSettings.from_run_config(dict(context.run_config))
    key = os.environ.get(AGGREGATOR_KEY_ENV)
    if not key:
        raise FederationError(f"The ServerApp needs the aggregator's key in ${AGGREGATOR_KEY_ENV}.")
    client = CoveClient.open(settings.rpc, Account.from_key(key), hub=settings.hub)
    federation = read_federation(client, settings.federation_id)
    if federation.aggregator.lower() != client.session.sender.lower():
        raise FederationError(f"Federation #{settings.federation_id} names another aggregator, {federation.aggregator}.")
    if federation.committed:
        raise FederationError(f"Federation #{settings.federation_id} already has {federation.committed} rounds committed.")
    first = requested_job(client, federation.jobs[0])
    spec = ModelSpec.from_wire(first.spec)
    schema = dataset_view(client, first.dataset_id).metadata.schema_
    initial = initial_arrays(spec, schema, settings.init_seed)
    if model_digest(initial) != federation.initial_digest:
        raise FederationError("The initial model does not hash to the federation's initial model digest.")

    rounds_dir = os.environ.get(ROUNDS_DIR_ENV)
    where = Path(rounds_dir) / str(settings.federation_id) if rounds_dir else None
    committer = RoundCommitter(client, settings.federation_id, where)
    strategy = make_strategy(initial, len(federation.jobs), settings.join_timeout, committer)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=federation.rounds), strategy=strategy)
    workflow = DefaultWorkflow(fit_workflow=make_secure_fit(strategy, settings.stage_timeout, settings.train_timeout))
    workflow(grid, legacy)
    if len(strategy.committed) != federation.rounds:
        raise FederationError(
            f"Only {len(strategy.committed)} of the federation's {federation.rounds} rounds completed."
        )


def _update_digest(metrics: dict[str, Any]) -> bytes | None:
    text = metrics.get(UPDATE_DIGEST)
    if not isinstance(text, str) or len(text) != 66 or not text.startswith("0x"):
        return None
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        return None


@dataclass(frozen=True)
class FederationInfo:
    federation_id: int
    consumer: str
    aggregator: str
    rounds: int
    committed: int
    initial_digest: bytes
    jobs: tuple[int, ...]


def read_federation(client: Any, federation_id: int) -> FederationInfo:
    """Federation `federation_id` as FederatedRounds records it."""
    contract = client.session.contract("FederatedRounds", client.deployment.federated_rounds)
    record = client.session.call(contract.functions.federationOf(federation_id))
    jobs = client.session.call(contract.functions.jobsOf(federation_id))
    consumer, aggregator, rounds, committed, initial = (record[k] for k in range(5))
    return FederationInfo(federation_id, consumer, aggregator, int(rounds), int(committed), bytes(initial),
                          tuple(int(j) for j in jobs))  # fmt: skip
