"""Transactions a second from the SDK's client: one at a time, and pipelined in batches.

Run: `.venv/bin/python benchmarks/transactions.py [--datasets 20] [--rounds 3] [--json]` (starts and stops
its own chain). It times, in one process on one local anvil:

- `ChainSession.transact`, one transaction after another (a faucet call each), against
  `transact_batch` of the same calls in batches of 50 and 200;
- `buy_credits` for one credit of each of N datasets in turn, against `buy_credits_batch`
  of as many other datasets (its quotes read in a few JSON-RPC batches, one exact approval,
  then every buy pipelined), the median of --rounds batches.

Figures are wall-clock rates on this machine; compare the ratios, taken side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from exchange.accounts import dev_account
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.market import buy_credits, buy_credits_batch, mint_test_tokens
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.publish import publish_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import PATIENTS_SCHEMA, make_table  # the same synthetic table the tests use


def _rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


def measure(home: Path, datasets: int, rounds: int) -> dict[str, float]:
    layout = HomeLayout(home)
    chain = LocalChain(layout.chain)
    info, _ = chain.up()
    try:
        session = ChainSession(connect(info.rpc_url), dev_account(0))
        deployment = deploy(layout.deployments, session)
        token = session.contract("TestPaymentToken", str(deployment.payment_token))
        rates: dict[str, float] = {}

        started = time.perf_counter()
        for _ in range(50):
            session.transact(token.functions.faucet(1))
        rates["transact, one at a time"] = _rate(50, started)
        for size in (50, 200):
            started = time.perf_counter()
            session.transact_batch([token.functions.faucet(1) for _ in range(size)])
            rates[f"transact_batch of {size}"] = _rate(size, started)

        owner = CoveClient.open(info.rpc_url, dev_account(0), home)
        ids = []
        for seed in range((1 + rounds) * datasets):
            path = home / f"{seed}.csv"
            make_table(rows=40, seed=seed).to_csv(path, index=False)
            terms = parse_terms(price="1", payment_token=deployment.payment_token, budget="8", per_job_cap="2")
            ids.append(publish_dataset(owner, path, name=f"d{seed}", terms=terms, schema=PATIENTS_SCHEMA).dataset_id)
        buyer = CoveClient.open(info.rpc_url, dev_account(1), home / "buyer", hub=owner.cove.address)
        mint_test_tokens(buyer, 1000)

        started = time.perf_counter()
        for dataset_id in ids[:datasets]:
            buy_credits(buyer, dataset_id, 1)  # approve + buy, or buyWithPermit: the fewest safe txs
        rates["buy_credits, one dataset at a time"] = _rate(datasets, started)
        batches = []
        for start in range(datasets, len(ids), datasets):  # fresh datasets each round: an approval each
            started = time.perf_counter()
            buy_credits_batch(buyer, [(dataset_id, 1) for dataset_id in ids[start : start + datasets]])
            batches.append(_rate(datasets, started))
        rates[f"buy_credits_batch of {datasets} datasets (median of {rounds})"] = statistics.median(batches)
        return rates
    finally:
        chain.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=20, help="datasets bought from, each way")
    parser.add_argument("--rounds", type=int, default=3, help="batches of purchases timed (the median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        rates = measure(Path(home), args.datasets, args.rounds)
    if args.json:
        print(json.dumps(rates, indent=2))
        return
    table = Table(title="Transactions a second (anvil on 127.0.0.1, this machine)")
    table.add_column("operation")
    table.add_column("per second", justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate:,.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
