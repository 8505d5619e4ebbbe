"""The aggregator's whole flow: a SuperLink, the federated request, the Flower run, and each
round's model checked against the digest committed on-chain (`train_federated`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from exchange.client import CoveClient
from exchange.errors import InputError
from exchange.federated.request import FederationTicket, check_rounds, federated_rounds, preflight, request_federation
from exchange.federated.server import FederationError
from exchange.jobs import DEFAULT_DEADLINE_S
from exchange.ml.spec import FederationSpec, ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from exchange.datasets import DatasetSchema

LOG_LINES = 6  # the ServerApp log lines a failed run's error quotes
RoundCallback = Callable[[int, bytes], None]
StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class FederatedResult:
    """A completed federated run: the final model, checked round by round against the chain."""

    ticket: FederationTicket
    spec: ModelSpec  # the spec the jobs carry (its federation part included)
    schema: DatasetSchema  # the shared public schema (the first dataset's)
    module: nn.Module  # the last round's model
    round_digests: tuple[bytes, ...]  # rounds 1..R, as committed on-chain and recomputed here
    updates_roots: tuple[bytes, ...]  # rounds 1..R: the Merkle root of the runners' update digests, as committed
    run_id: int
    rounds_dir: Path  # where the aggregator kept each round's model (round-R.npz)
    log: str = field(default="", repr=False)

    @property
    def federation_id(self) -> int:
        return self.ticket.federation_id

    @property
    def job_ids(self) -> tuple[int, ...]:
        return self.ticket.job_ids

    @property
    def dataset_ids(self) -> tuple[int, ...]:
        return self.ticket.dataset_ids

    @property
    def epsilons(self) -> dict[int, float]:
        return self.ticket.epsilons

    def model_file(self) -> bytes:
        """A self-describing model file of the final model (`exchange.ml.weights.load_model_file`)."""
        from exchange.ml.weights import export_weights, model_file_bytes

        return model_file_bytes(export_weights(self.module), self.spec, self.schema)

    def to_dict(self) -> dict[str, Any]:
        return self.ticket.to_dict() | {
            "run_id": self.run_id, "round_digests": ["0x" + d.hex() for d in self.round_digests],
            "updates_roots": ["0x" + r.hex() for r in self.updates_roots],
        }  # fmt: skip

# ---------------------------------------------------------------------------- the aggregator's flow


def rpc_url(client: CoveClient) -> str:
    """The client's JSON-RPC URL (what the ServerApp connects to)."""
    uri = getattr(client.session.w3.provider, "endpoint_uri", None)
    if not uri:
        raise InputError("The client's chain connection has no HTTP URL for the aggregator's ServerApp to use.")
    return str(uri)


def train_federated(
    client: CoveClient,
    spec: ModelSpec,
    dataset_ids: Sequence[int],
    rounds: int,
    *,
    home_dir: Path | None = None,
    aggregator_key: str | None = None,
    init_seed: int | None = None,
    join_timeout: float = 120,
    stage_timeout: float = 120,
    train_timeout: float = 600,
    listen: str | None = None,
    public_address: str | None = None,
    timeout: float | None = None,
    deadline_seconds: int = DEFAULT_DEADLINE_S,
    on_round: RoundCallback | None = None,
    on_status: StatusCallback | None = None,
    poll: float = 1.0,
) -> FederatedResult:
    """Trains one model of `spec` over `dataset_ids` in `rounds` rounds, this machine the
    aggregator: starts a SuperLink (in `home_dir`, default the client home's `federations`),
    requests the federation with it, runs Cove's ServerApp until every round is committed,
    checks each round's model against its on-chain digest and returns the last one.

    `aggregator_key`: the account that commits the rounds (default: the client's own).
    `listen`: host:port the SuperLink binds (default 127.0.0.1, a free port); `public_address`:
    host:port the runners dial, written into the spec (default: the bound address).
    `stage_timeout`: seconds a round waits for the runners' replies to each key stage of
    SecAgg+; `train_timeout`: for their trained updates (each round's training, on their rows).
    `timeout`: seconds for the Flower run in all (default: from the join, stage and train timeouts).
    `on_round(round, digest)` is called as each round is committed on-chain; `on_status(text)`
    at each stage. Refusals come before the SuperLink starts, and before anything is spent.
    """
    from eth_account import Account

    from exchange.federated.aggregator import Aggregator
    from exchange.federated.server import RunSettings

    status = on_status or (lambda text: None)
    check_rounds(rounds)
    for seconds, what in ((join_timeout, "join"), (stage_timeout, "stage"), (train_timeout, "train")):
        if not seconds > 0:  # also NaN
            raise InputError(f"The {what} timeout is {seconds:g} s; give a positive number of seconds (--{what}-timeout).")
    for address, what in ((listen, "--listen"), (public_address, "--public-address")):
        if address is not None:
            _check_host_port(address, what)
    seed = secrets.randbits(32) if init_seed is None else int(init_seed)
    if aggregator_key is None:
        account = client.session.account
        if account is None:
            client.session.sender  # noqa: B018 - raises the AccountError that says what to do
        aggregator_key = "0x" + bytes(account.key).hex()  # type: ignore[union-attr]
    try:
        aggregator = str(Account.from_key(aggregator_key).address)
    except (ValueError, TypeError):
        raise InputError("The aggregator key is not a private key (32 bytes of hex).") from None
    if timeout is None:
        timeout = join_timeout + rounds * (3 * stage_timeout + train_timeout) + 120
    rpc = rpc_url(client)

    status("checking the datasets and pricing each job...")
    placeholder = FederationSpec(rounds=rounds, superlink="127.0.0.1:1")
    views, _ = preflight(client, spec.model_copy(update={"federation": placeholder}), dataset_ids)
    schema = views[0].metadata.schema_

    status("starting the aggregator's SuperLink...")
    home = home_dir if home_dir is not None else client.home.federations
    with Aggregator(Path(home), aggregator_key, listen=listen, public_address=public_address) as agg:
        federated = spec.model_copy(
            update={"federation": FederationSpec(rounds=rounds, superlink=agg.fleet_address)}
        )
        status("requesting one job per dataset and opening the federation...")
        ticket = request_federation(client, federated, [v.dataset_id for v in views], init_seed=seed,
                                    aggregator=aggregator, deadline_seconds=deadline_seconds)  # fmt: skip
        where = f"Federation #{ticket.federation_id} (jobs {', '.join(f'#{j}' for j in ticket.job_ids)})"
        settings = RunSettings(
            rpc=rpc, hub=client.deployment.cove, federation_id=ticket.federation_id, init_seed=seed,
            join_timeout=join_timeout, stage_timeout=stage_timeout, train_timeout=train_timeout,
        )  # fmt: skip
        status(f"federation #{ticket.federation_id}: waiting for the runners to join...")
        try:
            run_id = agg.submit(settings)
        except FederationError as error:
            raise FederationError(f"{where}: {error}") from None
        done = _watch(client, agg, run_id, ticket, timeout, poll, on_round, where)
        log = agg.server_log(run_id)
        if not done.completed:
            raise FederationError(
                f"{where}: the Flower run ended {done.status.removeprefix('finished:')}; "
                f"the ServerApp's log ends: {_tail(log)}"
            )
        status(f"federation #{ticket.federation_id}: checking each round's model against the chain...")
        rounds_dir = agg.rounds_dir / str(ticket.federation_id)
        digests, roots, final = _checked_rounds(client, ticket, rounds_dir, where)
    from exchange.federated.arrays import load_arrays
    from exchange.ml.model import build_model

    module = load_arrays(build_model(federated, schema), final)
    return FederatedResult(ticket, federated, schema, module, digests, roots, run_id, rounds_dir, log)


