"""A federated job from the data scientist's side: one model over several owners' datasets.

`request_federation` checks everything it can before it spends anything (the datasets are
distinct and share the columns the spec uses, schema for schema; every dataset's policy
takes the job, priced over all its rounds; the caller holds a credit of each), then asks
one ordinary ComputeJobs job per dataset and opens a FederatedRounds federation of them.
`train_federated` is the aggregator's whole flow around it: a SuperLink, the request, the
Flower run, and each round's model checked against the digest committed on-chain.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from web3.logs import DISCARD

from exchange.catalog import DatasetView, dataset_view
from exchange.client import CoveClient
from exchange.errors import CoveError, InputError, SpecError
from exchange.federated.server import FederationError
from exchange.jobs import (
    DEFAULT_DEADLINE_S,
    MAX_SPEC_WIRE_BYTES,
    JobQuote,
    JobTicket,
    price_job,
    request_job,
)  # fmt: skip
from exchange.merkle import MerkleTree, address_leaf
from exchange.ml.spec import MAX_ROUNDS, FederationSpec, ModelSpec
from exchange.units import CREDIT

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from exchange.datasets import DatasetSchema
    from exchange.datasets.schema import ColumnSchema

MIN_DATASETS = 2  # FederatedRounds.MIN_JOBS
MAX_DATASETS = 16  # FederatedRounds.MAX_JOBS
LOG_LINES = 6  # the ServerApp log lines a failed run's error quotes

RoundCallback = Callable[[int, bytes], None]
StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class FederationTicket:
    """A federation the chain opened: one job per dataset, each charged for all its rounds."""

    federation_id: int
    consumer: str
    aggregator: str
    rounds: int
    spec_hash: str
    init_seed: int
    initial_digest: bytes  # round 0's model digest, as FederatedRounds records it
    jobs: tuple[JobTicket, ...]  # in the order of the datasets (and of FederatedRounds.jobsOf)
    open_tx_hash: str
    open_gas_used: int

    @property
    def job_ids(self) -> tuple[int, ...]:
        return tuple(job.job_id for job in self.jobs)

    @property
    def dataset_ids(self) -> tuple[int, ...]:
        return tuple(job.dataset_id for job in self.jobs)

    @property
    def epsilons(self) -> dict[int, float]:
        """Each dataset's ε for its job (all local steps of all rounds), at its policy's δ."""
        return {job.dataset_id: job.epsilon for job in self.jobs}

    @property
    def composed_epsilons(self) -> dict[int, float]:
        """Each dataset's ε spent once its job is charged."""
        return {job.dataset_id: job.composed_epsilon for job in self.jobs}

    @property
    def tx_hashes(self) -> tuple[str, ...]:
        """The jobs' requests, then the federation's opening."""
        return (*(job.tx_hash for job in self.jobs), self.open_tx_hash)

    @property
    def gas_used(self) -> int:
        return sum(job.gas_used for job in self.jobs) + self.open_gas_used

    def to_dict(self) -> dict[str, Any]:
        return {
            "federation_id": self.federation_id, "consumer": self.consumer, "aggregator": self.aggregator,
            "rounds": self.rounds, "spec_hash": self.spec_hash, "init_seed": self.init_seed,
            "initial_digest": "0x" + self.initial_digest.hex(),
            "jobs": [{"job_id": j.job_id, "dataset_id": j.dataset_id, "epsilon": j.epsilon,
                      "composed_epsilon": j.composed_epsilon, "delta": j.delta, "tx_hash": j.tx_hash,
                      "gas_used": j.gas_used} for j in self.jobs],
            "open_tx_hash": self.open_tx_hash, "gas_used": self.gas_used,
        }  # fmt: skip


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


# ---------------------------------------------------------------------------- checks


def check_dataset_ids(dataset_ids: Sequence[int]) -> list[int]:
    """The ids as a list: at least two, at most sixteen, none twice (InputError otherwise)."""
    ids = [int(d) for d in dataset_ids]
    seen: set[int] = set()
    for dataset_id in ids:
        if dataset_id in seen:
            raise InputError(f"Dataset #{dataset_id} is given twice; a federation trains on each dataset once.")
        seen.add(dataset_id)
    if len(ids) < MIN_DATASETS:
        raise InputError(
            f"A federation trains on at least {MIN_DATASETS} datasets, not {len(ids)}; "
            "train on one dataset with an ordinary job instead."
        )
    if len(ids) > MAX_DATASETS:
        raise InputError(f"A federation trains on at most {MAX_DATASETS} datasets, not {len(ids)}.")
    return ids


def check_rounds(rounds: int) -> int:
    if not 1 <= rounds <= MAX_ROUNDS:
        raise InputError(f"A federation runs 1 to {MAX_ROUNDS} rounds, not {rounds}.")
    return rounds


