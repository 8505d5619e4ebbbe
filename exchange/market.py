"""Buying credits and reading balances.

A purchase takes the fewest transactions that are safe: one when the payment token
supports EIP-2612 permits (approve-by-signature for exactly the cost) or an allowance
already covers it, otherwise an exact `approve` and then `buy` (never an unlimited
approval). Every refusal the contract would make is checked first and explained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

from eth_account.messages import encode_typed_data
from web3.contract import Contract
from web3.types import TxReceipt

from exchange.catalog import policy_of
from exchange.client import CoveClient
from exchange.errors import InputError, TransactionReverted
from exchange.merkle import MerkleTree, address_leaf
from exchange.units import CREDIT

_PERMIT_TTL_S = 3600


@dataclass
class Purchase:
    dataset_id: int
    credits: int
    cost: Decimal
    currency: str
    tx_hashes: list[str] = field(default_factory=list)
    gas_used: list[int] = field(default_factory=list)
    method: str = "buy"  # "buy", "approve+buy" or "buyWithPermit"


def buy_credits(client: CoveClient, dataset_id: int, credits: int, approve: bool = True) -> Purchase:
    """Buys `credits` job credits of `dataset_id` for the session's account."""
    if credits < 1:
        raise InputError("Buy at least one credit.")
    buyer = client.session.sender
    terms, _, struct = policy_of(client, dataset_id)
    now = int(client.session.w3.eth.get_block("latest")["timestamp"])
    if terms.expiry is not None and now > int(terms.expiry.timestamp()):
        raise InputError(f"Dataset #{dataset_id} stopped selling credits at {terms.expiry:%Y-%m-%d %H:%M UTC}.")
    proof = _allowlist_proof(dataset_id, terms.allowlist, buyer) if terms.allowlist else []

    price_units = int(struct[1])
    cost_units = price_units * credits
    symbol = client.token_symbol(terms.payment_token) if cost_units else "free"
    decimals = client.token_decimals(terms.payment_token) if cost_units else 0
    purchase = Purchase(dataset_id, credits, Decimal(cost_units) / 10**decimals, symbol)
    buy = client.cove.functions.buy(dataset_id, credits, cost_units, proof)
    if cost_units == 0:
        taken = client.session.call(client.cove.functions.freeCreditsTaken(dataset_id, buyer))
        if taken + credits > terms.free_cap:
            raise InputError(
                f"Dataset #{dataset_id} gives at most {terms.free_cap} free credits per address and you "
                f"already took {taken}."
            )
        return _record(purchase, client.session.transact(buy), "buy")

    token = client.erc20(terms.payment_token)  # type: ignore[arg-type]
    balance = client.session.call(token.functions.balanceOf(buyer))
    if balance < cost_units:
        raise InputError(
            f"{credits} credit(s) cost {purchase.cost} {symbol} but {buyer} holds "
            f"{Decimal(balance) / 10**decimals} {symbol}; get more first (on the local chain: `cove faucet`)."
        )
    allowance = client.session.call(token.functions.allowance(buyer, client.cove.address))
    if allowance >= cost_units:
        return _record(purchase, client.session.transact(buy), "buy")
    if not approve:
        raise InputError(
            f"The allowance for Cove is {Decimal(allowance) / 10**decimals} {symbol} but the purchase costs "
            f"{purchase.cost} {symbol}; approve it or leave out --no-approve."
        )
    permitted = _buy_with_permit(client, token, dataset_id, credits, cost_units, proof)
    if permitted is not None:
        return _record(purchase, permitted, "buyWithPermit")
    _record(purchase, client.session.transact(token.functions.approve(client.cove.address, cost_units)), "approve")
    return _record(purchase, client.session.transact(buy), "approve+buy")


def _record(purchase: Purchase, receipt: TxReceipt, method: str) -> Purchase:
    purchase.tx_hashes.append(receipt["transactionHash"].to_0x_hex())
    purchase.gas_used.append(int(receipt["gasUsed"]))
    purchase.method = method
    return purchase


def _allowlist_proof(dataset_id: int, allowlist: tuple[str, ...], buyer: str) -> list[bytes]:
    proof = MerkleTree([address_leaf(a) for a in allowlist]).proof(address_leaf(buyer))
    if proof is None:
        raise InputError(f"{buyer} is not on the allowlist of dataset #{dataset_id}; ask its owner to add you.")
    return proof


def _buy_with_permit(
    client: CoveClient, token: Contract, dataset_id: int, credits: int, cost: int, proof: list[bytes]
) -> TxReceipt | None:
    """Approve-by-signature and buy in one transaction; None if the token has no permits."""
    session = client.session
    owner = session.sender
    try:
        _, name, version, chain_id, verifying_contract, _, _ = session.call(token.functions.eip712Domain())
        nonce = session.call(token.functions.nonces(owner))
    except TransactionReverted:
        return None
    deadline = int(time.time()) + _PERMIT_TTL_S
    typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying_contract},
            "message": {"owner": owner, "spender": client.cove.address, "value": cost, "nonce": nonce, "deadline": deadline},
        }
    )
    signed = session.account.sign_message(typed)  # type: ignore[union-attr]
    function = client.cove.functions.buyWithPermit(
        dataset_id, credits, cost, proof, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    )
    return session.transact(function)


@dataclass(frozen=True)
class CreditBalance:
    dataset_id: int
    credits: Decimal


@dataclass(frozen=True)
class Balances:
    address: str
    eth: Decimal
    payment_token: str | None
    payment_symbol: str | None
    payment_balance: Decimal | None
    credits: list[CreditBalance]


def balances(client: CoveClient, address: str) -> Balances:
    """ETH, test-payment-token and per-dataset credit balances of `address`."""
    session = client.session
    eth = Decimal(session.w3.eth.get_balance(address)) / 10**18  # type: ignore[arg-type]
    token_address = client.deployment.payment_token
    symbol = payment = None
    if token_address:
        token = client.erc20(token_address)
        symbol = client.token_symbol(token_address)
        payment = Decimal(session.call(token.functions.balanceOf(address))) / 10**client.token_decimals(token_address)
    client.index.sync()
    credits = []
    for entry in client.index.datasets():
        held = session.call(client.datatoken(entry["datatoken"]).functions.balanceOf(address))
        if held:
            credits.append(CreditBalance(entry["id"], Decimal(held) / CREDIT))
    return Balances(address, eth, token_address, symbol, payment, credits)
