"""Publishing a dataset: validate, commit, describe, store the metadata, one transaction.

The private file is only read here; it stays where it is. Everything that can be checked
is checked (and the transaction simulated) before anything is stored or sent, so a
refused publish leaves nothing behind but content-addressed blobs nobody points to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3.logs import DISCARD

from exchange.client import CoveClient
from exchange.datasets import DatasetMetadata, prepare_metadata
from exchange.errors import InputError
from exchange.owned import OwnedDatasets
from exchange.policy import PolicyTerms
from exchange.storage import CHUNK_SIZE, Cid, canonical_json

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class PublishResult:
    dataset_id: int
    datatoken: str
    metadata_cid: str
    tx_hash: str
    gas_used: int


def single_block_digest(document: bytes, what: str) -> bytes:
    """The sha256 digest that names `document` on-chain as a raw-codec CIDv1.

    On-chain records keep a 32-byte digest; it identifies the CID only when the document
    is one raw block, so documents are limited to one chunk (256 KiB).
    """
    if len(document) > CHUNK_SIZE:
        raise InputError(f"The {what} is {len(document)} bytes, above the {CHUNK_SIZE}-byte limit; shorten it.")
    return Cid.of_block(0x55, document).digest


def publish_dataset(
    client: CoveClient,
    path: Path,
    *,
    name: str,
    terms: PolicyTerms,
    description: str = "",
    license: str = "proprietary",
    tags: list[str] | None = None,
    runner: str | None = None,
    controller: str | None = None,
    mock_rows: int = 20,
) -> PublishResult:
    """Publishes the table at `path` with access policy `terms`; the caller's account owns it."""
    metadata, _private = prepare_metadata(path, name, description, license, tags or [], mock_rows)
    commitment = bytes.fromhex(metadata.commitment.sha256.removeprefix("0x"))
    existing = client.session.call(client.cove.functions.datasetByCommitment(commitment))
    if existing:
        raise InputError(
            f"This data is already published as dataset #{existing}; publish different data "
            "or manage that dataset instead."
        )

    metadata_bytes = metadata.to_json_bytes()
    lists = terms.lists_document()
    lists_bytes = canonical_json(lists) if lists else b""
    params = (
        single_block_digest(metadata_bytes, "metadata document"),
        commitment,
        metadata.rows,
        runner or client.session.sender,
        controller or ZERO_ADDRESS,
    )
    policy = terms.to_onchain(client.token_decimals(terms.payment_token))
    lists_digest = single_block_digest(lists_bytes, "allowlist and model-family list") if lists else b"\0" * 32
    publish = client.cove.functions.publish(params, policy, lists_digest)
    client.session.simulate(publish)

    metadata_cid = client.store.put(metadata_bytes)
    if lists:
        client.store.put(lists_bytes)
    receipt = client.session.transact(publish)
    event = client.cove.events.DatasetPublished().process_receipt(receipt, errors=DISCARD)[0]["args"]
    OwnedDatasets(client.home.owned).remember(client.session.chain_id, client.cove.address, int(event["datasetId"]), path)
    return PublishResult(
        dataset_id=int(event["datasetId"]),
        datatoken=str(event["datatoken"]),
        metadata_cid=str(metadata_cid),
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def load_metadata(client: CoveClient, metadata_digest: bytes | str) -> DatasetMetadata:
    """The metadata document a dataset's on-chain digest names."""
    digest = bytes.fromhex(metadata_digest.removeprefix("0x")) if isinstance(metadata_digest, str) else metadata_digest
    return DatasetMetadata.from_json_bytes(client.store.get(Cid.from_raw_digest(digest)))
