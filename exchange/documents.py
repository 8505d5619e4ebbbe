"""Handing the owner's public documents to the endpoint that will serve them.

A dataset's metadata and its allowlist/model-family lists are written on the owner's
machine, but buyers read them from the endpoint of the dataset's runner (on the owner's
premises, a different machine and home). Before the transaction that names a document on
chain, the owner offers it to that endpoint (`POST /cove/v1/documents`): the endpoint
keeps it aside and serves it only once the chain names its digest for a dataset it runs,
so an offer can never make it serve anything the chain did not publish. Without an
endpoint on chain the document stays in the owner's own store, where a runner sharing
the owner's home finds it.
"""

from __future__ import annotations

import json

import requests

from exchange.client import CoveClient
from exchange.errors import EndpointRefused, EndpointUnreachable, InputError
from exchange.policy import PolicyTerms
from exchange.storage import CHUNK_SIZE, Cid, canonical_json, compute_cid

DOCUMENTS_PATH = "/cove/v1/documents"
MAX_DOCUMENT_BYTES = CHUNK_SIZE  # one raw block: the chain keeps its digest
_TIMEOUT_S = (5.0, 20.0)  # connect, read


ZERO32 = b"\0" * 32


def single_block_digest(document: bytes, what: str) -> bytes:
    """The sha256 digest that names `document` on-chain as a raw-codec CIDv1.

    On-chain records keep a 32-byte digest; it identifies the CID only when the document
    is one raw block, so documents are limited to one chunk (256 KiB).
    """
    if len(document) > MAX_DOCUMENT_BYTES:
        raise InputError(f"The {what} is {len(document)} bytes, above the {MAX_DOCUMENT_BYTES}-byte limit; shorten it.")
    return Cid.of_block(0x55, document).digest


def lists_document(terms: PolicyTerms) -> bytes | None:
    """The canonical JSON of the policy's allowlist and model families (None when both are empty)."""
    lists = terms.lists_document()
    return canonical_json(lists) if lists else None


def lists_digest(terms: PolicyTerms) -> bytes:
    """The digest `setPolicy`/`publish` name the lists document by (zero without lists)."""
    document = lists_document(terms)
    return single_block_digest(document, "allowlist and model-family list") if document else ZERO32


def offer_lists(client: CoveClient, runner: str, terms: PolicyTerms) -> None:
    """Offers the policy's lists document (if any) to `runner`'s endpoint; see `offer_documents`."""
    document = lists_document(terms)
    if document is not None:
        offer_documents(client, runner, [document])


def offer_documents(client: CoveClient, runner: str, documents: list[bytes]) -> str | None:
    """Stores `documents` locally and offers them to `runner`'s endpoint; returns its URL,
    or None when the runner publishes no endpoint. Raises EndpointUnreachable/EndpointRefused
    (one sentence naming the URL) when the endpoint does not take them: nothing is sent on
    chain then, so the documents can be offered again."""
    for document in documents:
        client.store.put(document)
    endpoint = client.endpoint_of(runner)
    if endpoint is None:
        return None
    for document in documents:
        _offer(endpoint, document)
    return endpoint


def _offer(endpoint: str, document: bytes) -> None:
    url = endpoint + DOCUMENTS_PATH
    expected = compute_cid(document)
    try:
        response = requests.post(
            url, data=document, headers={"Content-Type": "application/json"}, timeout=_TIMEOUT_S, allow_redirects=False
        )
    except requests.RequestException:
        raise EndpointUnreachable(
            f"The runner's endpoint {endpoint} does not answer, so the document {expected} could not be handed "
            "to it; start the runner's endpoint (`cove runner start --listen …` or `cove node start`) and try again."
        ) from None
    if response.status_code >= 500:
        raise EndpointUnreachable(
            f"The runner's endpoint {endpoint} failed (HTTP {response.status_code}) taking the document {expected}; "
            "try again later."
        )
    if response.status_code not in (200, 201):
        raise EndpointRefused(
            f"The runner's endpoint {endpoint} refused the document {expected} (HTTP {response.status_code}: "
            f"{_reason(response)}); nothing was published."
        )
    try:
        answered = Cid.parse(str(response.json()["cid"]))
    except (ValueError, KeyError, TypeError):
        answered = None
    if answered != expected:
        raise EndpointRefused(
            f"The runner's endpoint {endpoint} took the document {expected} but answered another CID; "
            "it is not a Cove endpoint, or a broken one."
        )


def _reason(response: requests.Response) -> str:
    text = response.text.strip().splitlines()[0] if response.text.strip() else response.reason
    try:
        text = str(json.loads(response.text).get("error", text))
    except (ValueError, AttributeError):
        pass
    return text[:200].rstrip(".")


def push_dataset_documents(client: CoveClient, dataset_id: int) -> tuple[str, list[Cid]]:
    """Offers again, from this home's store, the documents the chain names for `dataset_id`
    (its metadata and every allowlist document of its policy versions) to its runner's
    endpoint: for an endpoint started after publishing, or one that lost its store."""
    record = client.session.call(client.cove.functions.datasetOf(dataset_id))
    runner = record[5]
    if client.endpoint_of(runner) is None:
        raise InputError(
            f"The runner {runner} of dataset #{dataset_id} announces no endpoint on-chain yet; start it with "
            "`cove runner start --listen HOST:PORT --public-url URL` first."
        )
    client.index.sync()
    digests = [bytes(record[0])] + [
        bytes.fromhex(p["lists_digest"][2:]) for p in client.index.policies(dataset_id) if int(p["lists_digest"], 16)
    ]
    cids = list(dict.fromkeys(Cid.from_raw_digest(d) for d in digests))
    documents = []
    for cid in cids:
        if not client.store.has(cid):
            raise InputError(
                f"This home does not hold {cid}, a document of dataset #{dataset_id}; push from the home it was published from."
            )
        documents.append(client.store.get(cid))
    endpoint = offer_documents(client, runner, documents)
    assert endpoint is not None
    return endpoint, cids
