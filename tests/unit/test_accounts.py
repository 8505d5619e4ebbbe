"""Keystores (create, import, unlock, list, permissions) and the local chain's dev accounts.

scrypt makes every create/import/unlock take about half a second, so each test here does
as few of them as it can.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import is_checksum_address, keccak

from exchange.accounts import (
    AccountInfo,
    Keystore,
    dev_account,
    dev_accounts,
    is_dev_account_name,
    resolve_dev_account,
)
from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.errors import AccountError

# anvil's first dev account, as every Ethereum developer knows it
DEV0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
KEY = "0x" + keccak(text="cove test key").hex().removeprefix("0x")


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keystores")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_unlock_and_list(keystore: Keystore) -> None:
    info = keystore.create("alice", "s3cret")
    assert info.name == "alice" and info.kind == "keystore" and is_checksum_address(info.address)
    file = keystore.directory / "alice.json"
    assert mode(file) == 0o600
    assert [p.name for p in keystore.directory.iterdir()] == ["alice.json"]  # no temporary file left
    document = json.loads(file.read_text())
    assert document["crypto"]["kdf"] == "scrypt"

    account = keystore.unlock("alice", "s3cret")
    assert account.address == info.address
    assert keystore.list() == [AccountInfo("alice", info.address, "keystore")]

    with pytest.raises(AccountError, match="Wrong password for account 'alice'"):
        keystore.unlock("alice", "S3cret")


def test_import_stores_the_key_encrypted(keystore: Keystore) -> None:
    expected = Account.from_key(KEY).address
    info = keystore.import_key("imported", f"  {KEY}\n", "pw")  # whitespace from a file is fine
    assert info.address == expected
    file = keystore.directory / "imported.json"
    assert mode(file) == 0o600
    assert KEY.removeprefix("0x") not in file.read_text().lower()
    assert keystore.unlock("imported", "pw").key.hex().removeprefix("0x") == KEY.removeprefix("0x")


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "expected 64 hexadecimal characters"),
        ("0x1234", "expected 64 hexadecimal characters"),
        ("g" * 64, "expected 64 hexadecimal characters"),
        (KEY + "00", "expected 64 hexadecimal characters"),
        ("00" * 32, "not valid for secp256k1"),
        ("ff" * 32, "not valid for secp256k1"),  # above the curve order
    ],
)
def test_invalid_keys_are_refused_without_writing(keystore: Keystore, key: str, fragment: str) -> None:
    with pytest.raises(AccountError, match=fragment) as info:
        keystore.import_key("bad", key, "pw")
    if key:
        assert key.removeprefix("0x") not in str(info.value)
    assert not keystore.directory.exists() or not list(keystore.directory.iterdir())


def test_existing_names_and_empty_passwords_are_refused_before_encrypting(
    keystore: Keystore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keystore.import_key("taken", KEY, "pw")
    before = (keystore.directory / "taken.json").read_bytes()

    def no_encryption(*args: object, **kwargs: object) -> None:
        raise AssertionError("encrypted although the request is refused")

    monkeypatch.setattr(Account, "encrypt", no_encryption)
    with pytest.raises(AccountError, match="An account named 'taken' already exists"):
        keystore.create("taken", "pw")
    with pytest.raises(AccountError, match="An account named 'taken' already exists"):
        keystore.import_key("taken", KEY, "pw")
    with pytest.raises(AccountError, match="The password must not be empty"):
        keystore.create("fresh", "")
    assert (keystore.directory / "taken.json").read_bytes() == before
    assert sorted(p.name for p in keystore.directory.iterdir()) == ["taken.json"]


@pytest.mark.parametrize("name", [f"dev{i}" for i in range(10)])
def test_dev_names_are_reserved(keystore: Keystore, name: str) -> None:
    with pytest.raises(AccountError, match="reserved for the local chain's dev accounts"):
        keystore.path(name)
    assert is_dev_account_name(name)


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "-dash", "sp ace", "x" * 65, "ünï"])
def test_unusable_names(keystore: Keystore, name: str) -> None:
    with pytest.raises(AccountError, match="is not a usable account name"):
        keystore.path(name)


@pytest.mark.parametrize("name", ["alice", "Bob_2", "team.ops-1", "dev10", "developer", "x" * 64])
def test_usable_names(keystore: Keystore, name: str) -> None:
    assert keystore.path(name) == keystore.directory / f"{name}.json"
    assert not is_dev_account_name(name)


def test_unlock_unknown_and_damaged_keystores(keystore: Keystore) -> None:
    with pytest.raises(AccountError, match="No account named 'ghost'"):
        keystore.unlock("ghost", "pw")
    keystore.directory.mkdir(parents=True)
    damaged = keystore.directory / "broken.json"
    for content in (
        json.dumps({"address": "00" * 20, "crypto": {"kdf": "scrypt"}, "version": 3}),  # fields missing
        "{ truncated",
        "[]",
        "",
    ):
        damaged.write_text(content)
        with pytest.raises(AccountError, match="is damaged; restore it from a backup"):
            keystore.unlock("broken", "pw")


def test_list_skips_files_that_are_not_keystores(keystore: Keystore) -> None:
    keystore.directory.mkdir(parents=True)
    (keystore.directory / "notes.json").write_text("not json")
    (keystore.directory / "other.json").write_text(json.dumps({"hello": "world"}))
    (keystore.directory / "list.json").write_text("[]")
    (keystore.directory / "number.json").write_text(json.dumps({"address": 5}))
    (keystore.directory / "short.json").write_text(json.dumps({"address": "1234"}))
    # other tools (geth) write lowercase addresses without 0x: listed checksummed
    (keystore.directory / "b.json").write_text(json.dumps({"address": DEV0[2:].lower()}))
    (keystore.directory / "a.json").write_text(json.dumps({"address": DEV0[2:]}))
    assert keystore.list() == [AccountInfo("a", DEV0, "keystore"), AccountInfo("b", DEV0, "keystore")]
    assert Keystore(keystore.directory / "missing").list() == []


def test_dev_accounts_are_anvils() -> None:
    accounts = dev_accounts()
    assert len(accounts) == 10 and accounts[0] == AccountInfo("dev0", DEV0, "dev")
    assert len({a.address for a in accounts}) == 10
    assert all(a.kind == "dev" and is_checksum_address(a.address) for a in accounts)
    assert dev_account(0).address == DEV0


def test_dev_accounts_only_on_the_local_chain() -> None:
    assert resolve_dev_account("dev0", LOCAL_CHAIN_ID).address == DEV0
    assert resolve_dev_account("dev9", LOCAL_CHAIN_ID).address == dev_account(9).address
    for chain_id in (1, 11155111, 8453):
        with pytest.raises(AccountError, match=f"only on the local chain .id {LOCAL_CHAIN_ID}., not on chain {chain_id}"):
            resolve_dev_account("dev0", chain_id)
    for name in ("dev10", "alice", "dev"):
        with pytest.raises(AccountError, match="is not a dev account"):
            resolve_dev_account(name, LOCAL_CHAIN_ID)


def test_unknown_account_is_refused_before_any_password_is_asked(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from exchange.cli import options

    asked: list[str] = []
    monkeypatch.setattr(options, "read_password", lambda prompt, confirm=False: asked.append(prompt) or "pw")
    with pytest.raises(AccountError, match="No account named 'nobody'"):
        options.unlock(tmp_path, "nobody", 1)
    assert asked == []
