"""Changing a dataset's access policy (its controller only)."""

from __future__ import annotations

from web3.logs import DISCARD

from exchange.client import CoveClient
from exchange.documents import lists_digest, offer_lists
from exchange.policy import PolicyTerms


def set_policy(client: CoveClient, dataset_id: int, terms: PolicyTerms) -> tuple[str, int]:
    """Replaces the policy of `dataset_id`; returns the transaction hash and the new version.

    A new allowlist or model-family list is handed to the dataset's runner's endpoint first,
    so buyers can read what the chain's new roots stand for.
    """
    terms.check_expiry(client.chain_time())
    struct = terms.to_onchain(client.token_decimals(terms.payment_token))
    function = client.cove.functions.setPolicy(dataset_id, struct, lists_digest(terms))
    client.session.simulate(function)  # refuses (e.g. not the controller) before anything is stored
    offer_lists(client, client.session.call(client.cove.functions.datasetOf(dataset_id))[5], terms)
    receipt = client.session.transact(function)
    event = client.cove.events.PolicyUpdated().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return receipt["transactionHash"].to_0x_hex(), int(event["version"])
