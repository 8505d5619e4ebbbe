"""Cove's plumbing without a chain: accounts by name, private file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.accounts import Keystore, dev_account
from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.errors import AccountError
from exchange.paths import HomeLayout
from exchange.sdk import cove as cove_module
from exchange.sdk.cove import _resolve_account, _slug


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


def test_slugs_for_private_file_names() -> None:
    assert _slug("Breast cancer (Wisconsin)") == "breast-cancer-wisconsin"
    assert _slug("!!!") == "dataset"
