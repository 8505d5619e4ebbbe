"""Changing a dataset's access policy (its controller only)."""

from __future__ import annotations

from web3.logs import DISCARD

from exchange.client import CoveClient
from exchange.policy import PolicyTerms
from exchange.publish import single_block_digest
from exchange.storage import canonical_json


def set_policy(client: CoveClient, dataset_id: int, terms: PolicyTerms) -> tuple[str, int]:
    """Replaces the policy of `dataset_id`; returns the transaction hash and the new version."""
    lists = terms.lists_document()
    lists_bytes = canonical_json(lists) if lists else b""
    digest = single_block_digest(lists_bytes, "allowlist and model-family list") if lists else b"\0" * 32
    function = client.cove.functions.setPolicy(dataset_id, terms.to_onchain(client.token_decimals(terms.payment_token)), digest)
    client.session.simulate(function)  # refuses (e.g. not the controller) before anything is stored
    if lists:
        client.store.put(lists_bytes)
    receipt = client.session.transact(function)
    event = client.cove.events.PolicyUpdated().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return receipt["transactionHash"].to_0x_hex(), int(event["version"])
