"""Publishing a dataset: validate, commit, describe, hand the metadata over, one transaction.

The private file is only read here; it stays where it is. Everything that can be checked
is checked (and the transaction simulated) before anything is stored or sent, and the
metadata is handed to the runner's endpoint before the transaction that names it, so a
refused publish leaves nothing behind but content-addressed blobs nobody points to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from web3.logs import DISCARD

from exchange.client import CoveClient
from exchange.datasets import CommitmentKey, DatasetMetadata, DatasetSchema, prepare_metadata
from exchange.datasets.dp_count import DEFAULT_COUNT_NOISE, count_noise_micro
from exchange.documents import lists_digest, lists_document, offer_documents, single_block_digest
from exchange.errors import InputError, PolicyError
from exchange.owned import OwnedDatasets
from exchange.policy import PolicyTerms
from exchange.storage import Cid, compute_cid

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class PublishResult:
    dataset_id: int
    datatoken: str
    metadata_cid: str
    rows: int  # the public (DP) row count
    endpoint: str | None  # the runner's endpoint that serves the metadata (None: none on chain)
    tx_hash: str
    gas_used: int


def publish_dataset(
    client: CoveClient,
    path: Path,
    *,
    name: str,
    terms: PolicyTerms,
    schema: DatasetSchema,
    count_noise: float | str = DEFAULT_COUNT_NOISE,
    description: str = "",
    license: str = "proprietary",
    tags: list[str] | None = None,
    runner: str | None = None,
    controller: str | None = None,
    mock_rows: int = 20,
    progress: Callable[[int], None] | None = None,
) -> PublishResult:
    """Publishes the table at `path` under its declared `schema` with access policy `terms`;
    the caller's account owns it. The row count is released with discrete Gaussian noise of
    σ = `count_noise`, charged to the dataset's privacy ledger; the commitment is keyed with
    this home's commitment key (stored with the first publication). The file is read once,
    streamed; `progress`, if given, is told the rows read so far."""
    terms.check_expiry(client.chain_time())  # before the file is read
    noise_micro = count_noise_micro(count_noise)
    key = CommitmentKey.at(client.home.commitment_key)
    metadata, _scan = prepare_metadata(
        path, name, schema, key, noise_micro, description, license, tags or [], mock_rows, progress=progress
    )
    if terms.delta * metadata.rows >= 1:
        raise PolicyError(
            f"δ must be below 1/n for the public row count n = {metadata.rows}: choose a δ below "
            f"{1 / metadata.rows:.2g} (--delta)."
        )
    commitment = bytes.fromhex(metadata.commitment.digest.removeprefix("0x"))
    existing = client.session.call(client.cove.functions.datasetByCommitment(commitment))
    if existing:
        raise InputError(
            f"This data is already published as dataset #{existing}; publish different data "
            "or manage that dataset instead."
        )

    metadata_bytes = metadata.to_json_bytes()
    runner = runner or client.session.sender
    params = (
        single_block_digest(metadata_bytes, "metadata document"),
        commitment,
        metadata.rows,
        noise_micro,
        runner,
        controller or ZERO_ADDRESS,
    )
    policy = terms.to_onchain(client.token_decimals(terms.payment_token))
    publish = client.cove.functions.publish(params, policy, lists_digest(terms))
    client.session.simulate(publish)

    lists = lists_document(terms)
    endpoint = offer_documents(client, runner, [metadata_bytes, *([lists] if lists else [])])
    key.keep(client.home.commitment_key)  # before the commitment it keys goes on chain
    receipt = client.session.transact(publish)
    event = client.cove.events.DatasetPublished().process_receipt(receipt, errors=DISCARD)[0]["args"]
    OwnedDatasets(client.home.owned).remember(client.session.chain_id, client.cove.address, int(event["datasetId"]), path)
    return PublishResult(
        dataset_id=int(event["datasetId"]),
        datatoken=str(event["datatoken"]),
        metadata_cid=str(compute_cid(metadata_bytes)),
        rows=metadata.rows,
        endpoint=endpoint,
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def load_metadata(
    client: CoveClient, metadata_digest: bytes | str, endpoints: list[str], dataset_id: int
) -> DatasetMetadata:
    """The metadata document a dataset's on-chain digest names, from the cache or `endpoints`."""
    digest = bytes.fromhex(metadata_digest.removeprefix("0x")) if isinstance(metadata_digest, str) else metadata_digest
    cid = Cid.from_raw_digest(digest)
    return DatasetMetadata.from_json_bytes(client.content.get(cid, endpoints, what=f"metadata of dataset #{dataset_id}"))
