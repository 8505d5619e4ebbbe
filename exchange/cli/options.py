"""Options shared by many commands, and how they resolve to a chain, an account and a client."""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.errors import AccountError
from exchange.paths import HomeLayout, cove_home

if TYPE_CHECKING:
    # Imported where used: web3 and eth_account take a second to import, and every command
    # module (so `cove --help`) imports this one.
    from eth_account.signers.local import LocalAccount

    from exchange.client import CoveClient
    from exchange.connection import Target

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="COVE_HOME", help="Cove's state directory (default: ~/.cove).")
]
RpcOption = Annotated[
    str | None,
    typer.Option("--rpc", envvar="COVE_RPC_URL", help="JSON-RPC URL (default: the network's, else the local chain of `cove chain up`)."),
]
HubOption = Annotated[
    str | None,
    typer.Option("--hub", envvar="COVE_HUB", help="Address of the Cove hub (default: the network's, else the one `cove deploy` recorded)."),
]
NetworkOption = Annotated[
    str | None,
    typer.Option("--network", envvar="COVE_NETWORK", help="A named network: its RPC URL, hub and gateways (see `cove network`)."),
]
GatewayOption = Annotated[
    list[str] | None,
    typer.Option("--gateway", help="IPFS gateway to fetch content from when the dataset's endpoint cannot serve it (repeatable)."),
]
AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account", "-a", envvar="COVE_ACCOUNT",
        help="Keystore account name, or dev0..dev9 on the local chain (default: dev0 on the local chain).",
    ),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@dataclass(frozen=True)
class _Where:
    hub: str | None = None
    network: str | None = None
    gateways: tuple[str, ...] = ()


_WHERE: contextvars.ContextVar[_Where] = contextvars.ContextVar("cove_where", default=_Where())
_WHERE_PARAMETERS = {"hub": HubOption, "network": NetworkOption, "gateway": GatewayOption}


def chain_command(function: Callable[..., Any]) -> Callable[..., Any]:
    """Gives a command the options that say where Cove is (--hub, --network, --gateway).

    Every command that talks to a chain takes them, like a flattened option group: the
    command's own signature stays about its job, and `open_client`/`resolve_rpc` read them.
    """
    signature = inspect.signature(function, eval_str=True)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
             for name, annotation in _WHERE_PARAMETERS.items()]  # fmt: skip

    @functools.wraps(function)
    def command(*args: Any, hub: str | None = None, network: str | None = None,
                gateway: list[str] | None = None, **kwargs: Any) -> Any:  # fmt: skip
        token = _WHERE.set(_Where(hub, network, tuple(gateway or ())))
        try:
            return function(*args, **kwargs)
        finally:
            _WHERE.reset(token)

    command.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {name: p.annotation for name, p in signature.parameters.items()} | _WHERE_PARAMETERS
    return command


def target(home: Path | None, rpc: str | None) -> Target:
    """Where this command's chain, hub and gateways are (options, environment, network, local chain)."""
    from exchange.connection import resolve_target

    where = _WHERE.get()
    return resolve_target(layout(home), rpc=rpc, hub=where.hub, network=where.network, gateways=where.gateways)


def layout(home: Path | None) -> HomeLayout:
    return HomeLayout(cove_home(home))


def resolve_rpc(home: Path | None, rpc: str | None) -> str:
    """--rpc, else the network's, else the running local chain."""
    return target(home, rpc).rpc


def read_password(prompt: str, confirm: bool = False) -> str:
    """$COVE_PASSWORD, else a hidden prompt (only when a person is at the terminal)."""
    from exchange.accounts import PASSWORD_ENV

    if (password := os.environ.get(PASSWORD_ENV)) is not None:
        return password
    if not sys.stdin.isatty():
        raise AccountError(f"A password is needed: set {PASSWORD_ENV} or run the command in a terminal.")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def unlock(home: Path | None, name: str, chain_id: int) -> LocalAccount:
    from exchange.accounts import Keystore, is_dev_account_name, resolve_dev_account

    if is_dev_account_name(name):
        return resolve_dev_account(name, chain_id)
    keystore = Keystore(layout(home).keystores)
    keystore.existing(name)  # a typo is reported before any password is asked
    return keystore.unlock(name, read_password(f"Password for '{name}'"))


def open_client(home: Path | None, rpc: str | None, account: str | None, needs_account: bool = True) -> CoveClient:
    """A connected client; the account defaults to dev0 on the local chain."""
    from exchange.client import CoveClient

    client = CoveClient.for_target(target(home, rpc), None, home)
    if account is None and client.session.chain_id == LOCAL_CHAIN_ID:
        account = "dev0"
    if account is not None:
        client.session.account = unlock(home, account, client.session.chain_id)
    elif needs_account:
        raise AccountError("This needs an account: pass --account NAME (see `cove account list`).")
    return client
