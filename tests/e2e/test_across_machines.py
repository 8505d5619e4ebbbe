"""Three parties on three "machines": a hospital's CLI, its runner with its endpoint, and a
data scientist's SDK, each a process of its own with a home of its own, on one anvil. They
share the RPC URL, the hub's address and what the chain names (the endpoint's URL), and
nothing else: publish, browse with the mock, buy, train, fetch, verify, a governance round
voted from the members' own homes, and the endpoint going down and coming back.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange import Cove, Spec
from exchange.accounts import dev_account
from exchange.chain.anvil import free_loopback_port
from exchange.errors import ContentUnavailable
from exchange.paths import HomeLayout
from exchange.storage import compute_cid
from conftest import make_table, write_schema
from parties import RUNNER, Machines, RunnerProcess, cove_cli, machines_on_a_chain

pytestmark = pytest.mark.chain


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    yield from machines_on_a_chain(tmp_path)


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def test_hospital_runner_and_scientist_trade_through_the_chain_and_the_endpoint(machines: Machines, tmp_path: Path) -> None:
    rpc = machines.rpc
    # The hospital deploys Cove (any party could) and keeps its private table outside every home.
    hospital = machines.home("hospital")
    deployed = cove_cli(hospital, "deploy", rpc=rpc)
    hub = deployed["cove"]
    private_dir = tmp_path / "hospital-premises"
    private_dir.mkdir()
    private = private_dir / "patients.csv"
    make_table(rows=600, seed=7).to_csv(private, index=False)
    schema = write_schema(private_dir / "patients.schema.json")  # declared from public knowledge
    key = private_dir / "commitment.key"  # the hospital's commitment key, on its premises

    # The hospital's runner: its own process and home, pointed at the private file and key.
    port = free_loopback_port()
    runner = RunnerProcess(machines.home("runner"), rpc, hub, port, private, key)
    try:
        # The data scientist: the SDK in this process, a home of its own.
        scientist = Cove(rpc=rpc, hub=hub, account="dev1", home=machines.home("scientist"))
        runner.wait_until_announced(scientist)

        published = cove_cli(
            hospital, "publish", str(private), "--name", "Patients", "--schema", str(schema), "--price", "2",
            "--budget", "6", "--per-job-cap", "3", "--runner", RUNNER, "--tag", "health", rpc=rpc, hub=hub,
        )  # fmt: skip
        dataset_id = published["dataset_id"]
        assert published["endpoint"] == runner.url
        # The first publication created the hospital's key; it hands its runner a copy.
        shutil.copy2(HomeLayout(hospital).commitment_key, key)

        # Browse: the listing, the schema and the mock come from the chain and the endpoint.
        listing = scientist.datasets()
        assert listing["name"].tolist() == ["Patients"] and listing["rows"].tolist() == [published["rows"]]
        dataset = scientist.dataset(dataset_id)
        assert dataset.schema["column"].tolist() == ["age", "bmi", "smoker", "diagnosis"]
        assert len(dataset.mock()) == 20 and dataset.runner == RUNNER

        scientist.faucet(100)
        dataset.buy(2)
        spec = Spec.mlp(["age", "bmi", "smoker"], "diagnosis", hidden=(8,), epsilon=1.0, epochs=2,
                        batch_size=100, dataset=dataset)  # fmt: skip
        job = dataset.train(spec).wait(timeout=300, progress=False)
        assert job.status == "completed"
        model = job.model()
        assert model is not None and job.verify().passed
        assert job.spec == spec  # read back from the request's calldata, on-chain

        # The scientist's home holds what it fetched and checked, and nothing of the hospital's.
        csv_bytes = private.read_bytes()
        held = files_under(machines.home("scientist"))
        assert all(csv_bytes not in data for data in held.values())
        cached = {p.name for p in HomeLayout(machines.home("scientist")).storage.rglob("*") if p.is_file()}
        assert cached == {published["metadata_cid"], job.provenance.weights_cid, _provenance_cid(job)}
        assert not (machines.home("scientist") / "owned-datasets.json").exists()

        # The endpoint goes down: a buyer's other machine (an empty cache) is told where it
        # failed; the job is not lost, and fetching works once the endpoint is back.
        runner.stop()
        laptop = Cove(rpc=rpc, hub=hub, account="dev1", home=tmp_path / "scientist-laptop")
        with pytest.raises(ContentUnavailable) as down:
            laptop.job(job.id).model()
        assert f"{runner.url} did not answer" in str(down.value) and "try again later" in str(down.value)
        assert laptop.job(job.id).status == "completed"
        runner = RunnerProcess(machines.home("runner"), rpc, hub, port, private, key)
        runner.wait_until_announced(laptop)  # already on-chain: it answers again
        _wait_for_http(runner.url)
        assert laptop.job(job.id).verify().passed  # served across the runner's restart

        # Governance: the hospital publishes a dataset governed by three members, each of
        # whom votes from its own home, knowing the consortium by its governor's address.
        consortium = cove_cli(hospital, "gov", "deploy", "--name", "hospitals", "--member",
                              f"{dev_account(2).address}=40", "--member", f"{dev_account(3).address}=35",
                              "--member", f"{dev_account(4).address}=25", rpc=rpc, hub=hub)  # fmt: skip
        governor = consortium["governor"]
        registry_file = private_dir / "registry.csv"
        make_table(rows=400, seed=8).to_csv(registry_file, index=False)
        governed = cove_cli(
            hospital, "publish", str(registry_file), "--name", "Registry", "--schema", str(schema), "--budget", "2",
            "--per-job-cap", "2",
            "--free-cap", "5", "--runner", RUNNER, "--governed-by", governor, rpc=rpc, hub=hub,
        )  # fmt: skip
        members = {i: machines.home("members") / f"member-{i}" for i in (2, 3, 4)}
        proposal = cove_cli(members[2], "gov", "propose", "--dataset", str(governed["dataset_id"]), "--set",
                            "budget=8", "--description", "More budget for a second study", "--consortium", governor,
                            "-a", "dev2", rpc=rpc, hub=hub)["proposal_id"]  # fmt: skip
        cove_cli(members[2], "chain", "mine", "--seconds", "61", rpc=rpc)
        for i, choice in ((2, "for"), (3, "for"), (4, "against")):
            subprocess_vote = ["gov", "vote", proposal, choice, "--consortium", governor, "-a", f"dev{i}"]
            cove_cli(members[i], *subprocess_vote, rpc=rpc, hub=hub)
        cove_cli(members[3], "chain", "mine", "--seconds", "3601", rpc=rpc)
        cove_cli(members[3], "gov", "queue", proposal, "--consortium", governor, "-a", "dev3", rpc=rpc, hub=hub)
        cove_cli(members[4], "chain", "mine", "--seconds", "601", rpc=rpc)
        cove_cli(members[4], "gov", "execute", proposal, "--consortium", governor, "-a", "dev4", rpc=rpc, hub=hub)
        policy = scientist.dataset(governed["dataset_id"]).policy
        assert (policy.version, policy.budget) == (2, 8.0)
        # The members' homes hold no consortium record: the chain told them everything.
        assert not any(p.name == "consortia.json" for home in members.values() for p in home.rglob("*"))
        scientist.close()
        laptop.close()
    finally:
        runner.stop()


def _provenance_cid(job: Any) -> str:
    return str(compute_cid(job.provenance.signed.canonical_bytes()))


def _wait_for_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")
