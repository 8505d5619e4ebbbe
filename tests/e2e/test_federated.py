"""Spike: three in-process runners, one aggregator, a real federation on anvil."""
from __future__ import annotations
import secrets, threading, time
from pathlib import Path
import pytest
from compute_to_data.runner import Runner, RunnerLimits
from exchange.catalog import dataset_view
from exchange.federated.aggregator import Aggregator
from exchange.federated.arrays import model_digest
from exchange.federated.server import RunSettings, initial_arrays, read_federation
from exchange.jobs import job_info, request_job
from exchange.market import buy_credits
from exchange.ml.spec import FederationSpec
from test_compute_jobs import make_spec, publish

pytestmark = pytest.mark.chain

def test_three_owner_federation(client_for, chain, tmp_path: Path) -> None:
    owners = [client_for(i) for i in range(3)]
    buyer = client_for(3)
    datasets = [publish(o, tmp_path, f"h{i}", rows=300, seed=10 + i, budget="20", per_job_cap="5", free_cap=5) for i, o in enumerate(owners)]
    for d in datasets:
        buy_credits(buyer, d, 1)
    with Aggregator(tmp_path / "agg", buyer.session.account.key.hex()) as agg:
        spec = make_spec(epochs=1).model_copy(update={"federation": FederationSpec(rounds=2, superlink=agg.fleet_address)})
        jobs = [request_job(buyer, d, spec).job_id for d in datasets]
        schema = dataset_view(buyer, datasets[0]).metadata.schema_
        seed = 7
        digest = model_digest(initial_arrays(spec, schema, seed))
        fr = buyer.session.contract("FederatedRounds", buyer.deployment.federated_rounds)
        buyer.session.transact(fr.functions.open(jobs, buyer.session.sender, 2, digest))
        fed_id = 1
        runners = [Runner(o, RunnerLimits(device="cpu", allow_unsandboxed=True, wall_seconds=300, workers=1, federated_idle_seconds=120)) for o in owners]
        stop = threading.Event()
        threads = [threading.Thread(target=r.run, kwargs={"interval": 0.5, "stop": stop.is_set}, daemon=True) for r in runners]
        for t in threads: t.start()
        run_id = agg.submit(RunSettings(rpc=chain.rpc_url, hub=buyer.deployment.cove, federation_id=fed_id, init_seed=seed, join_timeout=120, stage_timeout=120))
        status = agg.wait(run_id, 400)
        print(agg.server_log(run_id)[-4000:])
        assert status.completed, status
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(job_info(buyer, j).status != "completed" for j in jobs):
            time.sleep(1)
        stop.set()
        for t in threads: t.join(60)
        print([job_info(buyer, j).status for j in jobs])
        assert [job_info(buyer, j).status for j in jobs] == ["completed"] * 3
        assert read_federation(buyer, fed_id).committed == 2
