"""A federated job from the data scientist's side: one model over several owners' datasets.

`request_federation` checks everything it can before it spends anything (the datasets are
distinct and share the columns the spec uses, schema for schema; every dataset's policy
takes the job, priced over all its rounds; the caller holds a credit of each), then asks
one ordinary ComputeJobs job per dataset and opens a FederatedRounds federation of them.
`exchange.federated.run.train_federated` is the aggregator's whole flow around it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from exchange.ml.spec import MAX_ROUNDS, ModelSpec
from exchange.units import CREDIT

if TYPE_CHECKING:

    from exchange.datasets import DatasetSchema
    from exchange.datasets.schema import ColumnSchema

MIN_DATASETS = 2  # FederatedRounds.MIN_JOBS
MAX_DATASETS = 16  # FederatedRounds.MAX_JOBS



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
