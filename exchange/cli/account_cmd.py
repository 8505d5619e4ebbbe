"""`cove account new|import|list`."""

from __future__ import annotations

from pathlib import Path

import typer

from exchange.cli.options import HomeOption, JsonOption, layout, read_password
from exchange.cli.output import console, print_json, success, table
from exchange.errors import AccountError

app = typer.Typer(help="Encrypted keystore accounts.", no_args_is_help=True)


def _keystore(home: Path | None):  # type: ignore[no-untyped-def]
    from exchange.accounts import Keystore  # eth_account: imported when a command runs

    return Keystore(layout(home).keystores)


@app.command()
def new(name: str = typer.Argument(..., help="A name for the account."), home: HomeOption = None, json: JsonOption = False) -> None:
    """Create a random account in an encrypted keystore (password from $COVE_PASSWORD or a prompt)."""
    keystore = _keystore(home)
    keystore.available(name)  # refused before any password is asked
    info = keystore.create(name, read_password("New password", confirm=True))
    if json:
        print_json(info)
    else:
        success(f"account '{name}' created: {info.address}")


@app.command("import")
def import_(
    name: str = typer.Argument(..., help="A name for the account."),
    key_file: Path | None = typer.Option(None, "--key-file", help="Read the hex private key from this file instead of a prompt."),
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Import a private key into an encrypted keystore. The key is never echoed or printed."""
    keystore = _keystore(home)
    keystore.available(name)  # refused before any password is asked
    if key_file is not None:
        try:
            key = key_file.read_text()
        except OSError:
            raise AccountError(f"Cannot read the key file {key_file}; check the path.") from None
    else:
        key = typer.prompt("Private key (hex)", hide_input=True)
    info = keystore.import_key(name, key, read_password("New password", confirm=True))
    if json:
        print_json(info)
    else:
        success(f"account '{name}' imported: {info.address}")


@app.command("list")
def list_(
    home: HomeOption = None,
    dev: bool = typer.Option(True, "--dev/--no-dev", help="Include the local chain's dev accounts."),
    json: JsonOption = False,
) -> None:
    """List keystore accounts (and the local chain's dev accounts)."""
    from exchange.accounts import dev_accounts

    accounts = _keystore(home).list() + (dev_accounts() if dev else [])
    if json:
        print_json(accounts)
    else:
        console.print(table("Accounts", ["name", "address", "kind"], [[a.name, a.address, a.kind] for a in accounts],
                            whole={"address"}))
