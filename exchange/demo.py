"""`cove demo`: the whole story on a fresh local chain, narrated, with the parties apart.

A hospital publishes scikit-learn's breast-cancer table (its private data); its runner,
a process of its own with its own home, serves the dataset's metadata from the hospital's
endpoint and trains with differential privacy in a sandbox; a data scientist, with a home
of their own, browses the dataset and its mock, buys a credit, asks for a model, fetches
the encrypted weights from the endpoint, verifies them against the chain and evaluates
the model on held-out rows of their own. The scientist shares nothing with the hospital
but the RPC URL, the hub's address and what the chain names (the endpoint's URL).

Everything lives under one scratch directory (unless one is given), so it never touches
the user's keystores or chain, and it stops the chain and the runner it started.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd
from rich.console import Console

from exchange.accounts import dev_account
from exchange.catalog import dataset_view, datasets_frame
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.datasets import ColumnSchema, CommitmentKey, DatasetSchema
from exchange.jobs import fetch_result, request_job, wait_for
from exchange.market import buy_credits, mint_test_tokens
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.runner_process import RunnerProcess
from exchange.units import delta_text

TARGET = "diagnosis"
HELD_OUT_ROWS = 100


def breast_cancer_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's breast-cancer table (shipped with the package), as the hospital's
    private rows and the buyer's own held-out rows."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda name: name.replace(" ", "_"))
    frame[TARGET] = [str(bunch.target_names[t]) for t in frame.pop("target")]
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return shuffled.iloc[HELD_OUT_ROWS:].reset_index(drop=True), shuffled.iloc[:HELD_OUT_ROWS].reset_index(drop=True)


# One line of the "Summary Statistics" table in the dataset's public documentation.
_DOCUMENTED_RANGE = re.compile(r"^(?P<feature>[a-z ]+) \((?P<kind>mean|standard error|worst)\):\s+(?P<lo>[\d.]+)\s+(?P<hi>[\d.]+)$")
_COLUMN_OF = {"mean": "mean_{}", "standard error": "{}_error", "worst": "worst_{}"}


def breast_cancer_schema() -> DatasetSchema:
    """The table's declared public schema, from public knowledge only: the minimum and maximum
    that the dataset's own documentation lists for each feature (scikit-learn's DESCR, the UCI
    description), rounded outward to two significant digits; the two diagnosis labels."""
    from sklearn.datasets import load_breast_cancer

    columns = []
    for line in load_breast_cancer().DESCR.splitlines():
        match = _DOCUMENTED_RANGE.match(line.strip())
        if match:
            name = _COLUMN_OF[match["kind"]].format(match["feature"].replace(" ", "_"))
            low, high = _two_digits(float(match["lo"]), math.floor), _two_digits(float(match["hi"]), math.ceil)
            columns.append(ColumnSchema(name=name, kind="float", nullable=False, minimum=low, maximum=high))
    columns.append(ColumnSchema(name=TARGET, kind="categorical", nullable=False, categories=["benign", "malignant"]))
    return DatasetSchema(columns=columns)


def _two_digits(value: float, rounding: Any) -> float:
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    return round(rounding(value / step) * step, 12)


def demo_spec(features: list[str]) -> dict[str, Any]:
    return {
        "task": "classification",
        "features": features,
        "target": TARGET,
        "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.02,
        "expected_batch_size": 64,
        "epochs": 15,
        "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }


RUNNER_ACCOUNT = 5  # the hospital's runner signs as dev5: its own key, its own process


class DemoResult(TypedDict):
    """What the demo did, for tests and `cove demo --json` (a dict: tests index it)."""

    dataset_id: int
    job_id: int
    publish_gas: int
    request_gas: int
    epsilon: float  # the job's, on the ledger
    publication_epsilon: float  # the noisy row count's release
    dataset_epsilon_spent: float  # both, composed
    accuracy: float  # on the buyer's held-out rows
    majority_baseline: float
    verified: bool
    governed_budget: float  # the budget the consortium voted
    endpoint: str


def run_demo(home: Path | None = None, console: Console | None = None) -> DemoResult:
    """Runs the demo; returns what happened (ids, gas, ε, accuracy) for tests and --json."""
    out = console or Console()
    with tempfile.TemporaryDirectory(prefix="cove-demo-") as scratch:
        root = home or Path(scratch)
        homes = {party: HomeLayout(root / party) for party in ("hospital", "runner", "scientist", "voters")}
        chain = LocalChain(homes["hospital"].chain)
        info, _ = chain.up()
        try:
            return _story(root, homes, info.rpc_url, out)
        finally:
            chain.down()
            out.print("[dim]local chain stopped[/dim]")


def _story(root: Path, homes: dict[str, HomeLayout], rpc_url: str, out: Console) -> DemoResult:
    """The chain and the hospital's runner, then the trade itself (`_trade`)."""
    started = time.monotonic()
    hospital_key, runner_key = dev_account(0), dev_account(RUNNER_ACCOUNT)
    out.rule("Cove demo: private data in, DP model out")
    out.print(f"1. local anvil chain at {rpc_url}")
    deployment = deploy(homes["hospital"].deployments, ChainSession(connect(rpc_url), hospital_key))
    out.print(f"2. contracts deployed: Cove hub {deployment.cove}, test dollar (tUSD) {deployment.payment_token}")

    private, held_out = breast_cancer_split()
    private_file = root / "hospital-data" / "breast_cancer.csv"
    private_file.parent.mkdir(parents=True, exist_ok=True)
    private.to_csv(private_file, index=False)
    runner_client = CoveClient.open(rpc_url, runner_key, homes["runner"].root, hub=deployment.cove)
    # The hospital's commitment key, which its runner (on its premises) is given with the file.
    key_file = homes["hospital"].commitment_key
    CommitmentKey.at(key_file).keep(key_file)
    runner = RunnerProcess(
        runner_client, rpc_url, f"dev{RUNNER_ACCOUNT}", homes["runner"].root,
        options=["--data", str(private_file), "--commitment-key", str(key_file)],
    )  # fmt: skip
    try:
        out.print(f"3. the hospital's runner runs as its own process, home {homes['runner'].root.name}/; "
                  f"its endpoint {runner.url} is announced on-chain")  # fmt: skip
        return _trade(homes, rpc_url, deployment, private, held_out, private_file, runner, out, started)
    finally:
        runner.stop()
        out.print("[dim]runner stopped[/dim]")


