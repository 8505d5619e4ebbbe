"""`cove demo`: the whole publish-and-buy story on a fresh local chain, narrated.

It runs in its own temporary Cove home (unless one is given), so it never touches the
user's keystores or chain, and it stops the chain it started.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from exchange.accounts import dev_account
from exchange.catalog import dataset_view, datasets_frame
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.market import balances, buy_credits
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.publish import publish_dataset


def synthetic_patients(rows: int = 400, seed: int = 7) -> pd.DataFrame:
    """A private-looking table for the demo: a few clinical features and a diagnosis."""
    rng = np.random.default_rng(seed)
    age = rng.integers(25, 85, rows)
    bmi = rng.normal(26, 4, rows).round(1)
    smoker = rng.random(rows) < 0.3
    risk = 0.04 * (age - 50) + 0.15 * (bmi - 26) + 1.2 * smoker + rng.normal(0, 1, rows)
    return pd.DataFrame({"age": age, "bmi": bmi, "smoker": smoker, "diagnosis": np.where(risk > 0.5, "positive", "negative")})


def run_demo(home: Path | None = None, console: Console | None = None) -> dict[str, object]:
    """Runs the demo; returns what happened (dataset id, gas, balances) for tests and --json."""
    out = console or Console()
    with tempfile.TemporaryDirectory(prefix="cove-demo-") as scratch:
        root = home or Path(scratch)
        layout = HomeLayout(root)
        chain = LocalChain(layout.chain)
        info, _ = chain.up()
        try:
            return _story(root, layout, info.rpc_url, out)
        finally:
            chain.down()
            out.print("[dim]local chain stopped[/dim]")


def _story(root: Path, layout: HomeLayout, rpc_url: str, out: Console) -> dict[str, object]:
    owner_account, buyer_account = dev_account(0), dev_account(1)
    out.rule("Cove demo: publish and buy on a local chain")
    out.print(f"1. local anvil chain at {rpc_url}")
    deployment = deploy(layout.deployments, ChainSession(connect(rpc_url), owner_account))
    out.print(f"2. contracts deployed: Cove hub {deployment.cove}, test dollar (tUSD) {deployment.payment_token}")

    private_file = root / "private" / "patients.csv"
    private_file.parent.mkdir(parents=True, exist_ok=True)
    synthetic_patients().to_csv(private_file, index=False)
    owner = CoveClient.open(rpc_url, owner_account, root)
    terms = parse_terms(price="2.5", payment_token=deployment.payment_token, budget="8", per_job_cap="2", max_epochs=30)
    published = publish_dataset(
        owner, private_file, name="Synthetic patients", description="400 synthetic patients, diagnosis label",
        tags=["health", "tabular"], terms=terms, license="CC-BY-4.0",
    )  # fmt: skip
    out.print(
        f"3. owner {owner_account.address} published dataset #{published.dataset_id} in one transaction "
        f"({published.gas_used:,} gas); the private file stays in {private_file.parent}"
    )

    buyer = CoveClient.open(rpc_url, buyer_account, root)
    out.print("4. the buyer browses:")
    out.print(datasets_frame(buyer).drop(columns=["owner"]).to_string(index=False))
    view = dataset_view(buyer, published.dataset_id)
    assert view.metadata is not None
    out.print("   mock sample (made from the schema alone, no private row in it):")
    out.print(view.metadata.mock_frame().head(5).to_string(index=False))

    buyer.session.transact(buyer.erc20(deployment.payment_token).functions.faucet(100 * 10**18))  # type: ignore[arg-type]
    purchase = buy_credits(buyer, published.dataset_id, 2)
    out.print(
        f"5. buyer {buyer_account.address} bought 2 job credits for {purchase.cost} {purchase.currency} "
        f"({purchase.method}, {sum(purchase.gas_used):,} gas)"
    )
    held = balances(buyer, buyer_account.address)
    earned = balances(owner, owner_account.address)
    out.print(
        f"6. balances: buyer {held.payment_balance} tUSD and {held.credits[0].credits} credits; "
        f"owner earned {earned.payment_balance} tUSD"
    )
    out.rule("done")
    return {
        "dataset_id": published.dataset_id,
        "publish_gas": published.gas_used,
        "buy_gas": purchase.gas_used,
        "buyer_credits": str(held.credits[0].credits),
        "owner_earned": str(earned.payment_balance),
    }
