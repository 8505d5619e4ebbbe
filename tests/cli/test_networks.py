"""`cove network`: a named RPC URL, hub and gateways, checked on-chain before it is saved, and
usable from a home that knows nothing else (the CLI and the SDK)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CliResult
from exchange import Cove
from exchange.chain.anvil import ChainInfo

pytestmark = pytest.mark.chain


def one_sentence(result: CliResult, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_named_network_is_all_a_stranger_needs(cove, chain: ChainInfo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub = cove("deploy", "--json").json()["cove"]
    stranger = ("--home", str(tmp_path / "stranger"))
    added = cove("network", "add", "lab", "--rpc", chain.rpc_url, "--hub", hub, "--gateway",
                 "http://127.0.0.1:8080", "--log-range", "500", "--json", *stranger)  # fmt: skip
    assert added.exit_code == 0, added.stderr
    listed = cove("network", "list", "--json", *stranger).json()
    assert listed == [{"name": "lab", "rpc": chain.rpc_url, "hub": hub, "gateways": ["http://127.0.0.1:8080"],
                       "log_range": 500}]  # fmt: skip
    assert cove("datasets", "--json", "--network", "lab", *stranger).json() == []
    status = cove("chain", "status", "--json", "--network", "lab", *stranger).json()
    assert status["cove"] == hub and status["rpc_url"] == chain.rpc_url and status["deployment_block"] >= 1
    with Cove(network="lab", account="dev1", home=tmp_path / "stranger") as sdk:
        assert sdk.hub == hub and sdk.client.gateways == ("http://127.0.0.1:8080",)
    assert cove("network", "remove", "lab", "--json", *stranger).exit_code == 0
    assert cove("network", "list", "--json", *stranger).json() == []


def test_a_network_is_checked_before_it_is_saved(cove, chain: ChainInfo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deployed = cove("deploy", "--json").json()
    home = ("--home", str(tmp_path / "stranger"))
    not_a_hub = cove("network", "add", "lab", "--rpc", chain.rpc_url, "--hub", deployed["payment_token"], *home)
    assert not_a_hub.exit_code != 0 and "is not a Cove hub" in not_a_hub.stderr
    one_sentence(cove("network", "add", "Lab Net", "--rpc", chain.rpc_url, "--hub", deployed["cove"], *home), "not a network name")
    one_sentence(cove("network", "add", "lab", "--rpc", "localhost:8545", "--hub", deployed["cove"], *home), "not a usable RPC URL")
    one_sentence(cove("network", "add", "lab", "--rpc", chain.rpc_url, "--hub", "0xabc", *home), "not a hub address")
    one_sentence(cove("datasets", "--network", "nowhere", *home), "There is no network named 'nowhere'")
    assert not (tmp_path / "stranger" / "networks.json").exists()  # nothing was written
