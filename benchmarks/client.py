"""How fast the client starts and lists: `cove` start-up, and datasets and jobs listed from the
event index at 1,000 and 10,000 of each, and on a local chain filled by real transactions.

Run: `.venv/bin/python benchmarks/client.py` (starts and stops its own anvil chains; `--json`
for scripts; `--sizes 1000 10000`, `--real-datasets 200 --real-jobs 100`, 0 to skip).

- start: wall seconds of `cove … --help` in a fresh interpreter (median of 3).
- synthetic N: a fresh hub on anvil, its index synced, then filled directly with N datasets
  (a policy each, half of them priced in the test token, metadata summaries as a listing
  leaves them) and N jobs (of 5 buyers, 20 distinct DP parameter sets, every status). The
  listings run the real code (sync included: nothing new to read), in this process (best of
  3; "first" includes the token calls, or the curve computations for the job table) and as
  `cove datasets --json` / `cove jobs --all --json` processes (start-up included).
- real: datasets published and jobs requested through real transactions; "cold" is a fresh
  index (every log read and decoded, every metadata document validated once), "warm" the next.
- page: the market page's listing, a search and the jobs (`cove ui`'s views, over HTTP on
  loopback), beside the listings above that they are built on.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from exchange.accounts import dev_account
from exchange.catalog import dataset_listing, datasets_frame
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.jobs import list_jobs
from exchange.paths import HomeLayout
from exchange.sdk import ledger

Figures = list[tuple[str, str, float]]  # (section, what, seconds)
STATUSES = ("requested", "accepted", "completed", "failed", "refunded")


def _best(function: Callable[[], Any], runs: int = 3) -> tuple[float, float]:
    """(first run, best of `runs`) wall seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times[0], min(times)


