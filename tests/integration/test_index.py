"""The SQLite event index: resumes from its last block, follows ownership, survives resets."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PATIENTS_SCHEMA, make_table
from exchange.accounts import dev_account
from exchange.chain.anvil import LocalChain
from exchange.chain.deployment import deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.publish import publish_dataset

pytestmark = pytest.mark.chain

FREE = parse_terms(budget="4", per_job_cap="1", free_cap=2)


def _publish(client: CoveClient, tmp_path: Path, seed: int) -> int:
    path = tmp_path / f"{seed}.csv"
    make_table(seed=seed).to_csv(path, index=False)
    return publish_dataset(client, path, name=f"set {seed}", terms=FREE, schema=PATIENTS_SCHEMA).dataset_id


def test_sync_resumes_and_tracks_changes(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner = client_for(0)
    _publish(owner, tmp_path, 1)
    _publish(owner, tmp_path, 2)
    first = owner.index.sync()
    assert [d["id"] for d in owner.index.datasets()] == [1, 2]

    third = _publish(owner, tmp_path, 3)
    owner.session.transact(owner.cove.functions.setRunner(third, dev_account(5).address))
    owner.session.transact(owner.cove.functions.transferFrom(owner.session.sender, dev_account(4).address, 1))
    last = owner.index.sync()
    assert last > first
    rows = {d["id"]: d for d in owner.index.datasets()}
    assert set(rows) == {1, 2, 3}
    assert rows[3]["runner"] == dev_account(5).address
    assert rows[1]["owner"] == dev_account(4).address
    assert owner.index.latest_policy(3)["version"] == 1
    assert owner.index.sync() == last  # nothing new: nothing re-read


def test_index_starts_over_when_the_chain_was_reset(cove_home: Path, tmp_path: Path) -> None:
    layout = HomeLayout(cove_home)
    chain = LocalChain(layout.chain)
    info, _ = chain.up()
    try:
        deploy(layout.deployments, ChainSession(connect(info.rpc_url), dev_account(0)))
        client = CoveClient.open(info.rpc_url, dev_account(0), cove_home)
        _publish(client, tmp_path, 1)
        _publish(client, tmp_path, 2)
        client.index.sync()
        assert len(client.index.datasets()) == 2
    finally:
        chain.down()
    chain.state_file.unlink()  # a brand-new chain; the same deployer gets the same addresses
    info, _ = chain.up()
    try:
        deploy(layout.deployments, ChainSession(connect(info.rpc_url), dev_account(0)))
        client = CoveClient.open(info.rpc_url, dev_account(0), cove_home)
        third = _publish(client, tmp_path, 3)
        client.index.sync()
        assert [d["id"] for d in client.index.datasets()] == [third]
        assert len(client.index.datasets()) == 1
    finally:
        chain.down()
