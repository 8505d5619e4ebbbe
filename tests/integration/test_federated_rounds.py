"""FederatedRounds on a real anvil: the hub deploys it and reports it (ERC-165 interface id
included), a consumer federates its jobs on two owners' datasets, the aggregator commits a
round, and every refusal comes back as one decoded sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PATIENTS_SCHEMA, make_table
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from web3.logs import DISCARD

from exchange.accounts import dev_account
from exchange.chain.artifacts import error_specs
from exchange.chain.deployment import COVE_HUB_INTERFACE_ID, Deployment, read_deployment
from exchange.chain.reverts import describe_revert
from exchange.client import CoveClient
from exchange.errors import TransactionReverted
from exchange.jobs import request_job
from exchange.market import buy_credits
from exchange.ml.spec import ModelSpec
from exchange.policy import parse_terms
from exchange.publish import publish_dataset

pytestmark = pytest.mark.chain

SPEC = ModelSpec.parse(json.dumps({
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 20,
    "epochs": 1, "dp": {"target_epsilon": 0.5, "delta": 1e-5, "max_grad_norm": 1.0},
}))  # fmt: skip
OWNER_A, BUYER, OWNER_B, AGGREGATOR, STRANGER = 0, 1, 2, 3, 4
INITIAL = b"\x11" * 32


def _publish(client: CoveClient, tmp_path: Path, seed: int) -> int:
    path = tmp_path / f"{seed}.csv"
    make_table(seed=seed).to_csv(path, index=False)
    terms = parse_terms(budget="4", per_job_cap="1", free_cap=9)
    return publish_dataset(client, path, name=f"site {seed}", terms=terms, schema=PATIENTS_SCHEMA).dataset_id


def _model(round_: int) -> bytes:
    return bytes([round_]) * 32


def test_the_hub_deploys_and_reports_federated_rounds(client_for, deployment: Deployment) -> None:  # type: ignore[no-untyped-def]
    client = client_for(OWNER_A)
    assert COVE_HUB_INTERFACE_ID == bytes.fromhex("838e2186")  # as contracts/test/HubInfo.t.sol writes it out
    assert client.session.call(client.cove.functions.supportsInterface(COVE_HUB_INTERFACE_ID))
    read = read_deployment(client.session, deployment.cove)
    assert read == deployment
    assert read.federated_rounds == client.session.call(client.cove.functions.federatedRounds())
    assert read.federated_rounds not in (read.cove, read.compute_jobs)
    fed = client.session.contract("FederatedRounds", read.federated_rounds)
    assert client.session.call(fed.functions.computeJobs()) == read.compute_jobs
    assert client.session.call(fed.functions.federationCount()) == 0
    recorded = json.loads((client.home.deployments / f"{read.chain_id}.json").read_text())
    assert recorded["federated_rounds"] == read.federated_rounds


def test_open_and_commit_a_round(client_for, deployment: Deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner_a, buyer, owner_b = client_for(OWNER_A), client_for(BUYER), client_for(OWNER_B)
    aggregator, stranger = client_for(AGGREGATOR), client_for(STRANGER)
    site_a, site_b = _publish(owner_a, tmp_path, 1), _publish(owner_b, tmp_path, 2)
    buy_credits(buyer, site_a, 2)
    buy_credits(buyer, site_b, 1)
    job_a, job_b = (request_job(buyer, site, SPEC).job_id for site in (site_a, site_b))
    fed = buyer.session.contract("FederatedRounds", deployment.federated_rounds)
    agg = dev_account(AGGREGATOR).address

    # Two jobs on one dataset: refused, and the sentence says why.
    job_a2 = request_job(buyer, site_a, SPEC).job_id
    with pytest.raises(TransactionReverted) as refused:
        buyer.session.simulate(fed.functions.open([job_a, job_a2], agg, 3, INITIAL))
    assert refused.value.error_name == "DuplicateDataset"
    assert str(refused.value) == f"Two of the jobs train on dataset #{site_a}; a federation has one job per dataset."
    # Someone else's jobs: the same error as ComputeJobs', phrased for both uses.
    with pytest.raises(TransactionReverted) as refused:
        stranger.session.simulate(fed.functions.open([job_a, job_b], agg, 3, INITIAL))
    assert refused.value.error_name == "NotJobConsumer"
    assert refused.value.error_args == (job_a, stranger.session.sender, buyer.session.sender)

    receipt = buyer.session.transact(fed.functions.open([job_a, job_b], agg, 3, INITIAL))
    opened = fed.events.FederationOpened().process_receipt(receipt, errors=DISCARD)
    assert len(opened) == 1
    args = opened[0]["args"]
    assert (args["fedId"], args["consumer"], args["aggregator"], args["rounds"]) == (1, buyer.session.sender, agg, 3)
    assert list(args["jobIds"]) == [job_a, job_b] and args["initialModelDigest"] == INITIAL
    assert buyer.session.call(fed.functions.federationOf(1)) == (buyer.session.sender, agg, 3, 0, INITIAL)
    assert buyer.session.call(fed.functions.jobsOf(1)) == [job_a, job_b]
    assert [buyer.session.call(fed.functions.federationOfJob(j)) for j in (job_a, job_b, job_a2)] == [1, 1, 0]

    with pytest.raises(TransactionReverted) as refused:
        buyer.session.transact(fed.functions.open([job_b, job_a2], agg, 3, INITIAL))
    assert refused.value.error_name == "AlreadyFederated"
    assert str(refused.value) == f"Job #{job_b} is already in federation #1."

    # Only the aggregator commits, and only the next round.
    with pytest.raises(TransactionReverted) as refused:
        buyer.session.transact(fed.functions.commitRound(1, 1, _model(1), b"\0" * 32))
    assert refused.value.error_name == "NotAggregator"
    assert str(refused.value) == (
        f"Only the aggregator {agg} commits the rounds of federation #1, not {buyer.session.sender}."
    )
    with pytest.raises(TransactionReverted) as refused:
        aggregator.session.transact(fed.functions.commitRound(1, 2, _model(2), b"\0" * 32))
    assert refused.value.error_name == "RoundOutOfRange"
    assert refused.value.error_args == (1, 2, 1, 3)
    assert str(refused.value) == "Federation #1 takes round 1 of 3 next, not round 2."

    receipt = aggregator.session.transact(fed.functions.commitRound(1, 1, _model(1), b"\x22" * 32))
    committed = fed.events.RoundCommitted().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in committed] == [
        {"fedId": 1, "round": 1, "modelDigest": _model(1), "updatesRoot": b"\x22" * 32}
    ]
    assert aggregator.session.call(fed.functions.roundDigest(1, 0)) == [INITIAL, b"\0" * 32]
    assert aggregator.session.call(fed.functions.roundDigest(1, 1)) == [_model(1), b"\x22" * 32]

    # Rounds 2 and 3 (under secure aggregation: no updates root); a fourth is refused.
    for round_ in (2, 3):
        aggregator.session.transact(fed.functions.commitRound(1, round_, _model(round_), b"\0" * 32))
    assert aggregator.session.call(fed.functions.federationOf(1))[3] == 3
    with pytest.raises(TransactionReverted) as refused:
        aggregator.session.transact(fed.functions.commitRound(1, 4, _model(4), b"\0" * 32))
    assert refused.value.error_args == (1, 4, 4, 3)
    assert str(refused.value) == "Federation #1 has committed all its 3 rounds; round 4 is refused."

    with pytest.raises(TransactionReverted) as refused:
        aggregator.session.call(fed.functions.federationOf(2))
    assert str(refused.value) == "There is no federation #2."


@pytest.mark.parametrize(
    ("signature", "types", "values", "expected"),
    [
        ("TooFewJobs(uint256)", ["uint256"], [1], "A federation needs at least 2 jobs (one per dataset), not 1."),
        ("TooManyJobs(uint256,uint256)", ["uint256", "uint256"], [17, 16], "A federation groups at most 16 jobs, not 17."),
        ("ZeroRounds()", [], [], "A federation must run at least one round."),
        ("ZeroAggregator()", [], [], "A federation needs an aggregator address."),
        ("EmptyDigest()", [], [], "A model digest must not be zero."),
        ("JobNotOpen(uint256,uint8)", ["uint256", "uint8"], [7, 3],
         "Job #7 is completed; only a requested or accepted job can join a federation."),
        ("UnknownFederation(uint256)", ["uint256"], [9], "There is no federation #9."),
    ],
)  # fmt: skip
def test_every_federation_error_decodes(signature: str, types: list[str], values: list[object], expected: str) -> None:
    selector = function_signature_to_4byte_selector(signature)
    assert selector in error_specs(), f"{signature} is in no artifact"
    error = describe_revert(selector + encode(types, values))
    assert error.error_name == signature.split("(")[0]
    assert str(error) == expected
