"""Where a command connects: options, environment, named networks, the local chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.connection import resolve_target
from exchange.errors import ChainError, InputError
from exchange.networks import NetworkBook, checked_http_url
from exchange.paths import HomeLayout

HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_HUB = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HomeLayout:
    for variable in ("COVE_RPC_URL", "COVE_HUB", "COVE_NETWORK", "COVE_GATEWAYS"):
        monkeypatch.delenv(variable, raising=False)
    return HomeLayout(tmp_path / "home")


def test_explicit_values_win_over_the_environment(layout: HomeLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_RPC_URL", "http://127.0.0.1:8")
    monkeypatch.setenv("COVE_HUB", OTHER_HUB)
    monkeypatch.setenv("COVE_GATEWAYS", "http://127.0.0.1:9, http://127.0.0.1:10")
    target = resolve_target(layout)
    assert (target.rpc, target.hub, target.gateways) == ("http://127.0.0.1:8", OTHER_HUB, ("http://127.0.0.1:9", "http://127.0.0.1:10"))
    target = resolve_target(layout, rpc="http://127.0.0.1:7", hub=HUB, gateways=["http://127.0.0.1:6/"])
    assert (target.rpc, target.hub, target.gateways) == ("http://127.0.0.1:7", HUB, ("http://127.0.0.1:6",))


def test_a_named_network_fills_in_what_is_not_given(layout: HomeLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    book = NetworkBook(layout.networks)
    book.save("testnet", book.validated("testnet", "http://127.0.0.1:8545", HUB.lower(), ["http://127.0.0.1:9"], 500))
    target = resolve_target(layout, network="testnet")
    assert (target.rpc, target.hub, target.gateways, target.log_range) == (
        "http://127.0.0.1:8545", HUB, ("http://127.0.0.1:9",), 500,
    )  # fmt: skip
    assert resolve_target(layout, network="testnet", hub=OTHER_HUB).hub == OTHER_HUB
    monkeypatch.setenv("COVE_NETWORK", "testnet")
    assert resolve_target(layout).rpc == "http://127.0.0.1:8545"
    with pytest.raises(InputError, match="no network named 'mainnet' .known: testnet."):
        resolve_target(layout, network="mainnet")


def test_without_anything_named_the_local_chain_is_needed(layout: HomeLayout) -> None:
    with pytest.raises(ChainError, match=r"No chain to talk to: pass --rpc URL and --hub ADDRESS .* `cove chain up`"):
        resolve_target(layout)


def test_network_book_refuses_bad_values_and_writes_nothing(layout: HomeLayout) -> None:
    book = NetworkBook(layout.networks)
    cases = [
        (("Bad Name", "http://127.0.0.1:1", HUB), "not a network name"),
        (("net", "ftp://127.0.0.1:1", HUB), "not a usable RPC URL"),
        (("net", "http://user:pw@127.0.0.1:1", HUB), "must not carry credentials"),
        (("net", "http://127.0.0.1:1", "0x1234"), "not a hub address"),
    ]
    for args, message in cases:
        with pytest.raises(InputError, match=message):
            book.validated(*args)
    with pytest.raises(InputError, match="log-range"):
        book.validated("net", "http://127.0.0.1:1", HUB, [], 0)
    assert not layout.networks.exists()
    assert book.all() == {}


def test_network_book_add_list_remove_and_damage(layout: HomeLayout) -> None:
    book = NetworkBook(layout.networks)
    book.save("a", book.validated("a", "http://127.0.0.1:1", HUB))
    book.save("b", book.validated("b", "https://rpc.example/v1", OTHER_HUB))
    assert sorted(book.all()) == ["a", "b"]
    book.remove("a")
    assert sorted(book.all()) == ["b"]
    with pytest.raises(InputError, match="no network named 'a'"):
        book.remove("a")
    layout.networks.write_text(json.dumps({"b": {"rpc": 5}}))
    with pytest.raises(InputError, match="is damaged"):
        book.all()


def test_checked_http_urls() -> None:
    assert checked_http_url(" https://gw.example/ipfs-base/ ", "gateway URL") == "https://gw.example/ipfs-base"
    for bad in ("gw.example", "http://", "http://host:99999x", "http://host/?q=1", "http://host/#x"):
        with pytest.raises(InputError):
            checked_http_url(bad, "gateway URL")