def _trade(
    homes: dict[str, HomeLayout], rpc_url: str, deployment: Any, private: pd.DataFrame, held_out: pd.DataFrame,
    private_file: Path, runner: RunnerProcess, out: Console, started: float,
) -> DemoResult:  # fmt: skip
    from exchange.ml.model import encode_features
    from exchange.ml.spec import ModelSpec, target_classes
    from exchange.ml.weights import load_weights

    owner = CoveClient.open(rpc_url, dev_account(0), homes["hospital"].root, hub=deployment.cove)
    terms = parse_terms(price="2.5", payment_token=deployment.payment_token, budget="6", per_job_cap="3", max_epochs=30)
    published = publish_dataset(
        owner, private_file, name="Breast cancer (Wisconsin)", description="30 features of a fine-needle aspirate",
        tags=["health", "tabular"], terms=terms, schema=breast_cancer_schema(), license="CC-BY-4.0",
        runner=runner.account,
    )  # fmt: skip
    publication = owner.session.call(owner.jobs.functions.composedEpsilon(published.dataset_id)) / 1e6
    out.print(
        f"4. the hospital published dataset #{published.dataset_id} in one transaction ({published.gas_used:,} gas): "
        f"budget ε 6, at most ε 3 a job; the rows stay in {private_file.parent.name}/; public: the schema it "
        f"declared from the dataset's documentation, a row count with DP noise ({published.rows}; its release "
        f"spent ε {publication:g}), a keyed commitment; the metadata went to the endpoint"
    )

    # The data scientist: a home of their own; only the RPC URL and the hub's address are shared.
    buyer = CoveClient.open(rpc_url, dev_account(1), homes["scientist"].root, hub=deployment.cove)
    listing = datasets_frame(buyer)[["id", "name", "rows", "columns", "price", "currency", "budget_epsilon"]]
    out.print("5. the data scientist, from their own home, browses (metadata fetched from the endpoint, checked by CID):\n"
              + listing.to_string(index=False))  # fmt: skip
    view = dataset_view(buyer, published.dataset_id)
    mock = view.metadata.mock_frame()
    out.print(f"   mock sample (from the schema alone, no private row), {mock.shape[1]} columns:")
    out.print(mock.iloc[:3, [0, 1, 2, -1]].to_string(index=False))

    mint_test_tokens(buyer, 100)
    purchase = buy_credits(buyer, published.dataset_id, 1)
    out.print(f"6. bought 1 credit for {purchase.cost} {purchase.currency} ({purchase.method}, {sum(purchase.gas_used):,} gas)")

    features = [c.name for c in view.metadata.schema_.columns if c.name != TARGET]
    spec = ModelSpec.parse(demo_spec(features))
    ticket = request_job(buyer, published.dataset_id, spec)
    out.print(
        f"7. asked for an MLP with ε ≤ 2 (job #{ticket.job_id}, {ticket.gas_used:,} gas; the spec travels in the "
        f"request): the chain reserved ε {ticket.epsilon:g} of the budget"
    )
    status = wait_for(buyer, ticket.job_id, timeout=600).status
    out.print(f"8. the runner claimed it and trained with DP-SGD in its sandbox: job #{ticket.job_id} is {status}")
    if status != "completed":
        raise RuntimeError(f"the demo's job ended {status}; see {runner.log_file}")

    result = fetch_result(buyer, ticket.job_id)
    passed = sum(c.passed for c in result.checks)
    out.print(f"9. fetched the encrypted weights and provenance from the endpoint, decrypted; "
              f"{passed}/{len(result.checks)} provenance checks passed")  # fmt: skip
    if not result.verified:
        raise RuntimeError("the demo's job failed verification")
    model = load_weights(result.spec, view.metadata.schema_, result.weights)
    classes = target_classes(view.metadata.schema_.column(TARGET))
    predicted = model(encode_features(result.spec, view.metadata.schema_, held_out)).argmax(dim=1).tolist()
    accuracy = sum(classes[p] == truth for p, truth in zip(predicted, held_out[TARGET], strict=True)) / len(held_out)
    majority = held_out[TARGET].value_counts(normalize=True).max()
    record = result.provenance.record
    spent = buyer.session.call(buyer.jobs.functions.composedEpsilon(published.dataset_id)) / 1e6
    out.print(
        f"10. on the buyer's own {len(held_out)} held-out rows: accuracy {accuracy:.1%} "
        f"(majority class {majority:.1%}); trained on {record.device}, sandbox {record.sandbox}"
    )
    out.print(f"11. privacy: this job spent ε {record.epsilon / 1e6:g} at δ {delta_text(record.delta / 1e18)}; the dataset has spent ε {spent:g} of 6")
    out.print("    the scientist's home holds only what it fetched and checked: "
              f"{_stored(homes['scientist'])} documents, no private row")  # fmt: skip
    new_budget = _governance_round(owner, homes, rpc_url, published.dataset_id, out)
    out.rule(f"done in {time.monotonic() - started:.0f} s")
    return DemoResult(
        dataset_id=published.dataset_id,
        job_id=ticket.job_id,
        publish_gas=published.gas_used,
        request_gas=ticket.gas_used,
        epsilon=record.epsilon / 1e6,
        publication_epsilon=publication,
        dataset_epsilon_spent=spent,
        accuracy=accuracy,
        majority_baseline=float(majority),
        verified=result.verified,
        governed_budget=new_budget,
        endpoint=runner.url,
    )


