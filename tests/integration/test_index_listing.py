"""Listings from the event index: every event decoded as web3 decodes it, jobs' states as the
chain holds them, a buyer's jobs by its topic, datasets in one query with their metadata read
once, curves computed once, and `cove datasets`/`cove jobs` printing what they printed before,
without pandas or torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PATIENTS_SCHEMA, make_table

from exchange.accounts import dev_account
from exchange.catalog import (
    LISTING_COLUMNS,
    OUT_OF_REACH,
    dataset_listing,
    dataset_view,
    datasets_frame,
)
from exchange.client import CoveClient
from exchange.index import _HUB_EVENTS, _JOB_EVENTS, EventIndex, _EventDecoder, _jsonable
from exchange.jobs import RequestedJob, job_info, list_jobs, request_job
from exchange.market import buy_credits, mint_test_tokens
from exchange.ml.spec import ModelSpec
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.sdk import ledger

pytestmark = pytest.mark.chain

SPEC = ModelSpec.parse(json.dumps({
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 20,
    "epochs": 1, "dp": {"target_epsilon": 0.5, "delta": 1e-5, "max_grad_norm": 1.0},
}))  # fmt: skip
RUNNER = 5


def _publish(client: CoveClient, tmp_path: Path, seed: int, **terms: Any) -> int:
    path = tmp_path / f"{seed}.csv"
    make_table(seed=seed).to_csv(path, index=False)
    policy = parse_terms(budget="4", per_job_cap="1", **terms)
    return publish_dataset(client, path, name=f"set {seed}", terms=policy, schema=PATIENTS_SCHEMA, tags=["t", str(seed)]).dataset_id


@pytest.fixture
def market(client_for, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two free datasets (the second served by dev5) and a paid one; dev1's and dev2's jobs in
    every state: requested, accepted, completed, failed (from requested and from accepted), refunded."""
    owner, buyer, other, runner = client_for(0), client_for(1), client_for(2), client_for(RUNNER)
    free = _publish(owner, tmp_path, 1, free_cap=9)
    served = _publish(owner, tmp_path, 2, free_cap=9)
    paid = _publish(owner, tmp_path, 3, price="1.5", payment_token=owner.deployment.payment_token)
    owner.session.transact(owner.cove.functions.setRunner(served, dev_account(RUNNER).address))
    runner.session.transact(runner.cove.functions.setEndpoint("http://127.0.0.1:9/cove"))
    owner.session.transact(owner.cove.functions.setPolicyController(paid, dev_account(3).address))
    mint_test_tokens(buyer, 10)
    buy_credits(buyer, paid, 1)
    buy_credits(buyer, free, 2)
    buy_credits(buyer, served, 4)
    buy_credits(other, free, 1)
    jobs = [request_job(buyer, served, SPEC).job_id for _ in range(3)]  # accepted, completed, failed after accepting
    jobs.append(request_job(buyer, free, SPEC).job_id)  # failed by its runner before accepting
    jobs.append(request_job(buyer, served, SPEC, deadline_seconds=60).job_id)  # refunded
    theirs = request_job(other, free, SPEC).job_id  # still requested
    def curve(job_id: int) -> list[int]:  # what fail and refund take off the ledger
        return list(RequestedJob.from_index(_row(buyer, job_id)).honest_curve)

    for job in jobs[:3]:
        runner.session.transact(runner.jobs.functions.accept(job))
    runner.session.transact(runner.jobs.functions.complete(jobs[1], b"\1" * 32, b"\2" * 32, b"\3" * 32, b"\4" * 32))
    runner.session.transact(runner.jobs.functions.fail(jobs[2], "out of memory", curve(jobs[2]), True))
    owner.session.transact(owner.jobs.functions.fail(jobs[3], "no such file", curve(jobs[3]), False))
    buyer.session.advance_time(120)
    buyer.session.transact(buyer.jobs.functions.refund(jobs[4], curve(jobs[4])))
    owner.session.transact(owner.cove.functions.transferFrom(owner.session.sender, dev_account(4).address, free))
    return {"owner": owner, "buyer": buyer, "other": other, "datasets": [free, served, paid], "jobs": jobs, "theirs": theirs}


def _row(client: CoveClient, job_id: int) -> dict[str, Any]:
    client.index.sync()
    row = client.index.job(job_id)
    assert row is not None
    return row


