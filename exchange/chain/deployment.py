"""Finding Cove on a chain: a hub address checked on-chain, with the local file only a cache.

A party that knows an RPC URL and a hub address can do everything: the hub says through
ERC-165 that it is a Cove hub, and answers where its ComputeJobs and FederatedRounds are, the
block to read its events from and its default payment token. `cove deploy` records the hub it deployed in the
home's `deployments/<chain id>.json`, so that the local chain needs no `--hub`; that file
holds an address and nothing that is not re-read from the chain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_utils import function_signature_to_4byte_selector, is_address, to_checksum_address
from pydantic import BaseModel

from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.chain.session import ChainSession
from exchange.errors import ChainError, InputError, NotDeployed, TransactionReverted

ZERO_ADDRESS = "0x" + "00" * 20

# ERC-165 id of ICoveHubInfo: the XOR of its five selectors, 0x838e2186 (checked against the
# contract in contracts/test/HubInfo.t.sol and tests/integration/test_federated_rounds.py).
_HUB_INFO_FUNCTIONS = (
    "computeJobs()", "federatedRounds()", "deploymentBlock()", "defaultPaymentToken()", "endpointOf(address)",
)


def _interface_id(signatures: tuple[str, ...]) -> bytes:
    value = 0
    for signature in signatures:
        value ^= int.from_bytes(function_signature_to_4byte_selector(signature), "big")
    return value.to_bytes(4, "big")


COVE_HUB_INTERFACE_ID = _interface_id(_HUB_INFO_FUNCTIONS)


class Deployment(BaseModel):
    """Where Cove lives on one chain, as the hub itself reports it."""

    chain_id: int
    cove: str  # the hub
    compute_jobs: str
    federated_rounds: str  # federations of jobs and their rounds (FederatedRounds)
    payment_token: str | None  # the hub's default payment token (tUSD on the local chain)
    block: int  # the hub's deployment block: the first block to index events from


def deployment_file(directory: Path, chain_id: int) -> Path:
    return directory / f"{chain_id}.json"


def checked_hub_address(text: str) -> str:
    """`text` as a checksummed address, or InputError saying what a hub address looks like."""
    value = text.strip()
    if not is_address(value):
        raise InputError(f"{text!r} is not a hub address; pass --hub 0x… with the 40-hex-digit address of a Cove hub.")
    return to_checksum_address(value)


def read_deployment(session: ChainSession, hub: str) -> Deployment:
    """The deployment of the hub at `hub`, read from the chain; NotDeployed when it is not a hub."""
    address = checked_hub_address(hub)
    where = f"chain {session.chain_id}"
    if not session.w3.eth.get_code(address):
        raise NotDeployed(
            f"There is no contract at {address} on {where}; check the hub address (--hub or the network's) "
            "and that --rpc points at the chain it was deployed on."
        )
    cove = session.contract("Cove", address)
    try:
        is_hub = bool(session.call(cove.functions.supportsInterface(COVE_HUB_INTERFACE_ID)))
    except (TransactionReverted, ChainError, ValueError):  # no such function, or garbage returned
        is_hub = False
    if not is_hub:
        raise NotDeployed(
            f"The contract at {address} on {where} is not a Cove hub (it does not declare Cove's interface); "
            "check the hub address."
        )
    token = session.call(cove.functions.defaultPaymentToken())
    return Deployment(
        chain_id=session.chain_id,
        cove=address,
        compute_jobs=to_checksum_address(session.call(cove.functions.computeJobs())),
        federated_rounds=to_checksum_address(session.call(cove.functions.federatedRounds())),
        payment_token=None if int(token, 16) == 0 else to_checksum_address(token),
        block=int(session.call(cove.functions.deploymentBlock())),
    )


def recorded_hub(directory: Path, chain_id: int) -> str | None:
    """The hub `cove deploy` recorded in this home for `chain_id`, if any."""
    file = deployment_file(directory, chain_id)
    try:
        return str(json.loads(file.read_text())["cove"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"The deployment record {file} is damaged; remove it, or pass --hub ADDRESS.") from None


def find_deployment(directory: Path, session: ChainSession, hub: str | None = None) -> Deployment:
    """The deployment at `hub`, else the one this home recorded for the session's chain."""
    address = hub or recorded_hub(directory, session.chain_id)
    if address is None:
        raise NotDeployed(
            f"No Cove hub is known on chain {session.chain_id}: pass --hub ADDRESS (or set COVE_HUB), "
            "use --network NAME (see `cove network add`), or run `cove deploy` on your own chain."
        )
    try:
        return read_deployment(session, address)
    except NotDeployed:
        if hub is None and not session.w3.eth.get_code(address):  # only the local record named it: a reset chain?
            raise NotDeployed(
                f"There is no contract at {address} on chain {session.chain_id}, the hub recorded by `cove deploy` in "
                f"{directory} (the chain was reset?); run `cove deploy` again, or pass --hub ADDRESS."
            ) from None
        raise


def record_deployment(directory: Path, deployment: Deployment) -> None:
    """Remembers `deployment` as this home's hub on its chain (atomically)."""
    file = deployment_file(directory, deployment.chain_id)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(deployment.model_dump(), indent=2))
    os.replace(tmp, file)


def deploy(directory: Path, session: ChainSession, payment_token: str | None = None) -> Deployment:
    """Deploys a Cove hub and records it. On the local chain, a test payment token (tUSD)
    is deployed first and becomes the hub's default; elsewhere `payment_token` (an existing
    ERC-20) is the default, or none."""
    if session.chain_id == LOCAL_CHAIN_ID and payment_token is None:
        payment_token, _ = session.deploy("TestPaymentToken", "Cove Test Dollar", "tUSD", 18)
    hub, _ = session.deploy("Cove", payment_token or ZERO_ADDRESS)
    deployment = read_deployment(session, hub)
    record_deployment(directory, deployment)
    return deployment
