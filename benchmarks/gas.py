"""Gas of Cove's publish and buy flows on a real local anvil, next to Ocean Protocol v4's.

Run: `.venv/bin/python benchmarks/gas.py` (starts and stops its own chain; `--json` for scripts).
Each figure is a receipt's gasUsed, after refunds, of one transaction.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from exchange.accounts import dev_account
from exchange.chain.logs import LogReader
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.market import buy_credits
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.policy_update import set_policy
from exchange.publish import publish_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import PATIENTS_SCHEMA, make_table  # noqa: E402  - the same synthetic table the tests use

SPEC_SIZES: dict[str, tuple[int, int]] = {}  # spec → (canonical JSON bytes, compressed bytes on-chain)

# (flow, Ocean v4 figure, Cove budget from the issue or None)
OCEAN = {
    "publish (priced, open)": ("1.43M–1.53M", 450_000),
    "publish (allowlist + model families)": ("1.43M–1.53M", 450_000),
    "buy: dataset's first sale (pre-approved)": ("213k–228k", None),
    "buy: new buyer (pre-approved)": ("213k–228k", 110_000),
    "buy: repeat (pre-approved)": ("127k", None),
    "approve (exact cost)": ("~46k", None),
    "buyWithPermit: new buyer (approve + buy in one tx)": ("213k–228k + approve", None),
    "buyWithPermit: repeat": ("127k + approve", None),
    "policy update": ("n/a", None),
    "request (first job on the dataset)": ("270k (compute escrow lock)", 200_000),
    "request (later job)": ("270k (compute escrow lock)", 200_000),
    "request, 30-feature spec (the demo's)": ("270k (compute escrow lock)", 200_000),
    "accept (runner claims)": ("217k (claim)", None),
    "complete": ("217k (claim)", 150_000),
    "set endpoint (a runner announces its URL)": ("n/a", None),
    "federation: open (3 jobs)": ("n/a", None),
    "federation: commit a round (model digest + updates root)": ("n/a", None),
    "federation: commit a round (model digest only)": ("n/a", None),
    "governance: propose (set policy)": ("n/a", None),
    "governance: vote": ("n/a", None),
    "governance: queue": ("n/a", None),
    "governance: execute (policy update via timelock)": ("n/a", None),
}


def measure(home: Path) -> dict[str, int]:
    layout = HomeLayout(home)
    chain = LocalChain(layout.chain)
    info, _ = chain.up()
    try:
        deployment = deploy(layout.deployments, ChainSession(connect(info.rpc_url), dev_account(0)))
        client = {i: CoveClient.open(info.rpc_url, dev_account(i), home) for i in range(6)}
        token = deployment.payment_token
        gas: dict[str, int] = {}

        def publish(name: str, seed: int, **extra: object) -> int:
            path = home / f"{seed}.csv"
            make_table(seed=seed).to_csv(path, index=False)
            terms = parse_terms(price="5", payment_token=token, budget="8", per_job_cap="2", **extra)
            result = publish_dataset(client[0], path, name=name, terms=terms, schema=PATIENTS_SCHEMA)
            gas.setdefault(f"publish ({'priced, open' if not extra else 'allowlist + model families'})", result.gas_used)
            return result.dataset_id

        open_id = publish("open", 1)
        publish("restricted", 2, allowlist=[dev_account(i).address for i in range(1, 6)], model_families=["mlp"])

        for i in range(1, 6):
            c = client[i]
            c.session.transact(c.erc20(token).functions.faucet(1000 * 10**18))
        for i in (1, 2):  # pre-approved buyers: an allowance covering several purchases
            c = client[i]
            gas["approve (exact cost)"] = int(c.session.transact(c.erc20(token).functions.approve(c.cove.address, 10**20))["gasUsed"])
        gas["buy: dataset's first sale (pre-approved)"] = buy_credits(client[1], open_id, 1).gas_used[0]
        gas["buy: new buyer (pre-approved)"] = buy_credits(client[2], open_id, 1).gas_used[0]
        gas["buy: repeat (pre-approved)"] = buy_credits(client[2], open_id, 1).gas_used[0]
        first_permit = buy_credits(client[3], open_id, 1)
        assert first_permit.method == "buyWithPermit"
        gas["buyWithPermit: new buyer (approve + buy in one tx)"] = first_permit.gas_used[0]
        gas["buyWithPermit: repeat"] = buy_credits(client[3], open_id, 1).gas_used[0]
        terms = parse_terms(price="6", payment_token=token, budget="9", per_job_cap="2")
        tx_hash, _ = set_policy(client[0], open_id, terms)
        gas["policy update"] = int(client[0].session.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])
        gas.update(_federation_gas(home, client))  # before _job_gas sets the owner's endpoint
        gas.update(_job_gas(client[0], client[2], open_id, home))
        gas.update(_governance_gas(home, client, open_id))
        return gas
    finally:
        chain.down()


def _job_gas(owner: CoveClient, buyer: CoveClient, dataset_id: int, home: Path) -> dict[str, int]:
    """Requests (the spec travels in the calldata and the JobRequested event), then the
    runner's accept and complete of the first (a real DP training)."""
    from compute_to_data.runner import Runner
    from exchange.demo import breast_cancer_schema, breast_cancer_split, demo_spec
    from exchange.jobs import request_job
    from exchange.ml.spec import ModelSpec

    spec = ModelSpec.parse({
        "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01, "expected_batch_size": 32,
        "epochs": 1, "dp": {"target_epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
    })  # fmt: skip
    first = request_job(buyer, dataset_id, spec)
    later = request_job(buyer, dataset_id, spec)
    Runner(owner).poll()  # accepts and completes both
    receipt = owner.session.w3.eth.get_transaction_receipt
    owner.index.sync()
    job = owner.index.job(first.job_id)
    assert job is not None and job["status"] == "completed"

    # The demo's spec: breast-cancer data, 30 feature columns named in the spec.
    private, _ = breast_cancer_split()
    path = home / "breast-cancer.csv"
    private.to_csv(path, index=False)
    terms = parse_terms(price="0", free_cap=5, budget="8", per_job_cap="3", max_epochs=30)
    cancer = publish_dataset(owner, path, name="breast cancer", terms=terms, schema=breast_cancer_schema()).dataset_id
    buy_credits(buyer, cancer, 1)
    features = [c for c in private.columns if c != "diagnosis"]
    demo = ModelSpec.parse(demo_spec(features))
    typical = request_job(buyer, cancer, demo)
    SPEC_SIZES.update(small=(len(spec.to_json()), len(spec.to_wire())), demo=(len(demo.to_json()), len(demo.to_wire())))

    def gas_of(event: str) -> int:
        logs = LogReader(owner.session.w3).read_events(
            getattr(owner.jobs.events, event)(), owner.deployment.block, int(owner.session.w3.eth.block_number)
        )
        tx = next(log["transactionHash"] for log in logs if log["args"]["jobId"] == first.job_id)
        return int(receipt(tx)["gasUsed"])

    return {
        "request (first job on the dataset)": first.gas_used,
        "request (later job)": later.gas_used,
        "request, 30-feature spec (the demo's)": typical.gas_used,
        "accept (runner claims)": gas_of("JobAccepted"),
        "complete": gas_of("JobCompleted"),
        "set endpoint (a runner announces its URL)": int(
            owner.session.transact(owner.cove.functions.setEndpoint("https://hospital.example/cove"))["gasUsed"]
        ),
    }


def _federation_gas(home: Path, client: dict[int, CoveClient]) -> dict[str, int]:
    """A federation of three jobs opened by their buyer, then its aggregator's round commits:
    one transaction per round whatever the number of runners (no Flower needed for gas)."""
    from exchange.federated.arrays import model_digest, updates_root
    from exchange.federated.request import request_federation
    from exchange.ml.spec import ModelSpec

    owner, buyer = client[0], client[4]
    ids = []
    for seed in (11, 12, 13):
        path = home / f"federated-{seed}.csv"
        make_table(rows=300, seed=seed).to_csv(path, index=False)
        terms = parse_terms(price="0", free_cap=5, budget="8", per_job_cap="3")
        ids.append(publish_dataset(owner, path, name=f"hospital {seed}", terms=terms, schema=PATIENTS_SCHEMA).dataset_id)
        buy_credits(buyer, ids[-1], 1)
    spec = ModelSpec.parse({
        "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 2}], "loss": "cross_entropy", "optimizer": "sgd",
        "learning_rate": 0.1, "expected_batch_size": 50, "epochs": 1,
        "dp": {"target_epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
        "federation": {"rounds": 2, "superlink": "127.0.0.1:9092"},
    })  # fmt: skip
    ticket = request_federation(buyer, spec, ids, init_seed=1)
    rounds = buyer.session.contract("FederatedRounds", buyer.deployment.federated_rounds)
    digest = model_digest([np.ones(3, dtype=np.float32)])
    root = updates_root([model_digest([np.full(3, i, dtype=np.float32)]) for i in range(3)])
    with_root = buyer.session.transact(rounds.functions.commitRound(ticket.federation_id, 1, digest, root))
    digest_only = buyer.session.transact(rounds.functions.commitRound(ticket.federation_id, 2, digest, b"\x00" * 32))
    return {
        "federation: open (3 jobs)": ticket.open_gas_used,
        "federation: commit a round (model digest + updates root)": int(with_root["gasUsed"]),
        "federation: commit a round (model digest only)": int(digest_only["gasUsed"]),
    }


def _governance_gas(home: Path, client: dict[int, CoveClient], dataset_id: int) -> dict[str, int]:
    """One proposal's life: a consortium of three raises the dataset's budget."""
    from exchange.governance import ConsortiumBook, build_actions, deploy_consortium

    owner, proposer = client[0], client[1]
    members = {dev_account(i).address: votes * 10**18 for i, votes in ((1, 40), (2, 35), (3, 25))}
    consortium = deploy_consortium(owner.session, ConsortiumBook(HomeLayout(home).deployments), name="bench",
                                   members=members, voting_delay=60, voting_period=3600, min_delay=600)  # fmt: skip
    owner.session.transact(owner.cove.functions.setPolicyController(dataset_id, consortium.timelock))
    w3 = owner.session.w3
    advance = owner.session.advance_time
    advance(1)
    actions = build_actions(proposer, consortium, dataset_id, {"budget": "12"})
    governor = proposer.session.contract("CoveGovernor", consortium.governor)
    description = "Raise the budget"
    args = ([a.target for a in actions], [0] * len(actions), [a.calldata for a in actions])
    gas = {"governance: propose (set policy)": proposer.session.transact(governor.functions.propose(*args, description))}
    proposal = int(proposer.session.call(governor.functions.getProposalId(*args, w3.keccak(text=description))))
    advance(61)
    gas["governance: vote"] = proposer.session.transact(governor.functions.castVote(proposal, 1))
    client[2].session.transact(client[2].session.contract("CoveGovernor", consortium.governor).functions.castVote(proposal, 1))
    advance(3601)
    gas["governance: queue"] = proposer.session.transact(governor.functions.queue(*args, w3.keccak(text=description)))
    advance(601)
    gas["governance: execute (policy update via timelock)"] = proposer.session.transact(
        governor.functions.execute(*args, w3.keccak(text=description))
    )
    return {flow: int(receipt["gasUsed"]) for flow, receipt in gas.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cove-gas-") as home:
        gas = measure(Path(home))
    if args.json:
        print(json.dumps(gas, indent=2))
        return
    table = Table(title="Gas per transaction (anvil, solc 0.8.30, optimizer 1000 runs)", title_justify="left")
    for column in ("flow", "Cove", "Ocean v4", "budget"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for flow, used in gas.items():
        ocean, budget = OCEAN[flow]
        verdict = "" if budget is None else f"{budget:,} {'✓' if used <= budget else '✗ over'}"
        table.add_row(flow, f"{used:,}", ocean, verdict)
    Console().print(table)
    for name, (plain, wire) in SPEC_SIZES.items():
        print(f"{name} spec: {plain} bytes of canonical JSON, {wire} bytes compressed in the request")


if __name__ == "__main__":
    main()