def check_shared_columns(spec: ModelSpec, views: Sequence[DatasetView]) -> None:
    """SpecError naming the dataset and the column, unless every dataset fits `spec` and has
    the same public schema (kind, range, categories, nullable, fill) for every column the
    spec uses as the first dataset has: the model, its encoding and its outputs are then the
    same on every owner's premises."""
    first = views[0]
    with naming_dataset(first.dataset_id):
        spec.check_against(first.metadata.schema_)
    reference = {c.name: c for c in first.metadata.schema_.columns}
    for view in views[1:]:
        columns = {c.name: c for c in view.metadata.schema_.columns}
        for name in (*spec.features, spec.target):
            if name not in columns:  # said as the runner would say it
                with naming_dataset(view.dataset_id):
                    spec.check_against(view.metadata.schema_)
            difference = _difference(reference[name], columns[name])
            if difference:
                raise SpecError(
                    f"Dataset #{view.dataset_id}'s column '{name}' {difference[1]}, but dataset "
                    f"#{first.dataset_id}'s {difference[0]}; a federation needs the same public schema for every "
                    "column the spec uses."
                )
        with naming_dataset(view.dataset_id):  # the same columns: it fits as the first does
            spec.check_against(view.metadata.schema_)


def _difference(ours: ColumnSchema, theirs: ColumnSchema) -> tuple[str, str] | None:
    """How `theirs` differs from `ours`, as (ours, theirs) phrases; None when they are equal."""
    if ours == theirs:
        return None
    if ours.kind != theirs.kind:
        return f"is of kind {ours.kind}", f"is of kind {theirs.kind}"
    if ours.nullable != theirs.nullable:
        phrase = {True: "may be missing", False: "may not be missing"}
        return phrase[ours.nullable], phrase[theirs.nullable]
    if (ours.minimum, ours.maximum) != (theirs.minimum, theirs.maximum):
        return f"is {_range(ours)}", f"is {_range(theirs)}"
    if ours.categories != theirs.categories:
        return f"has {_categories(ours)}", f"has {_categories(theirs)}"
    if ours.fallback != theirs.fallback:
        return f"falls back to {_or_default(ours.fallback)}", f"falls back to {_or_default(theirs.fallback)}"
    if ours.fill != theirs.fill:
        return f"fills a missing target with {_or_default(ours.fill)}", f"fills a missing target with {_or_default(theirs.fill)}"
    return "has another schema", "has another schema"  # a field ColumnSchema gained later


def _range(column: ColumnSchema) -> str:
    return f"in [{column.minimum}, {column.maximum}]"


def _or_default(value: Any) -> str:
    return "the default" if value is None else repr(value)


def _categories(column: ColumnSchema) -> str:
    categories = column.categories or []
    return f"the categories {', '.join(repr(c) for c in categories)}" if categories else "no categories"


@contextmanager
def naming_dataset(dataset_id: int) -> Iterator[None]:
    """Re-raises a CoveError whose sentence does not name dataset #`dataset_id` with it."""
    try:
        yield
    except CoveError as error:
        text = str(error)
        if re.search(rf"#{dataset_id}(?!\d)", text):
            raise
        if text[:1].isupper() and text[1:2].islower():
            text = text[0].lower() + text[1:]
        try:
            named = copy.copy(error)
            named.args = (f"For dataset #{dataset_id}: {text}",)
        except TypeError:  # an error class that cannot be rebuilt from its sentence: keep it as it is
            raise error from None
        raise named from None


def preflight(
    client: CoveClient, spec: ModelSpec, dataset_ids: Sequence[int]
) -> tuple[list[DatasetView], list[JobQuote]]:
    """Every check of a federated request that can be made without sending anything: the
    datasets, their shared columns, each one's price (policy, per-job cap, budget left, over
    all the rounds), the caller's credit and allowlist place on each, the spec's size."""
    if spec.federation is None:
        raise SpecError(
            "A federated request needs a spec with a federation part (its rounds and the aggregator's "
            "superlink); add one, or use train_federated, which sets it."
        )
    ids = check_dataset_ids(dataset_ids)
    buyer = client.session.sender
    views = []
    for dataset_id in ids:
        with naming_dataset(dataset_id):
            views.append(dataset_view(client, dataset_id))
    check_shared_columns(spec, views)
    wire = spec.to_wire()
    if len(wire) > MAX_SPEC_WIRE_BYTES:
        raise SpecError(
            f"The spec is {len(wire)} bytes compressed, above the {MAX_SPEC_WIRE_BYTES} a request may carry; "
            "use fewer or shorter feature names."
        )
    quotes = []
    for view in views:
        with naming_dataset(view.dataset_id):
            quotes.append(price_job(client, view.dataset_id, spec))
    for view in views:
        _check_access(client, view, buyer)
    return views, quotes


def _check_access(client: CoveClient, view: DatasetView, buyer: str) -> None:
    """What request_job refuses before it sends anything, asked of every dataset up front."""
    dataset_id = view.dataset_id
    credits = client.session.call(client.datatoken(view.datatoken).functions.balanceOf(buyer))
    if credits < CREDIT:
        raise InputError(f"{buyer} holds no credit of dataset #{dataset_id}; buy one with `cove buy {dataset_id}`.")
    allowlist = view.policy.allowlist
    if allowlist and MerkleTree([address_leaf(a) for a in allowlist]).proof(address_leaf(buyer)) is None:
        raise InputError(f"{buyer} is not on the allowlist of dataset #{dataset_id}; ask its owner to add you.")


