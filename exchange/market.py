"""Buying credits and reading balances.

A purchase takes the fewest transactions that are safe: one when the payment token
supports EIP-2612 permits (approve-by-signature for exactly the cost) or an allowance
already covers it, otherwise an exact `approve` and then `buy` (never an unlimited
approval). Every refusal the contract would make is checked first and explained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from eth_account.messages import encode_typed_data
from web3.contract import Contract
from web3.exceptions import MismatchedABI
from web3.types import TxReceipt

from exchange.catalog import policy_of
from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.client import CoveClient
from exchange.errors import ChainError, CoveError, InputError, TransactionReverted
from exchange.merkle import MerkleTree, address_leaf
from exchange.policy import ZERO32, PolicyTerms
from exchange.units import CREDIT, scaled

_PERMIT_TTL_S = 3600
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class Purchase:
    dataset_id: int
    credits: int
    cost: Decimal
    currency: str
    tx_hashes: list[str] = field(default_factory=list)
    gas_used: list[int] = field(default_factory=list)
    method: str = "buy"  # "buy", "approve+buy" or "buyWithPermit"


@dataclass
class BatchPurchase:
    purchases: list[Purchase]  # in the order asked
    approvals: list[str]  # the exact approvals sent first (transaction hashes), one per token at most


@dataclass(frozen=True)
class PurchaseQuote:
    """What a purchase costs now, in which token: the bound the purchase is sent with."""

    dataset_id: int
    credits: int
    payment_token: str | None  # None: free
    cost_units: int  # in the payment token's smallest units
    decimals: int
    symbol: str
    proof: list[bytes]

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_units) / 10**self.decimals


def quote_purchase(client: CoveClient, dataset_id: int, credits: int) -> PurchaseQuote:
    """The price of `credits` credits of `dataset_id` for the session's account, with every
    refusal the contract would make checked first and explained."""
    if credits < 1:
        raise InputError("Buy at least one credit.")
    buyer = client.session.sender
    terms, _, struct = policy_of(client, dataset_id)
    free = int(struct[1]) == 0
    taken = client.session.call(client.cove.functions.freeCreditsTaken(dataset_id, buyer)) if free else 0
    return _checked_quote(client, dataset_id, credits, terms, struct, taken, client.chain_time)


def quote_purchases(client: CoveClient, orders: Sequence[tuple[int, int]]) -> list[PurchaseQuote]:
    """`quote_purchase` of each (dataset id, credits), with the same refusals in the same
    order, but the chain read in two JSON-RPC batches for all the orders (policies, then
    free credits taken) instead of a few round trips each. Besides: the chain's time once if
    a policy expires, a payment token's decimals and symbol once per client, and a dataset
    with an allowlist or model families reads its lists document as `policy_of` does."""
    if any(credits < 1 for _, credits in orders):
        raise InputError("Buy at least one credit.")
    session, cove = client.session, client.cove
    buyer = session.sender
    try:
        policies = session.call_batch([cove.functions.policyOf(dataset_id) for dataset_id, _ in orders])
    except (CoveError, MismatchedABI):  # an id out of range, unknown, ...: quote_purchase says which
        return [quote_purchase(client, dataset_id, credits) for dataset_id, credits in orders]
    structs = [tuple(struct) for struct, _ in policies]
    free = [dataset_id for (dataset_id, _), struct in zip(orders, structs) if int(struct[1]) == 0]
    taken = dict(zip(free, session.call_batch([cove.functions.freeCreditsTaken(i, buyer) for i in free])))
    chain_time = cache(client.chain_time)  # read once, and only if a policy expires
    quotes = []
    for (dataset_id, credits), struct in zip(orders, structs):
        if struct[9] != ZERO32 or struct[10] != ZERO32:  # allowlist or model families: policy_of reads the lists
            terms = policy_of(client, dataset_id)[0]
        else:
            token = None if int(struct[0], 16) == 0 else struct[0]
            terms = PolicyTerms.from_onchain(struct, client.token_decimals(token), None)
        quotes.append(_checked_quote(client, dataset_id, credits, terms, struct, taken.get(dataset_id, 0), chain_time))
    return quotes


def _checked_quote(
    client: CoveClient, dataset_id: int, credits: int, terms: PolicyTerms, struct: tuple[Any, ...],
    taken: int, chain_time: Callable[[], int],
) -> PurchaseQuote:  # fmt: skip
    """The quote for what was read (`taken`: the buyer's free credits of the dataset so far),
    or the refusal the contract would make, in one sentence naming the dataset."""
    if terms.expiry is not None and chain_time() > int(terms.expiry.timestamp()):
        raise InputError(f"Dataset #{dataset_id} stopped selling credits at {terms.expiry:%Y-%m-%d %H:%M UTC}.")
    buyer = client.session.sender
    proof = _allowlist_proof(dataset_id, terms.allowlist, buyer) if terms.allowlist else []
    cost_units = int(struct[1]) * credits
    if cost_units == 0:
        if taken + credits > terms.free_cap:
            raise InputError(
                f"Dataset #{dataset_id} gives at most {terms.free_cap} free credits per address and you "
                f"already took {taken}."
            )
        return PurchaseQuote(dataset_id, credits, None, 0, 0, "free", proof)
    token = terms.payment_token
    return PurchaseQuote(
        dataset_id, credits, token, cost_units, client.token_decimals(token), client.token_symbol(token), proof
    )


def buy_credits(client: CoveClient, dataset_id: int, credits: int, approve: bool = True) -> Purchase:
    """Buys `credits` job credits of `dataset_id` for the session's account, at today's quote."""
    return execute_purchase(client, quote_purchase(client, dataset_id, credits), approve)


def execute_purchase(client: CoveClient, quote: PurchaseQuote, approve: bool = True) -> Purchase:
    """Buys what `quote` priced. The contract is told the quoted token and cost as the most the
    buyer pays, so a policy that changed price or token since the quote is refused on-chain."""
    buyer = client.session.sender
    purchase = Purchase(quote.dataset_id, quote.credits, quote.cost, quote.symbol)
    buy = client.cove.functions.buy(
        quote.dataset_id, quote.credits, quote.payment_token or ZERO_ADDRESS, quote.cost_units, quote.proof
    )
    if quote.payment_token is None:
        return _record(purchase, client.session.transact(buy), "buy")

    token = client.erc20(quote.payment_token)
    balance = client.session.call(token.functions.balanceOf(buyer))
    if balance < quote.cost_units:
        raise InputError(
            f"{quote.credits} credit(s) cost {quote.cost} {quote.symbol} but {buyer} holds "
            f"{Decimal(balance) / 10**quote.decimals} {quote.symbol}; get more first (on the local chain: `cove faucet`)."
        )
    allowance = client.session.call(token.functions.allowance(buyer, client.cove.address))
    if allowance >= quote.cost_units:
        return _record(purchase, client.session.transact(buy), "buy")
    if not approve:
        raise InputError(
            f"The allowance for Cove is {Decimal(allowance) / 10**quote.decimals} {quote.symbol} but the purchase "
            f"costs {quote.cost} {quote.symbol}; approve it or leave out --no-approve."
        )
    permitted = _buy_with_permit(client, token, quote)
    if permitted is not None:
        return _record(purchase, permitted, "buyWithPermit")
    _record(purchase, client.session.transact(token.functions.approve(client.cove.address, quote.cost_units)), "approve")
    return _record(purchase, client.session.transact(buy), "approve+buy")


def buy_credits_batch(client: CoveClient, orders: Sequence[tuple[int, int]]) -> BatchPurchase:
    """Buys (dataset id, credits) for each order, pipelined: one exact `approve` per payment
    token whose allowance does not cover the batch's total, then every `buy` in one batch of
    transactions (exchange.chain.batch). Every order is quoted and checked before anything
    is sent; a refused order sends nothing."""
    ids = [dataset_id for dataset_id, _ in orders]
    if len(set(ids)) != len(ids):
        raise InputError("Name each dataset once in a batch of purchases; add up the credits instead.")
    quotes = quote_purchases(client, orders)
    buyer = client.session.sender
    totals: dict[str, int] = {}
    for quote in quotes:
        if quote.payment_token is not None:
            totals[quote.payment_token] = totals.get(quote.payment_token, 0) + quote.cost_units
    tokens = [client.erc20(token_address) for token_address in totals]
    reads = [(t.functions.balanceOf(buyer), t.functions.allowance(buyer, client.cove.address)) for t in tokens]
    held = client.session.call_batch([function for pair in reads for function in pair])
    approvals = []
    for (token_address, total), token, balance, allowance in zip(totals.items(), tokens, held[::2], held[1::2]):
        if balance < total:
            decimals, symbol = client.token_decimals(token_address), client.token_symbol(token_address)
            raise InputError(
                f"The batch costs {Decimal(total) / 10**decimals} {symbol} but {buyer} holds "
                f"{Decimal(balance) / 10**decimals} {symbol}; get more first (on the local chain: `cove faucet`)."
            )
        if allowance < total:
            approvals.append(token.functions.approve(client.cove.address, total))
    approved = client.session.transact_batch(approvals)
    buys = [
        client.cove.functions.buy(q.dataset_id, q.credits, q.payment_token or ZERO_ADDRESS, q.cost_units, q.proof)
        for q in quotes
    ]
    receipts = client.session.transact_batch(buys)
    purchases = [
        _record(Purchase(q.dataset_id, q.credits, q.cost, q.symbol), receipt, "buy")
        for q, receipt in zip(quotes, receipts)
    ]
    return BatchPurchase(purchases, [r["transactionHash"].to_0x_hex() for r in approved])


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


def _buy_with_permit(client: CoveClient, token: Contract, quote: PurchaseQuote) -> TxReceipt | None:
    """Approve-by-signature and buy in one transaction; None if the token has no permits.

    The permit's deadline is counted from the chain's clock, not this machine's: a local
    chain moved ahead (voting periods, timelock delays) would otherwise see it as expired.
    """
    session = client.session
    owner = session.sender
    try:
        _, name, version, chain_id, verifying_contract, _, _ = session.call(token.functions.eip712Domain())
        nonce = session.call(token.functions.nonces(owner))
    except TransactionReverted:
        return None
    deadline = client.chain_time() + _PERMIT_TTL_S
    cost = quote.cost_units
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
        quote.dataset_id, quote.credits, quote.payment_token, cost, quote.proof,
        deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"),
    )  # fmt: skip
    return session.transact(function)


def mint_test_tokens(client: CoveClient, amount: str | float) -> tuple[str, Decimal]:
    """Mints `amount` whole test tokens (the local chain's tUSD) to the session's account;
    returns the transaction hash and the new balance. Refused off the local chain."""
    token_address = client.deployment.payment_token
    if client.session.chain_id != LOCAL_CHAIN_ID or token_address is None:
        raise ChainError(
            "There is no test token off the local chain (and no faucet): pay with an ERC-20 you hold, "
            "and publish priced datasets in one with `cove publish … --price 5 --token 0x…`."
        )
    decimals = client.token_decimals(token_address)
    try:
        units = scaled(amount, 10**decimals, "amount")
    except ValueError as error:
        raise InputError(f"The {error}.") from None
    if units <= 0:
        raise InputError("The amount must be greater than 0.")
    if units > 10_000 * 10**decimals:  # the token's own limit; larger numbers would not even encode
        raise InputError("The faucet gives at most 10000 tokens per call.")
    token = client.erc20(token_address)
    receipt = client.session.transact(token.functions.faucet(units))
    balance = Decimal(client.session.call(token.functions.balanceOf(client.session.sender))) / 10**decimals
    return receipt["transactionHash"].to_0x_hex(), balance


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
    entries = client.index.datasets()
    held = session.call_batch([client.datatoken(entry["datatoken"]).functions.balanceOf(address) for entry in entries])
    credits = [CreditBalance(entry["id"], Decimal(units) / CREDIT) for entry, units in zip(entries, held) if units]
    return Balances(address, eth, token_address, symbol, payment, credits)
