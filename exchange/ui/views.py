"""What each page shows, read from the chain and content-addressed documents alone.

Every figure here is public: the chain's events and views (through the event index) and
documents fetched by CID and checked against their digests. Nothing needs a key, so the
same views serve the owner's endpoint and a buyer's `cove ui`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from exchange.catalog import DatasetView, dataset_listing, dataset_view, search_listing
from exchange.client import CoveClient
from exchange.errors import CoveError, InputError
from exchange.jobs import JobInfo, RequestedJob, fetch_provenance, job_events, job_info, verify
from exchange.paging import Slice, paginate
from exchange.policy import PolicyTerms
from exchange.provenance import Check, SignedProvenance
from exchange.sdk.ledger import budget_points, job_rows, policy_deltas
from exchange.units import epsilon_from_fixed


@dataclass(frozen=True)
class Scope:
    """Which datasets the pages show: all of the hub's (`cove ui`), or those one runner serves
    (an owner's endpoint, its storefront: it reads only its own store, never a stranger's server)."""

    runner: str | None = None

    def dataset_ids(self, client: CoveClient) -> set[int] | None:
        """The datasets in scope (None: every one), from the synced index."""
        if self.runner is None:
            return None
        return {int(row["id"]) for row in client.index.datasets_served_by(self.runner)}

    def check(self, client: CoveClient, dataset_id: int) -> None:
        ids = self.dataset_ids(client)
        if ids is not None and dataset_id not in ids:
            raise InputError(
                f"Dataset #{dataset_id} is not served by this endpoint; its own endpoint, or `cove ui` "
                "on your machine, shows it."
            )


EVERY_DATASET = Scope()


@dataclass(frozen=True)
class Market:
    """One page of the listing, filtered by a search text and a tag."""

    datasets: list[dict[str, Any]]  # catalog.LISTING_COLUMNS records
    slice: Slice
    total: int  # datasets before filtering
    tags: list[tuple[str, int]]  # every tag with its number of datasets, most used first
    query: str
    tag: str


@dataclass(frozen=True)
class JobsListing:
    jobs: list[dict[str, Any]]  # sdk.ledger.job_rows records, one page of them
    slice: Slice


@dataclass(frozen=True)
class PolicyVersion:
    """One version of a dataset's policy, as its PolicyUpdated event set it."""

    version: int
    block: int
    price: Decimal
    currency: str
    budget: Decimal
    per_job_cap: Decimal
    delta: Decimal
    max_epochs: int
    free_cap: int
    expiry: datetime | None
    restricted: bool  # an allowlist or a model-family list applies


@dataclass(frozen=True)
class DatasetPage:
    view: DatasetView
    ledger: list[dict[str, Any]]  # sdk.ledger.budget_points records: publication, then charged jobs
    spent: Decimal  # composedEpsilon, from the chain's ledger itself
    remaining: Decimal  # what the budget has left
    history: list[PolicyVersion]
    jobs: list[dict[str, Any]]  # sdk.ledger.job_rows records


@dataclass(frozen=True)
class JobPage:
    info: JobInfo
    request: RequestedJob
    spec: dict[str, Any] | None  # the spec as requested (None if it does not decode)
    epsilon: float | None  # what the job charged, at its dataset's δ
    reason: str | None  # the runner's reason, for a failed job
    provenance: SignedProvenance | None
    provenance_cid: str | None
    provenance_error: str | None  # why the record could not be read, when it could not
    checks: list[Check]


def market(client: CoveClient, query: str = "", tag: str = "", page: int = 1, scope: Scope = EVERY_DATASET) -> Market:
    """Page `page` of the datasets in `scope` whose id, name, owner or tags contain `query`
    (any case) and that carry `tag`."""
    listing = dataset_listing(client)
    ids = scope.dataset_ids(client)
    if ids is not None:
        listing = [row for row in listing if row["id"] in ids]
    counts: dict[str, int] = {}
    for row in listing:
        for name in row["tags"]:
            counts[name] = counts.get(name, 0) + 1
    shown, where = paginate(search_listing(listing, query, tag), page)
    tags = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Market(shown, where, len(listing), tags, query.strip(), tag)