def _stored(layout: HomeLayout) -> int:
    return sum(1 for path in layout.storage.rglob("*") if path.is_file())


def _governance_round(owner: CoveClient, homes: dict[str, HomeLayout], rpc_url: str, dataset_id: int, out: Console) -> float:
    """Three hospitals take over the dataset's policy and vote its budget from 6 to 8, each
    member from a home of its own (they know the consortium by its governor's address)."""
    from exchange.catalog import policy_of
    from exchange.governance import (
        ConsortiumBook, build_actions, consortium_at, deploy_consortium, execute, propose, queue, vote,
    )  # fmt: skip

    members = {dev_account(i).address: votes * 10**18 for i, votes in ((2, 40), (3, 35), (4, 25))}
    consortium = deploy_consortium(
        owner.session, ConsortiumBook(homes["hospital"].deployments), name="hospitals", members=members,
        voting_delay=60, voting_period=3600, min_delay=600, quorum_percent=30,
    )  # fmt: skip
    owner.session.transact(owner.cove.functions.setPolicyController(dataset_id, consortium.timelock))
    out.print(f"12. governance: the hospital hands the policy of #{dataset_id} to a 3-member consortium's timelock")
    clients = {
        i: CoveClient.open(rpc_url, dev_account(i), homes["voters"].root / f"member-{i}", hub=owner.deployment.cove)
        for i in (2, 3, 4)
    }
    seen = {i: consortium_at(client, consortium.governor) for i, client in clients.items()}
    owner.session.advance_time(1)  # voting power counts from one second after it was delegated
    actions = build_actions(clients[2], seen[2], dataset_id, {"budget": "8"})
    proposal = propose(clients[2], seen[2], actions, "Raise the privacy budget to 8 for a second study")
    owner.session.advance_time(61)
    for i, choice in ((2, "for"), (3, "for"), (4, "against")):
        vote(clients[i], seen[i], proposal, choice)
    out.print("    proposal: budget 6 → 8; votes: 40 for, 35 for, 25 against (each member from its own home)")
    owner.session.advance_time(3601)
    queue(clients[2], seen[2], proposal)
    owner.session.advance_time(601)
    execute(clients[2], seen[2], proposal)
    terms, version, _ = policy_of(owner, dataset_id)
    out.print(f"    queued, timelock delay passed, executed: policy v{version}, budget ε {terms.budget}")
    return float(terms.budget)
