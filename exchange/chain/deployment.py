"""Deploying Cove's contracts and remembering their addresses per chain id."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.chain.session import ChainSession
from exchange.errors import NotDeployed


class Deployment(BaseModel):
    """Where Cove lives on one chain."""

    chain_id: int
    cove: str
    payment_token: str | None  # the test payment token, deployed on local chains only
    block: int  # first block to index events from


def deployment_file(directory: Path, chain_id: int) -> Path:
    return directory / f"{chain_id}.json"


def load_deployment(directory: Path, session: ChainSession) -> Deployment:
    """The recorded deployment for the session's chain, checked to still have code."""
    file = deployment_file(directory, session.chain_id)
    hint = "run `cove deploy` first"
    if not file.exists():
        raise NotDeployed(f"Cove's contracts are not deployed on chain {session.chain_id}; {hint}.")
    deployment = Deployment.model_validate_json(file.read_text())
    if not session.w3.eth.get_code(deployment.cove):
        raise NotDeployed(
            f"Cove's contracts are not deployed on chain {session.chain_id} "
            f"(nothing at {deployment.cove}; the chain was reset?); {hint}."
        )
    return deployment


def deploy(directory: Path, session: ChainSession) -> Deployment:
    """Deploys the Cove hub (and, on the local chain, the test payment token) and records them."""
    cove, receipt = session.deploy("Cove")
    payment_token = None
    if session.chain_id == LOCAL_CHAIN_ID:
        payment_token, _ = session.deploy("TestPaymentToken")
    deployment = Deployment(
        chain_id=session.chain_id, cove=cove, payment_token=payment_token, block=int(receipt["blockNumber"])
    )
    file = deployment_file(directory, session.chain_id)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(deployment.model_dump(), indent=2))
    os.replace(tmp, file)
    return deployment