def dataset_page(client: CoveClient, dataset_id: int, scope: Scope = EVERY_DATASET) -> DatasetPage:
    client.index.sync()
    if client.index.dataset(dataset_id) is None:
        raise InputError(f"There is no dataset #{dataset_id} on this hub.")
    scope.check(client, dataset_id)
    view = dataset_view(client, dataset_id)
    delta = float(view.policy.delta)
    spent = epsilon_from_fixed(int(client.session.call(client.jobs.functions.composedEpsilon(dataset_id))))
    return DatasetPage(
        view=view,
        ledger=budget_points(client, dataset_id, delta),
        spent=spent,
        remaining=max(view.policy.budget - spent, Decimal(0)),
        history=_history(client, dataset_id),
        jobs=job_rows(client, client.index.jobs(dataset_ids=[dataset_id]), {dataset_id: delta}),
    )


def _history(client: CoveClient, dataset_id: int) -> list[PolicyVersion]:
    versions = []
    for row in client.index.policies(dataset_id):
        struct = row["policy"]
        token = struct["paymentToken"]
        free = int(struct["price"]) == 0
        terms = PolicyTerms.from_onchain(
            (token, int(struct["price"]), int(struct["expiry"]), int(struct["budget"]), int(struct["perJobCap"]),
             int(struct["delta"]), int(struct["maxEpochs"]), int(struct["freeCap"]), bool(struct["computeOnly"]),
             None, None),
            18 if free else client.token_decimals(token),
            None,
        )  # fmt: skip
        versions.append(PolicyVersion(
            version=int(row["version"]), block=int(row["block"]), price=terms.price,
            currency="free" if free else client.token_symbol(token), budget=terms.budget,
            per_job_cap=terms.per_job_cap, delta=terms.delta,
            max_epochs=terms.max_epochs, free_cap=terms.free_cap, expiry=terms.expiry,
            restricted=int(row["lists_digest"], 16) != 0,
        ))  # fmt: skip
    return versions


def jobs_listing(client: CoveClient, page: int = 1, scope: Scope = EVERY_DATASET) -> JobsListing:
    """Page `page` of the jobs on datasets in `scope`, oldest first, each with its ε at its
    dataset's current δ."""
    client.index.sync()
    ids = scope.dataset_ids(client)
    jobs = client.index.jobs(dataset_ids=None if ids is None else sorted(ids))
    rows, where = paginate(jobs, page)  # ε is computed for the rows shown only
    return JobsListing(job_rows(client, rows, policy_deltas(client, {int(row["dataset_id"]) for row in rows})), where)


def job_page(client: CoveClient, job_id: int, scope: Scope = EVERY_DATASET) -> JobPage:
    """A job, and for a completed one its provenance record with every check that needs no
    key: all a buyer makes but the hash of the decrypted weights."""
    events = job_events(client, job_id)
    scope.check(client, int(events["dataset_id"]))
    info = job_info(client, job_id)
    request = RequestedJob.from_index(events)
    (row,) = job_rows(client, [events], policy_deltas(client, {info.dataset_id}))
    provenance = provenance_cid = error = None
    checks: list[Check] = []
    if events["completion"] is not None:
        try:
            cid, provenance = fetch_provenance(client, info, events)
        except CoveError as failure:  # out of reach, or not a record: said on the page
            error = str(failure)
        else:
            provenance_cid = str(cid)
            checks = verify(client, info, request, provenance, None)
    return JobPage(
        info=info, request=request, spec=_spec(request), epsilon=row["epsilon"], reason=events["reason"],
        provenance=provenance, provenance_cid=provenance_cid, provenance_error=error, checks=checks,
    )  # fmt: skip


def _spec(request: RequestedJob) -> dict[str, Any] | None:
    from exchange.ml.spec import ModelSpec

    try:
        return ModelSpec.from_wire(request.spec).model_dump(mode="json", exclude_none=True)
    except CoveError:  # a request whose spec does not decode is still shown, without it
        return None
