"""Options shared by many commands, and how they resolve to a chain, an account and a client."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount

from exchange.accounts import PASSWORD_ENV, Keystore, is_dev_account_name, resolve_dev_account
from exchange.chain.anvil import LOCAL_CHAIN_ID, LocalChain
from exchange.client import CoveClient
from exchange.errors import AccountError, ChainError
from exchange.paths import HomeLayout, cove_home

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="COVE_HOME", help="Cove's state directory [default: ~/.cove].")
]
RpcOption = Annotated[
    str | None,
    typer.Option("--rpc", envvar="COVE_RPC_URL", help="JSON-RPC URL [default: the local chain of `cove chain up`]."),
]
AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account", "-a", envvar="COVE_ACCOUNT",
        help="Keystore account name, or dev0..dev9 on the local chain [default: dev0 on the local chain].",
    ),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def layout(home: Path | None) -> HomeLayout:
    return HomeLayout(cove_home(home))


def resolve_rpc(home: Path | None, rpc: str | None) -> str:
    """--rpc, else $COVE_RPC_URL, else the running local chain."""
    if rpc:
        return rpc
    info = LocalChain(layout(home).chain).running()
    if info is None:
        raise ChainError("No chain to talk to: start the local one with `cove chain up` or pass --rpc URL.")
    return info.rpc_url


def read_password(prompt: str, confirm: bool = False) -> str:
    """$COVE_PASSWORD, else a hidden prompt (only when a person is at the terminal)."""
    if (password := os.environ.get(PASSWORD_ENV)) is not None:
        return password
    if not sys.stdin.isatty():
        raise AccountError(f"A password is needed: set {PASSWORD_ENV} or run the command in a terminal.")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def unlock(home: Path | None, name: str, chain_id: int) -> LocalAccount:
    if is_dev_account_name(name):
        return resolve_dev_account(name, chain_id)
    keystore = Keystore(layout(home).keystores)
    keystore.existing(name)  # a typo is reported before any password is asked
    return keystore.unlock(name, read_password(f"Password for '{name}'"))


def open_client(home: Path | None, rpc: str | None, account: str | None, needs_account: bool = True) -> CoveClient:
    """A connected client; the account defaults to dev0 on the local chain."""
    client = CoveClient.open(resolve_rpc(home, rpc), None, home)
    if account is None and client.session.chain_id == LOCAL_CHAIN_ID:
        account = "dev0"
    if account is not None:
        client.session.account = unlock(home, account, client.session.chain_id)
    elif needs_account:
        raise AccountError("This needs an account: pass --account NAME (see `cove account list`).")
    return client