def test_every_event_decodes_as_web3_decodes_it(market: dict[str, Any]) -> None:
    client: CoveClient = market["owner"]
    logs = client.session.w3.eth.get_logs(
        {"address": [client.cove.address, client.jobs.address], "fromBlock": client.deployment.block, "toBlock": "latest"}
    )
    seen = set()
    for contract, names in ((client.cove, _HUB_EVENTS), (client.jobs, _JOB_EVENTS)):
        for name in names:
            event = getattr(contract.events, name)()
            decoder = _EventDecoder(event.abi)
            for log in logs:
                if log["address"] == contract.address and log["topics"][0].to_0x_hex() == event.topic:
                    theirs = dict(event.process_log(log)["args"])
                    ours = decoder.args(log)
                    assert list(ours) == list(theirs)  # the same keys in the same order
                    assert json.dumps(_jsonable(ours)) == json.dumps(_jsonable(theirs)), name
                    seen.add(name)
    assert seen == set(_HUB_EVENTS) | set(_JOB_EVENTS)  # the fixture emitted every kind


def test_job_states_from_events_are_the_chain_s(market: dict[str, Any]) -> None:
    buyer: CoveClient = market["buyer"]
    listed = list_jobs(buyer)
    assert [j.job_id for j in listed] == sorted([*market["jobs"], market["theirs"]])
    for info in listed:
        assert info == job_info(buyer, info.job_id)  # status, runner, deadline and digests: what jobOf says
    statuses = [j.status for j in listed if j.job_id in market["jobs"]]
    assert statuses == ["accepted", "completed", "failed", "failed", "refunded"]


def test_a_buyer_s_jobs_come_from_its_topic(market: dict[str, Any]) -> None:
    buyer: CoveClient = market["buyer"]
    mine = list_jobs(buyer, buyer.session.sender.lower())  # any spelling of the address
    assert [j.job_id for j in mine] == market["jobs"]
    theirs = list_jobs(buyer, market["other"].session.sender)
    assert [(j.job_id, j.status) for j in theirs] == [(market["theirs"], "requested")]
    assert list_jobs(buyer, dev_account(7).address) == []


def test_sync_is_incremental(market: dict[str, Any], tmp_path: Path) -> None:
    owner: CoveClient = market["owner"]
    ranges: list[tuple[int, int]] = []
    reader = owner.index._logs
    chunks = reader.chunks

    def spy(filter_params, start, end):  # type: ignore[no-untyped-def]
        ranges.append((start, end))
        return chunks(filter_params, start, end)

    reader.chunks = spy  # type: ignore[method-assign]
    first = owner.index.sync()
    assert owner.index.sync() == first and ranges[-1] == (first + 1, first)  # nothing new: an empty range
    _publish(owner, tmp_path, 9, free_cap=1)
    last = owner.index.sync()
    assert ranges[-1] == (first + 1, last) and last > first  # only the new blocks are read
    assert [d["id"] for d in dataset_listing(owner)][-1] == 4