def _aggregator_address(client: CoveClient, aggregator: str | None) -> str:
    from web3 import Web3

    if aggregator is None:
        return client.session.sender
    if not Web3.is_address(aggregator) or int(aggregator, 16) == 0:
        raise InputError(f"The aggregator {aggregator!r} is not an account address (0x and 40 hex digits, not zero).")
    return str(Web3.to_checksum_address(aggregator))


# ---------------------------------------------------------------------------- the request


def initial_digest(spec: ModelSpec, schema: DatasetSchema, init_seed: int) -> bytes:
    """Round 0's model digest: the spec's model on the shared schema, initialised from `init_seed`."""
    from exchange.federated.arrays import model_digest
    from exchange.federated.server import initial_arrays

    return model_digest(initial_arrays(spec, schema, init_seed))


def federated_rounds(client: CoveClient) -> Any:
    return client.session.contract("FederatedRounds", client.deployment.federated_rounds)


def request_federation(
    client: CoveClient,
    spec: ModelSpec,
    dataset_ids: Sequence[int],
    *,
    init_seed: int,
    aggregator: str | None = None,
    deadline_seconds: int = DEFAULT_DEADLINE_S,
) -> FederationTicket:
    """Requests one job of `spec` on each dataset (a credit each, each ledger charged for all
    `spec.rounds` rounds) and opens a federation of them for `aggregator` (default: the
    caller) to run from the model `init_seed` initialises.

    Refused before anything is spent (one sentence naming the dataset) when a dataset is
    given twice, the datasets do not share the spec's columns, or any dataset's policy,
    budget or credits refuse its job.
    """
    if init_seed < 0:
        raise InputError(f"The initial model's seed must not be negative, not {init_seed}.")
    views, _ = preflight(client, spec, dataset_ids)
    agg = _aggregator_address(client, aggregator)
    assert spec.federation is not None  # preflight checked
    digest = initial_digest(spec, views[0].metadata.schema_, init_seed)

    tickets: list[JobTicket] = []
    for view in views:
        try:
            with naming_dataset(view.dataset_id):
                tickets.append(request_job(client, view.dataset_id, spec, deadline_seconds=deadline_seconds,
                                           federation_part=True))
        except CoveError as error:
            if not tickets:
                raise
            raise FederationError(_stranded(client, tickets, "The federation was not opened", error)) from None

    contract = federated_rounds(client)
    function = contract.functions.open([t.job_id for t in tickets], agg, spec.rounds, digest)
    try:
        receipt = _open(client, function)
    except CoveError as error:
        raise FederationError(_stranded(client, tickets, "Opening the federation failed", error)) from None
    event = contract.events.FederationOpened().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return FederationTicket(
        federation_id=int(event["fedId"]),
        consumer=client.session.sender,
        aggregator=agg,
        rounds=spec.rounds,
        spec_hash=spec.spec_hash(),
        init_seed=init_seed,
        initial_digest=digest,
        jobs=tuple(tickets),
        open_tx_hash=receipt["transactionHash"].to_0x_hex(),
        open_gas_used=int(receipt["gasUsed"]),
    )


def _open(client: CoveClient, function: Any) -> Any:
    client.session.simulate(function)
    return client.session.transact(function)


def _stranded(client: CoveClient, tickets: Sequence[JobTicket], what: str, error: CoveError) -> str:
    """One sentence on jobs requested for a federation that was not opened, and what to do."""
    jobs = ", ".join(f"#{t.job_id} (dataset #{t.dataset_id})" for t in tickets)
    try:
        deadline = int(client.session.call(client.jobs.functions.jobOf(tickets[0].job_id))[5])
        when = f"after their deadline ({datetime.fromtimestamp(deadline, UTC):%Y-%m-%d %H:%M} UTC)"
    except CoveError:
        when = "after their deadline"
    reason = str(error).rstrip(".")
    return (
        f"{what} ({reason}), but jobs {jobs} were requested and hold a credit and ε each: "
        f"no runner accepts them outside a federation, and their consumer can take them back {when} "
        "with ComputeJobs.refund, which returns both."
    )


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
    `timeout`: seconds for the Flower run in all (default: from the join and stage timeouts).
    `on_round(round, digest)` is called as each round is committed on-chain; `on_status(text)`
    at each stage. Refusals come before the SuperLink starts, and before anything is spent.
    """
    from eth_account import Account

    from exchange.federated.aggregator import Aggregator
    from exchange.federated.server import RunSettings

    status = on_status or (lambda text: None)
    check_rounds(rounds)
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
        timeout = join_timeout + rounds * 4 * stage_timeout + 120
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
            join_timeout=join_timeout, stage_timeout=stage_timeout,
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
