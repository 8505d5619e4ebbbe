"""Browsing: datasets from the event index joined with their metadata and current policy.

The listing is one query of the index; each metadata document is read and validated once,
then only its summary (name, tags, columns) is kept in the index, keyed by its digest. So
listing needs neither pandas (which validating a document imports) nor a call per dataset:
only one per distinct payment token, for its symbol and decimals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchange.client import CoveClient
from exchange.errors import CoveError, InputError
from exchange.index import checksummed
from exchange.policy import PolicyTerms, ZERO32
from exchange.storage import Cid

if TYPE_CHECKING:
    import pandas as pd

    from exchange.datasets import DatasetMetadata

# The listing's fields, in order: the columns of `datasets_frame` and `cove datasets --json`.
LISTING_COLUMNS = ["id", "name", "rows", "columns", "price", "currency", "budget_epsilon",
                   "per_job_epsilon", "policy_version", "owner", "tags"]  # fmt: skip
OUT_OF_REACH = "(metadata out of reach)"


@dataclass(frozen=True)
class DatasetView:
    """Everything public about one dataset."""

    dataset_id: int
    owner: str
    datatoken: str
    runner: str
    controller: str
    rows: int
    commitment: str
    metadata_cid: str
    metadata: DatasetMetadata
    policy: PolicyTerms
    policy_version: int
    payment_symbol: str


def _check_dataset_id(dataset_id: int) -> None:
    """Ids are uint256 from 1; anything else would fail ABI encoding with a web3 traceback."""
    if not 1 <= dataset_id < 2**256:
        raise InputError(f"There is no dataset #{dataset_id}; list them with `cove datasets`.")


def policy_of(client: CoveClient, dataset_id: int) -> tuple[PolicyTerms, int, tuple[Any, ...]]:
    """The current policy of `dataset_id` (from the chain), its version and raw struct."""
    _check_dataset_id(dataset_id)
    struct, version = client.session.call(client.cove.functions.policyOf(dataset_id))
    lists = _policy_lists(client, dataset_id, struct)
    token = None if int(struct[0], 16) == 0 else struct[0]
    return PolicyTerms.from_onchain(tuple(struct), client.token_decimals(token), lists), int(version), tuple(struct)


def _policy_lists(client: CoveClient, dataset_id: int, struct: Any) -> dict[str, list[str]] | None:
    if struct[9] == ZERO32 and struct[10] == ZERO32:
        return None
    client.index.sync()
    latest = client.index.latest_policy(dataset_id)
    if latest is None or int(latest["lists_digest"], 16) == 0:
        return None
    cid = Cid.from_raw_digest(bytes.fromhex(latest["lists_digest"][2:]))
    runner = client.session.call(client.cove.functions.datasetOf(dataset_id))[5]
    document = client.content.get(
        cid, client.endpoints_of(runner), what=f"allowlist and model-family list of dataset #{dataset_id}"
    )
    try:
        return dict(json.loads(document))
    except (ValueError, TypeError):
        raise InputError(f"The allowlist document of dataset #{dataset_id} ({cid}) is not a JSON object.") from None


def dataset_view(client: CoveClient, dataset_id: int) -> DatasetView:
    """Everything public about `dataset_id`: the chain's record and policy, and its metadata
    from the cache or the dataset's endpoint (ContentUnavailable, one sentence, when out of reach)."""
    _check_dataset_id(dataset_id)
    record = client.session.call(client.cove.functions.datasetOf(dataset_id))
    owner = client.session.call(client.cove.functions.ownerOf(dataset_id))
    controller = client.session.call(client.cove.functions.policyController(dataset_id))
    terms, version, _ = policy_of(client, dataset_id)
    from exchange.publish import load_metadata  # imports pandas (the metadata's mock and schema)

    digest = bytes(record[0])
    metadata = load_metadata(client, digest, client.endpoints_of(record[5]), dataset_id)
    return DatasetView(
        dataset_id=dataset_id,
        owner=owner,
        datatoken=record[2],
        runner=record[5],
        controller=controller,
        rows=int(record[3]),
        commitment="0x" + bytes(record[1]).hex(),
        metadata_cid=str(Cid.from_raw_digest(digest)),
        metadata=metadata,
        policy=terms,
        policy_version=version,
        payment_symbol=client.token_symbol(terms.payment_token),
    )


def dataset_listing(client: CoveClient) -> list[dict[str, Any]]:
    """Every dataset, by id, as a dict of LISTING_COLUMNS: from the index (synced first) in
    one query, metadata summaries from the index too; a document not summarised yet is read
    (cache, then the dataset's endpoint), validated and summarised, or listed as out of reach."""
    client.index.sync()
    entries = client.index.dataset_listing()
    _summarise(client, [entry for entry in entries if entry["name"] is None])
    return [_listing_row(client, entry) for entry in entries]


def search_listing(listing: list[dict[str, Any]], query: str = "", tag: str = "") -> list[dict[str, Any]]:
    """The rows of `listing` whose id, name, owner or tags contain `query` (any case) and
    that carry `tag` (exactly), in their order."""
    wanted = query.strip().lower()
    return [row for row in listing if _matches(row, wanted) and (not tag or tag in row["tags"])]


def _matches(row: dict[str, Any], wanted: str) -> bool:
    if not wanted:
        return True
    haystack = [f"#{row['id']}", str(row["id"]), str(row["name"]), str(row["owner"]), *row["tags"]]
    return any(wanted in text.lower() for text in haystack)


def _summarise(client: CoveClient, entries: list[dict[str, Any]]) -> None:
    """Reads the metadata of `entries`, filling in their summary and keeping it in the index."""
    if not entries:
        return
    from exchange.publish import load_metadata  # imports pandas: only for documents not seen yet

    endpoints: dict[str, list[str]] = {}
    summaries = []
    for entry in entries:
        runner = entry["runner"]
        if runner not in endpoints:
            url = client.index.endpoint(runner)
            endpoints[runner] = [url] if url else []
        try:
            metadata = load_metadata(client, entry["metadata_digest"], endpoints[runner], entry["id"])
        except CoveError:
            continue  # out of reach this time: tried again at the next listing
        entry.update(name=metadata.name, tags=list(metadata.tags), columns=len(metadata.schema_.columns))
        summaries.append((entry["metadata_digest"], entry["name"], entry["tags"], entry["columns"]))
    client.index.remember_metadata(summaries)


def _listing_row(client: CoveClient, entry: dict[str, Any]) -> dict[str, Any]:
    policy = entry["policy"] or {}
    token = policy.get("paymentToken")
    free = int(policy.get("price", 0)) == 0
    decimals = 18 if free or token is None else client.token_decimals(token)
    reachable = entry["name"] is not None
    return {
        "id": entry["id"],
        "name": entry["name"] if reachable else OUT_OF_REACH,
        "rows": entry["rows"],
        "columns": entry["columns"] if reachable else None,
        "price": 0 if free else int(policy["price"]) / 10**decimals,
        "currency": "free" if free else client.token_symbol(token),
        "budget_epsilon": int(policy.get("budget", 0)) / 1e6,
        "per_job_epsilon": int(policy.get("perJobCap", 0)) / 1e6,
        "policy_version": entry["version"],
        "owner": checksummed(entry["owner"]),
        "tags": list(entry["tags"]) if reachable else [],
    }


def datasets_frame(client: CoveClient) -> pd.DataFrame:
    """All datasets as a DataFrame: id, name, rows, price, budget, owner, tags, ..."""
    import pandas as pd

    return pd.DataFrame(dataset_listing(client), columns=LISTING_COLUMNS)
