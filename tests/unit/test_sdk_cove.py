"""Cove's plumbing without a chain: accounts by name, the chain to talk to, serialized sends."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from exchange.accounts import Keystore, dev_account
from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.errors import AccountError, ChainError
from exchange.paths import HomeLayout
from exchange.sdk import cove as cove_module
from exchange.sdk.cove import _resolve_account, _resolve_rpc, _serialize_transactions, _slug


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HomeLayout:
    for variable in ("COVE_RPC_URL", "COVE_ACCOUNT", "COVE_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    return HomeLayout(tmp_path / "home")


def test_dev_accounts_by_name_on_the_local_chain_only(layout: HomeLayout) -> None:
    account, name = _resolve_account(None, LOCAL_CHAIN_ID, layout)
    assert (account.address, name) == (dev_account(0).address, "dev0")
    assert _resolve_account("dev3", LOCAL_CHAIN_ID, layout)[0].address == dev_account(3).address
    with pytest.raises(AccountError, match="only on the local chain"):
        _resolve_account("dev1", 1, layout)
    with pytest.raises(AccountError, match="Pass account=NAME"):
        _resolve_account(None, 1, layout)
    given = dev_account(5)
    assert _resolve_account(given, 1, layout) == (given, given.address)
    with pytest.raises(AccountError, match="must be an account name"):
        _resolve_account(42, LOCAL_CHAIN_ID, layout)  # type: ignore[arg-type]


def test_keystore_accounts_unlock_with_the_environment_or_a_prompt(
    layout: HomeLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = Keystore(layout.keystores).create("alice", "s3cret")
    monkeypatch.setenv("COVE_PASSWORD", "s3cret")
    assert _resolve_account("alice", 1, layout)[0].address == info.address
    monkeypatch.setenv("COVE_PASSWORD", "wrong")
    with pytest.raises(AccountError, match="Wrong password for account 'alice'"):
        _resolve_account("alice", 1, layout)
    monkeypatch.delenv("COVE_PASSWORD")
    asked: list[str] = []
    monkeypatch.setattr(cove_module.getpass, "getpass", lambda prompt: asked.append(prompt) or "s3cret")
    assert _resolve_account("alice", 1, layout)[0].address == info.address
    assert asked == ["Password for 'alice': "]
    with pytest.raises(AccountError, match="No account named 'bob'"):
        _resolve_account("bob", 1, layout)  # a typo is reported before any password is asked
    assert len(asked) == 1
    monkeypatch.setenv("COVE_ACCOUNT", "alice")
    assert _resolve_account(None, 1, layout)[1] == "alice"


def test_the_chain_to_talk_to(layout: HomeLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _resolve_rpc("http://127.0.0.1:9", layout) == "http://127.0.0.1:9"
    with pytest.raises(ChainError, match=r"No chain to talk to.*cove chain up.*Cove.local\(\)"):
        _resolve_rpc(None, layout)
    monkeypatch.setenv("COVE_RPC_URL", "http://127.0.0.1:8")
    assert _resolve_rpc(None, layout) == "http://127.0.0.1:8"


def test_transactions_of_one_account_are_sent_one_at_a_time() -> None:
    inside, overlaps = [0], []

    def slow_send(function: Any, value: int = 0) -> str:
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.02)
        inside[0] -= 1
        return function

    sessions = [SimpleNamespace(account=dev_account(7), transact=slow_send, deploy=slow_send) for _ in range(3)]
    for session in sessions:
        _serialize_transactions(session, "http://127.0.0.1:1")  # type: ignore[arg-type]
        _serialize_transactions(session, "http://127.0.0.1:1")  # type: ignore[arg-type]  # once only
    threads = [threading.Thread(target=s.transact, args=(f"tx{i}",)) for i, s in enumerate(sessions * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 6 and max(overlaps) == 1
    assert sessions[0].transact("x") == "x"


def test_slugs_for_private_file_names() -> None:
    assert _slug("Breast cancer (Wisconsin)") == "breast-cancer-wisconsin"
    assert _slug("!!!") == "dataset"