def _cli(home: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exchange.cli", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "COVE_HOME": str(home), "COLUMNS": "200"})  # fmt: skip
    return time.perf_counter() - start


def start_times() -> Figures:
    figures = []
    for args in (["--help"], ["datasets", "--help"], ["jobs", "--help"], ["train", "--help"], ["buy", "--help"]):
        runs = [_cli(Path(tempfile.gettempdir()), *args) for _ in range(3)]
        figures.append(("start", f"cove {' '.join(args)}", statistics.median(runs)))
    return figures


class Chain:
    """A fresh local chain with Cove deployed, in a temporary home."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="cove-bench-client-"))
        self.layout = HomeLayout(self.home)
        self.local = LocalChain(self.layout.chain)
        info, _ = self.local.up()
        self.rpc = info.rpc_url
        deploy(self.layout.deployments, ChainSession(connect(self.rpc), dev_account(0)))

    def client(self, index: int | None = None) -> CoveClient:
        return CoveClient.open(self.rpc, None if index is None else dev_account(index), self.home)

    def close(self) -> None:
        self.local.down()
        shutil.rmtree(self.home, ignore_errors=True)


def _hex(size: int) -> str:
    return "0x" + secrets.token_hex(size)


def fill_index(client: CoveClient, count: int) -> None:
    """`count` synthetic datasets and jobs, written into the (synced) index as sync would."""
    client.index.sync()  # the sync marks: the head is indexed, so listings find nothing new to read
    token = client.deployment.payment_token
    owner = dev_account(0).address
    buyers = [dev_account(i).address for i in range(1, 6)]
    dp_sets = [{"noiseMultiplier": 900_000 + 10_000 * i, "sampleRate": 10_000_000, "steps": 100 * (i + 1),
                "clipNorm": 1_000_000, "epochs": i % 3 + 1} for i in range(20)]  # fmt: skip
    datasets, policies, metadata, jobs = [], [], [], []
    for i in range(1, count + 1):
        digest = _hex(32)
        datasets.append((i, owner, _hex(20), digest, _hex(32), 100 + i, 20_000_000, owner, None, 1, _hex(32)))
        policy = {"paymentToken": token if i % 2 else "0x" + "00" * 20, "price": 1_500_000_000_000_000_000 if i % 2 else 0,
                  "expiry": 0, "budget": 8_000_000, "perJobCap": 2_000_000, "delta": 10**13, "maxEpochs": 20,
                  "freeCap": 0 if i % 2 else 10, "computeOnly": False, "allowlistRoot": "0x" + "00" * 32,
                  "modelFamiliesRoot": "0x" + "00" * 32}  # fmt: skip
        policies.append((i, 1, json.dumps(policy), "0x" + "00" * 32, 1))
        metadata.append((digest, f"dataset {i}", json.dumps(["bench", f"group {i % 10}"]), 4 + i % 7))
        status = STATUSES[i % len(STATUSES)]
        request = {"specHash": _hex(32), "spec": _hex(260), "dp": dp_sets[i % len(dp_sets)], "curveHash": _hex(32),
                   "modelFamily": _hex(32), "deadline": 1_900_000_000 + i, "encryptionKey": _hex(65)}  # fmt: skip
        runner = None if status == "requested" else owner.lower()
        completion = json.dumps({"weightsDigest": _hex(32), "weightsHash": _hex(32), "provenanceHash": _hex(32),
                                 "provenanceDigest": _hex(32)}) if status == "completed" else None  # fmt: skip
        reason = "out of memory" if status == "failed" else None
        jobs.append((i, 1 + i % count, buyers[i % len(buyers)].lower(), json.dumps(request), status, runner,
                     completion, reason, 1 if status == "failed" else None, 1, _hex(32), request["deadline"]))  # fmt: skip
    with sqlite3.connect(client.index.path) as db:
        db.executemany("INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?,?,?)", datasets)
        db.executemany("INSERT INTO policies VALUES (?,?,?,?,?)", policies)
        db.executemany("INSERT INTO metadata VALUES (?,?,?,?)", metadata)
        db.executemany(
            "INSERT INTO jobs (id, dataset_id, consumer, request, status, runner, completion, reason, charge_kept, "
            "block, tx, deadline) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", jobs,
        )  # fmt: skip


def listing_figures(section: str, chain: Chain, client: CoveClient, buyer: str) -> Figures:
    figures: Figures = []
    first, best = _best(lambda: dataset_listing(client))
    figures += [(section, "datasets: catalog.dataset_listing, first", first), (section, "datasets: dataset_listing", best)]
    figures.append((section, "datasets: Cove.datasets() (DataFrame)", _best(lambda: datasets_frame(client))[1]))
    figures.append((section, "jobs: list_jobs, everyone's", _best(lambda: list_jobs(client))[1]))
    figures.append((section, "jobs: list_jobs, one buyer's", _best(lambda: list_jobs(client, buyer))[1]))

    def job_table() -> None:
        rows = ledger.indexed_jobs(client)
        ledger.jobs_frame(client, rows, ledger.policy_deltas(client, {row["dataset_id"] for row in rows}))

    first, best = _best(job_table)
    figures += [(section, "jobs: Cove.jobs(everyone=True) table with ε, first", first),
                (section, "jobs: Cove.jobs(everyone=True) table with ε", best)]  # fmt: skip
    figures += page_figures(section, client)
    figures.append((section, "process: cove datasets --json", _cli(chain.home, "datasets", "--json")))
    figures.append((section, "process: cove jobs --all --json", _cli(chain.home, "jobs", "--all", "--json")))
    figures.append((section, "process: cove datasets (Rich table, the first 50)", _cli(chain.home, "datasets")))
    figures.append((section, "process: cove datasets --limit 0 (Rich table, every one)",
                    _cli(chain.home, "datasets", "--limit", "0")))
    return figures


def page_figures(section: str, client: CoveClient) -> Figures:
    """The market page's views over HTTP (rendered, served and read by `requests`), best of 3."""
    import requests

    from exchange.http_server import HttpServer, build_app
    from exchange.ui import MarketPage

    page = MarketPage(client)
    with HttpServer(build_app(page.routes())) as server:
        def get(path: str) -> Callable[[], None]:
            return lambda: requests.get(server.url + path, timeout=60).raise_for_status()

        return [
            (section, "page: / (the first 50 datasets)", _best(get("/"))[1]),
            (section, "page: /?q=group 3 (a search)", _best(get("/?q=group%203"))[1]),
            (section, "page: /jobs (the first 50 jobs, with ε)", _best(get("/jobs"))[1]),
        ]


def synthetic(count: int) -> Figures:
    chain = Chain()
    try:
        client = chain.client()
        fill_index(client, count)
        return listing_figures(f"synthetic {count:,}", chain, chain.client(), dev_account(1).address)
    finally:
        chain.close()


def real(datasets: int, jobs: int) -> Figures:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import PATIENTS_SCHEMA, make_table  # the tests' synthetic table

    from exchange.jobs import request_job
    from exchange.market import buy_credits
    from exchange.ml.spec import ModelSpec
    from exchange.policy import parse_terms
    from exchange.publish import publish_dataset

    chain = Chain()
    section = f"real {datasets} datasets, {jobs} jobs"
    try:
        owner, buyer = chain.client(0), chain.client(1)
        folder = chain.home / "data"
        folder.mkdir()
        start = time.perf_counter()
        for i in range(datasets):
            path = folder / f"{i}.csv"
            make_table(seed=i).to_csv(path, index=False)
            terms = parse_terms(budget="1000", per_job_cap="2", free_cap=50) if i % 2 == 0 else parse_terms(
                price="1.5", payment_token=owner.deployment.payment_token, budget="1000", per_job_cap="2")  # fmt: skip
            publish_dataset(owner, path, name=f"set {i}", terms=terms, schema=PATIENTS_SCHEMA, tags=["bench"])
        figures: Figures = [(section, f"setup: publish {datasets} datasets (transactions)", time.perf_counter() - start)]
        spec = ModelSpec.parse(json.dumps({
            "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
            "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
            "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 20,
            "epochs": 1, "dp": {"target_epsilon": 0.5, "delta": 1e-5, "max_grad_norm": 1.0},
        }))  # fmt: skip
        start = time.perf_counter()
        free = list(range(1, datasets + 1, 2))
        for n in range(jobs):
            dataset_id = free[n % len(free)]
            if n < len(free):
                buy_credits(buyer, dataset_id, -(-jobs // len(free)))
            request_job(buyer, dataset_id, spec)
        figures.append((section, f"setup: request {jobs} jobs (transactions)", time.perf_counter() - start))
        for path in chain.layout.index.glob("*.sqlite"):
            path.unlink()
        cold = chain.client()
        figures.append((section, "datasets: first listing, fresh index (sync + validate)", _best(lambda: dataset_listing(cold), 1)[0]))
        return figures + listing_figures(section, chain, chain.client(), buyer.session.sender)
    finally:
        chain.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000], help="synthetic index sizes")
    parser.add_argument("--real-datasets", type=int, default=200, help="datasets published for real (0: skip)")
    parser.add_argument("--real-jobs", type=int, default=100, help="jobs requested for real")
    parser.add_argument("--no-start", action="store_true", help="skip the start-up figures")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    figures: Figures = [] if args.no_start else start_times()
    for size in args.sizes:
        figures += synthetic(size)
    if args.real_datasets:
        figures += real(args.real_datasets, args.real_jobs)
    if args.json:
        print(json.dumps([{"section": s, "what": w, "seconds": round(t, 4)} for s, w, t in figures], indent=2))
        return
    grid = Table(title="Cove client: start-up and listings (wall seconds)", title_justify="left")
    for column in ("section", "what", "seconds"):
        grid.add_column(column, justify="right" if column == "seconds" else "left")
    for section, what, seconds in figures:
        grid.add_row(section, what, f"{seconds:.3f}")
    Console().print(grid)


if __name__ == "__main__":
    main()