def _check_host_port(address: str, what: str) -> None:
    try:
        FederationSpec(rounds=1, superlink=address)
    except ValidationError:
        raise InputError(f"{what} must be HOST:PORT (e.g. 0.0.0.0:9092), not {address!r}.") from None


def _watch(client: CoveClient, agg: Any, run_id: int, ticket: FederationTicket, timeout: float, poll: float,
           on_round: RoundCallback | None, where: str) -> Any:  # fmt: skip
    """Polls the run until it finishes, telling `on_round` of each round committed on-chain."""
    contract = federated_rounds(client)
    deadline = time.monotonic() + timeout
    reported = 0
    while True:
        done = agg.status(run_id)
        reported = _report(client, contract, ticket.federation_id, reported, on_round)
        if done.finished:
            return done
        if time.monotonic() > deadline:
            raise FederationError(
                f"{where}: the Flower run did not finish within {timeout:g} s ({reported} of {ticket.rounds} "
                f"rounds committed); the ServerApp's log ends: {_tail(agg.server_log(run_id))}"
            )
        time.sleep(poll)


def _report(client: CoveClient, contract: Any, federation_id: int, reported: int, on_round: RoundCallback | None) -> int:
    committed = int(client.session.call(contract.functions.federationOf(federation_id))[3])
    for round_number in range(reported + 1, committed + 1):
        if on_round is not None:
            digest = bytes(client.session.call(contract.functions.roundDigest(federation_id, round_number))[0])
            on_round(round_number, digest)
    return max(reported, committed)


def _checked_rounds(
    client: CoveClient, ticket: FederationTicket, rounds_dir: Path, where: str
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], list[np.ndarray]]:
    """Each round's on-chain digest (checked against the model the aggregator kept) and updates
    root, and the last round's model."""
    from exchange.federated.arrays import model_digest

    contract = federated_rounds(client)
    initial = bytes(client.session.call(contract.functions.roundDigest(ticket.federation_id, 0))[0])
    if initial != ticket.initial_digest:
        raise FederationError(f"{where}: the chain records another initial model digest than the one requested.")
    digests: list[bytes] = []
    roots: list[bytes] = []
    arrays: list[np.ndarray] = []
    for round_number in range(1, ticket.rounds + 1):
        onchain, root = (bytes(v) for v in client.session.call(contract.functions.roundDigest(ticket.federation_id, round_number)))
        if onchain == b"\0" * 32:
            raise FederationError(f"{where}: round {round_number} of {ticket.rounds} was never committed on-chain.")
        path = rounds_dir / f"round-{round_number}.npz"
        arrays = load_round(path, where, round_number)
        if model_digest(arrays) != onchain:
            raise FederationError(
                f"{where}: the model the aggregator kept for round {round_number} ({path}) does not hash to the "
                "digest committed on-chain."
            )
        digests.append(onchain)
        roots.append(root)
    return tuple(digests), tuple(roots), arrays


def load_round(path: Path, where: str = "The federation", round_number: int | None = None) -> list[np.ndarray]:
    """The arrays of one round's model file (np.savez, arrays arr_0..arr_N in model order)."""
    import numpy as np

    label = f"round {round_number}" if round_number is not None else path.name
    try:
        with np.load(path, allow_pickle=False) as saved:
            return [np.asarray(saved[f"arr_{i}"]) for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError):
        raise FederationError(f"{where}: the aggregator kept no readable model for {label} ({path}).") from None


def _tail(log: str, lines: int = LOG_LINES) -> str:
    kept = [line.strip() for line in log.splitlines() if line.strip()][-lines:]
    text = " | ".join(kept) if kept else "(empty)"
    return text if text.endswith(".") else text + "."
