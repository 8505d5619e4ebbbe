"""Accounts: encrypted keystores (Web3 Secret Storage v3) and the local chain's dev accounts.

Private keys are only ever held in memory, never printed or logged; a keystore file is
written atomically with owner-only permissions.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_hex, to_checksum_address

from exchange.chain.anvil import DEV_ACCOUNT_COUNT, DEV_MNEMONIC, LOCAL_CHAIN_ID
from exchange.errors import AccountError

Account.enable_unaudited_hdwallet_features()

PASSWORD_ENV = "COVE_PASSWORD"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DEV = re.compile(r"^dev([0-9])$")


@dataclass(frozen=True)
class AccountInfo:
    name: str
    address: str
    kind: str  # "keystore" or "dev"


def dev_account(index: int) -> LocalAccount:
    """anvil's funded development account `index` (public keys; local chain only)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


class Keystore:
    """Encrypted keystores in one directory, one `<name>.json` file each."""

    def __init__(self, directory: Path):
        self.directory = directory

    def path(self, name: str) -> Path:
        if not _NAME.match(name) or _DEV.match(name):
            raise AccountError(
                f"'{name}' is not a usable account name; use letters, digits, '.', '_' or '-' "
                "(names dev0 to dev9 are reserved for the local chain's dev accounts)."
            )
        return self.directory / f"{name}.json"

    def create(self, name: str, password: str) -> AccountInfo:
        """A new random account, stored encrypted under `name`."""
        return self._store(name, Account.create(), password)

    def import_key(self, name: str, private_key: str, password: str) -> AccountInfo:
        """Stores an existing private key (hex) encrypted under `name`."""
        key = private_key.strip()
        if not is_hex(key) or len(key.removeprefix("0x")) != 64:
            raise AccountError("That is not a private key: expected 64 hexadecimal characters.")
        try:
            account = Account.from_key(key)
        except (ValueError, TypeError):
            raise AccountError("That private key is not valid for secp256k1.") from None
        return self._store(name, account, password)

    def list(self) -> list[AccountInfo]:
        accounts = []
        for file in sorted(self.directory.glob("*.json")):
            try:
                address = to_checksum_address("0x" + json.loads(file.read_text())["address"].removeprefix("0x"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a keystore; ignore rather than fail the listing
            accounts.append(AccountInfo(file.stem, address, "keystore"))
        return accounts

    def existing(self, name: str) -> Path:
        """The keystore file of `name`, or AccountError when there is none."""
        file = self.path(name)
        if not file.exists():
            raise AccountError(
                f"No account named '{name}'; see `cove account list` or create one with `cove account new`."
            )
        return file

    def available(self, name: str) -> Path:
        """The file a new account `name` would get, or AccountError when the name is taken."""
        file = self.path(name)
        if file.exists():
            raise AccountError(f"An account named '{name}' already exists; choose another name.")
        return file

    def unlock(self, name: str, password: str) -> LocalAccount:
        """The account stored under `name`, decrypted with `password`."""
        file = self.existing(name)
        try:
            key = Account.decrypt(json.loads(file.read_text()), password)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            if isinstance(error, ValueError) and "MAC mismatch" in str(error):
                raise AccountError(f"Wrong password for account '{name}'; try again.") from None
            raise AccountError(f"The keystore file {file} is damaged; restore it from a backup.") from None
        return Account.from_key(key)

    def _store(self, name: str, account: LocalAccount, password: str) -> AccountInfo:
        file = self.available(name)
        if not password:
            raise AccountError("The password must not be empty.")
        encrypted = Account.encrypt(account.key, password)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as handle:
            json.dump(encrypted, handle)
        os.replace(tmp, file)
        return AccountInfo(name, account.address, "keystore")


def is_dev_account_name(name: str) -> bool:
    return _DEV.match(name) is not None


def resolve_dev_account(name: str, chain_id: int) -> LocalAccount:
    """The dev account called `name` ("dev0".."dev9"), only on the local chain."""
    match = _DEV.match(name)
    if match is None or int(match.group(1)) >= DEV_ACCOUNT_COUNT:
        raise AccountError(f"'{name}' is not a dev account; dev accounts are dev0 to dev9.")
    if chain_id != LOCAL_CHAIN_ID:
        raise AccountError(
            f"Dev accounts exist only on the local chain (id {LOCAL_CHAIN_ID}), not on chain {chain_id}; "
            "use a keystore account."
        )
    return dev_account(int(match.group(1)))


def dev_accounts() -> list[AccountInfo]:
    return [AccountInfo(f"dev{i}", dev_account(i).address, "dev") for i in range(DEV_ACCOUNT_COUNT)]