def test_the_listing_is_the_chain_s_and_its_metadata_is_read_once(market: dict[str, Any], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    owner: CoveClient = market["owner"]
    listing = dataset_listing(owner)
    assert [row["id"] for row in listing] == market["datasets"]
    for row in listing:
        assert list(row) == LISTING_COLUMNS
        view = dataset_view(owner, row["id"])  # chain reads and the metadata document, independently
        assert (row["name"], row["rows"], row["columns"], row["tags"]) == (
            view.metadata.name, view.rows, len(view.metadata.schema_.columns), list(view.metadata.tags))
        assert row["price"] == float(view.policy.price) and row["currency"] == view.payment_symbol
        assert (row["budget_epsilon"], row["per_job_epsilon"]) == (float(view.policy.budget), float(view.policy.per_job_cap))
        assert (row["policy_version"], row["owner"]) == (view.policy_version, view.owner)
    assert listing[0]["owner"] == dev_account(4).address  # the NFT moved

    # Again, from another client: summaries from the index, no document read, no call per dataset.
    import exchange.publish

    monkeypatch.setattr(exchange.publish, "load_metadata", lambda *a: pytest.fail("metadata read again"))
    again = CoveClient.open(owner.session.w3.provider.endpoint_uri, None, owner.home.root)  # type: ignore[attr-defined]
    calls: list[Any] = []
    call = again.session.call
    monkeypatch.setattr(again.session, "call", lambda *a, **k: calls.append(a) or call(*a, **k))
    assert dataset_listing(again) == listing
    assert len(calls) == 2  # the one paid token's decimals and symbol
    assert dataset_listing(again) == listing and len(calls) == 2


def test_metadata_out_of_reach_is_listed_and_tried_again(market: dict[str, Any], tmp_path: Path) -> None:
    owner: CoveClient = market["owner"]
    rpc = owner.session.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    stranger = CoveClient.open(rpc, None, tmp_path / "stranger", hub=owner.deployment.cove)
    listing = dataset_listing(stranger)  # an empty home, and no endpoint serves the documents
    assert [(r["name"], r["columns"], r["tags"]) for r in listing] == [(OUT_OF_REACH, None, [])] * 3
    assert [r["rows"] for r in listing] == [r["rows"] for r in dataset_listing(owner)]
    # The owner's home has the documents: copied over, the next listing reads and keeps them.
    for path in owner.store.root.rglob("*"):
        if path.is_file():
            target = stranger.store.root / path.relative_to(owner.store.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert [r["name"] for r in dataset_listing(stranger)] == ["set 1", "set 2", "set 3"]


def test_the_cli_prints_what_the_dataframe_gave_without_pandas_or_torch(market: dict[str, Any], cove_home: Path) -> None:
    owner: CoveClient = market["owner"]
    expected = json.loads(json.dumps(datasets_frame(owner).to_dict(orient="records")))
    code = (
        "import io, json, sys, contextlib\n"
        "from exchange.cli.app import main\n"
        "for argv in (['datasets', '--json'], ['jobs', '--all', '--json'], ['jobs', '-a', 'dev1', '--json']):\n"
        "    sys.argv = ['cove', *argv]\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            main()\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, done.code\n"
        "    print(json.dumps(json.loads(out.getvalue())))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "COVE_HOME": str(cove_home)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    datasets, everyone, mine, modules = (json.loads(line) for line in done.stdout.strip().splitlines()[-4:])
    # The same rows, tags a list of strings in both.
    assert all(isinstance(d["tags"], list) for d in datasets) and any(d["tags"] for d in datasets)
    assert datasets == expected
    assert [j["job_id"] for j in everyone] == sorted([*market["jobs"], market["theirs"]])
    assert [j["job_id"] for j in mine] == market["jobs"]
    assert {j["status"] for j in mine} == {"accepted", "completed", "failed", "refunded"}
    assert {"torch", "opacus", "scipy", "pandas", "numpy"} & set(modules) == set()


def test_job_epsilons_come_from_the_curve_cache(market: dict[str, Any], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import exchange.jobs

    buyer: CoveClient = market["buyer"]
    rows = ledger.indexed_jobs(buyer, consumer=buyer.session.sender)
    deltas = ledger.policy_deltas(buyer, {row["dataset_id"] for row in rows})
    assert set(deltas.values()) == {1e-5}
    frame = ledger.jobs_frame(buyer, rows, deltas)
    honest = [ledger.job_epsilon(RequestedJob.from_index(row).honest_curve, 1e-5) for row in rows]
    assert frame["epsilon"].tolist() == honest and 0 < honest[0] <= 0.5
    reasons = [r if isinstance(r, str) else None for r in frame["reason"].tolist()]  # pandas' NA for None
    assert reasons == [None, None, "out of memory", "no such file", None]

    # A new process would find the curves in the index: nothing is computed again.
    exchange.jobs._honest_curve.cache_clear()
    monkeypatch.setattr(exchange.jobs, "rdp_curve", lambda *a: pytest.fail("curve computed again"))
    assert ledger.jobs_frame(buyer, rows, deltas)["epsilon"].tolist() == honest


def test_an_index_in_the_old_layout_is_left_alone(market: dict[str, Any]) -> None:
    owner: CoveClient = market["owner"]
    owner.index.sync()
    old = owner.index.path.with_name(owner.index.path.name.replace("-v3.", "-v2."))
    old.write_bytes(b"an older layout")
    fresh = EventIndex(owner.home.index, owner.session, owner.deployment, owner.cove, owner.jobs)
    assert fresh.path != old and fresh.sync() >= owner.deployment.block
    assert old.read_bytes() == b"an older layout"
