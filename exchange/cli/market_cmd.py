"""`cove faucet`, `cove buy`, `cove balance`."""

from __future__ import annotations

import typer

from exchange.cli.options import chain_command, AccountOption, HomeOption, JsonOption, RpcOption, open_client
from exchange.cli.output import console, fields, print_json, success, table
from exchange.errors import InputError

# exchange.market and web3 are imported by each command when it runs (a second of imports).


@chain_command
def faucet(
    amount: str = typer.Argument("1000", help="How many test tokens to mint (at most 10000)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Mint test payment tokens (tUSD) to your account on the local chain."""
    from exchange.market import mint_test_tokens

    client = open_client(home, rpc, account)
    tx_hash, _ = mint_test_tokens(client, amount)
    if json:
        print_json({"account": client.session.sender, "amount": amount, "tx_hash": tx_hash})
    else:
        success(f"minted {amount} tUSD to {client.session.sender}")


@chain_command
def buy(
    dataset_ids: list[int] = typer.Argument(..., help="Dataset id (several: one purchase each, sent as one pipelined batch)."),
    credits: int = typer.Option(1, "--credits", "-n", help="How many job credits to buy of each."),
    approve: bool = typer.Option(True, "--approve/--no-approve", help="Approve the exact cost if needed (or use an existing allowance only)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Buy job credits of one dataset, or of several in one batch, at their policies' prices."""
    from exchange.market import buy_credits, buy_credits_batch

    client = open_client(home, rpc, account)
    if len(dataset_ids) > 1:
        if not approve:
            raise InputError("A batch of purchases approves its exact total; leave out --no-approve or buy one at a time.")
        with console.status(f"buying {credits} credit(s) of each of {len(dataset_ids)} datasets..."):
            batch = buy_credits_batch(client, [(dataset_id, credits) for dataset_id in dataset_ids])
        if json:
            print_json(batch)
            return
        for purchase in batch.purchases:
            _bought(purchase)
        return
    dataset_id = dataset_ids[0]
    with console.status(f"buying {credits} credit(s) of dataset #{dataset_id}..."):
        purchase = buy_credits(client, dataset_id, credits, approve=approve)
    if json:
        print_json(purchase)
    else:
        _bought(purchase)


def _bought(purchase) -> None:  # type: ignore[no-untyped-def]
    cost = "free" if purchase.currency == "free" else f"{purchase.cost} {purchase.currency}"
    success(f"bought {purchase.credits} credit(s) of dataset #{purchase.dataset_id} for {cost} "
            f"({purchase.method}, gas {sum(purchase.gas_used):,})")  # fmt: skip


@chain_command
def balance(
    address: str | None = typer.Argument(None, help="Address to look at (default: your account)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Show ETH, payment-token and credit balances."""
    from web3 import Web3

    from exchange.market import balances

    client = open_client(home, rpc, account, needs_account=address is None)
    if address is not None and not Web3.is_address(address):
        raise InputError(f"{address!r} is not an address; use 0x followed by 40 hexadecimal characters.")
    who = Web3.to_checksum_address(address) if address else client.session.sender
    result = balances(client, who)
    if json:
        print_json(result)
        return
    pairs = [("address", result.address), ("ETH", f"{result.eth:.6f}")]
    if result.payment_symbol:
        pairs.append((result.payment_symbol, f"{result.payment_balance:f}"))
    console.print(fields("Balances", pairs))
    console.print(table("Job credits", ["dataset", "credits"], [[c.dataset_id, f"{c.credits:f}"] for c in result.credits])
                  if result.credits else "no job credits yet")  # fmt: skip

