"""Two money and time defects, each shown failing without the fix: a policy that switches its
payment token between a buyer's quote and purchase (keeping the price's raw units), and a
permit deadline taken from this machine's clock on a chain whose clock was moved ahead.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account.messages import encode_typed_data

from conftest import PATIENTS_SCHEMA, make_table
from exchange import market
from exchange.catalog import policy_of
from exchange.client import CoveClient
from exchange.errors import TransactionReverted
from exchange.market import buy_credits, execute_purchase, quote_purchase
from exchange.policy import parse_terms
from exchange.policy_update import set_policy
from exchange.publish import publish_dataset

pytestmark = pytest.mark.chain

# 1e10 raw units: 0.00000001 of the 18-decimals tUSD, but 10,000 of a 6-decimals token.
PRICE_UNITS = 10**10


def six_decimals_token(owner: CoveClient) -> str:
    address, _ = owner.session.deploy("TestPaymentToken", "Cove Test USDC", "tUSDC", 6)
    return address


def publish_priced(owner: CoveClient, folder: Path, token: str, price: str) -> int:
    path = folder / "patients.csv"
    make_table(seed=3).to_csv(path, index=False)
    terms = parse_terms(price=price, payment_token=token, budget="4", per_job_cap="2")
    return publish_dataset(owner, path, name="patients", terms=terms, schema=PATIENTS_SCHEMA).dataset_id


def switch_token(owner: CoveClient, dataset_id: int, token: str) -> None:
    """The owner moves the policy to `token`, keeping the price's raw units."""
    current, _, struct = policy_of(owner, dataset_id)
    decimals = owner.token_decimals(token)
    same_units = Decimal(int(struct[1])) / 10**decimals
    set_policy(owner, dataset_id, parse_terms(**(current.model_dump() | {"payment_token": token, "price": str(same_units)})))


def test_a_token_switch_after_the_quote_charges_nothing(
    client_for, deployment, tmp_path: Path, cove, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    usdc = six_decimals_token(owner)
    dataset_id = publish_priced(owner, tmp_path, deployment.payment_token, "0.00000001")
    # The buyer holds 10,000 tUSDC and some tUSD, with standing allowances of both for the hub.
    usdc_token, usd_token = buyer.erc20(usdc), buyer.erc20(deployment.payment_token)
    buyer.session.transact(usdc_token.functions.faucet(PRICE_UNITS))
    buyer.session.transact(usd_token.functions.faucet(10**18))
    for token in (usdc_token, usd_token):
        buyer.session.transact(token.functions.approve(buyer.cove.address, 2**256 - 1))

    quote = quote_purchase(buyer, dataset_id, 1)
    assert (quote.symbol, quote.cost, quote.cost_units) == ("tUSD", Decimal("1E-8"), PRICE_UNITS)
    switch_token(owner, dataset_id, usdc)
    assert policy_of(buyer, dataset_id)[0].price == Decimal(10_000)  # 10,000 tUSDC now

    with pytest.raises(TransactionReverted) as refused:
        execute_purchase(buyer, quote)
    assert refused.value.error_name == "PaymentTokenChanged"
    assert f"Dataset #{dataset_id} is now priced in the token {usdc}" in str(refused.value)
    assert buyer.session.call(usdc_token.functions.balanceOf(buyer.session.sender)) == PRICE_UNITS  # untouched

    # The same through `cove buy`: the policy switches between its quote and its transaction.
    switch_token(owner, dataset_id, deployment.payment_token)
    original = market.execute_purchase

    def switched_meanwhile(client: CoveClient, quote: market.PurchaseQuote, approve: bool = True) -> market.Purchase:
        switch_token(owner, dataset_id, usdc)
        return original(client, quote, approve)

    monkeypatch.setattr(market, "execute_purchase", switched_meanwhile)
    bought = cove("buy", str(dataset_id), "-a", "dev1")
    monkeypatch.setattr(market, "execute_purchase", original)
    assert bought.exit_code == 1 and "is now priced in the token" in bought.stderr and "nothing was paid" in bought.stderr
    assert buyer.session.call(usdc_token.functions.balanceOf(buyer.session.sender)) == PRICE_UNITS

    # Control: quoted in tUSDC, knowingly, the purchase goes through at 10,000 tUSDC.
    purchase = buy_credits(buyer, dataset_id, 1)
    assert (purchase.currency, purchase.cost) == ("tUSDC", Decimal(10_000))
    assert buyer.session.call(usdc_token.functions.balanceOf(buyer.session.sender)) == 0


def test_permit_deadlines_follow_the_chain_clock(client_for, deployment, tmp_path: Path, cove) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(2)
    dataset_id = publish_priced(owner, tmp_path, deployment.payment_token, "3")
    owner.session.advance_time(2 * 3600)  # a governance flow moved the local chain ahead
    assert owner.chain_time() > time.time() + 3600
    buyer.session.transact(buyer.erc20(deployment.payment_token).functions.faucet(10 * 10**18))

    # Control: a permit whose deadline comes from this machine's clock has already expired
    # on-chain; the hub ignores it and the purchase fails for want of an allowance.
    quote = quote_purchase(buyer, dataset_id, 1)
    stale = _signed_permit(buyer, deployment.payment_token, quote.cost_units, int(time.time()) + 3600)
    with pytest.raises(TransactionReverted) as expired:
        buyer.session.transact(buyer.cove.functions.buyWithPermit(
            dataset_id, 1, deployment.payment_token, quote.cost_units, [], *stale))  # fmt: skip
    assert expired.value.error_name == "ERC20InsufficientAllowance"

    bought = cove("buy", str(dataset_id), "-a", "dev2", "--json")
    assert bought.exit_code == 0, bought.stderr
    assert bought.json()["method"] == "buyWithPermit"


def _signed_permit(client: CoveClient, token: str, value: int, deadline: int) -> tuple[int, int, bytes, bytes]:
    contract = client.erc20(token)
    _, name, version, chain_id, verifying, _, _ = client.session.call(contract.functions.eip712Domain())
    owner = client.session.sender
    typed = encode_typed_data(full_message={
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying},
        "message": {"owner": owner, "spender": client.cove.address, "value": value,
                    "nonce": client.session.call(contract.functions.nonces(owner)), "deadline": deadline},
    })  # fmt: skip
    signed = client.session.account.sign_message(typed)  # type: ignore[union-attr]
    return deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
