"""Pipelined transactions (exchange.chain.batch) and batched purchases, on a real anvil."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import InputError, TransactionReverted
from exchange.market import (
    ZERO_ADDRESS,
    buy_credits_batch,
    mint_test_tokens,
    quote_purchase,
    quote_purchases,
)
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from tests.conftest import PATIENTS_SCHEMA, make_table

UNIT = 10**18


def _token(client: Any) -> Any:
    return client.erc20(client.deployment.payment_token)


def _nonce(client: Any) -> int:
    return client.session.w3.eth.get_transaction_count(client.session.sender, "pending")


def test_a_batch_is_mined_in_order_with_consecutive_nonces(client_for) -> None:  # type: ignore[no-untyped-def]
    client = client_for(1)
    token = _token(client)
    start = _nonce(client)
    receipts = client.session.transact_batch([token.functions.faucet(amount * UNIT) for amount in (1, 2, 3, 4)])
    assert [r["status"] for r in receipts] == [1, 1, 1, 1]
    sent = [client.session.w3.eth.get_transaction(r["transactionHash"]) for r in receipts]
    assert [tx["nonce"] for tx in sent] == [start, start + 1, start + 2, start + 3]
    assert client.session.call(token.functions.balanceOf(client.session.sender)) == 10 * UNIT
    assert client.session.transact_batch([]) == []


def test_a_batch_that_would_revert_sends_nothing(client_for) -> None:  # type: ignore[no-untyped-def]
    client = client_for(1)
    token = _token(client)
    start = _nonce(client)
    too_much = token.functions.faucet(10_001 * UNIT)  # over the test token's faucet limit
    with pytest.raises(TransactionReverted, match=r"Transaction 2 of 3 would fail, so none was sent: .*faucet"):
        client.session.transact_batch([token.functions.faucet(UNIT), too_much, token.functions.faucet(UNIT)])
    assert _nonce(client) == start
    assert client.session.call(token.functions.balanceOf(client.session.sender)) == 0


def _publish(owner: Any, tmp_path: Path, count: int, price: str = "2", first_seed: int = 0, **terms: Any) -> list[int]:
    ids = []
    for seed in range(first_seed, first_seed + count):
        path = tmp_path / f"d{seed}.csv"
        make_table(rows=40, seed=seed).to_csv(path, index=False)
        policy = parse_terms(price=price, payment_token=owner.deployment.payment_token, budget="4", per_job_cap="2", **terms)
        ids.append(publish_dataset(owner, path, name=f"d{seed}", terms=policy, schema=PATIENTS_SCHEMA).dataset_id)
    return ids


def test_call_batch_answers_as_call_does(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner = client_for(0)
    (dataset_id,) = _publish(owner, tmp_path, 1)
    token, cove, me = _token(owner), owner.cove, owner.session.sender
    functions = [cove.functions.policyOf(dataset_id), cove.functions.datasetOf(dataset_id), token.functions.symbol(),
                 token.functions.balanceOf(me), cove.functions.ownerOf(dataset_id)]  # fmt: skip
    assert owner.session.call_batch(functions) == [owner.session.call(f) for f in functions]
    assert owner.session.call_batch([]) == []
    with pytest.raises(TransactionReverted) as alone:
        owner.session.call(cove.functions.policyOf(dataset_id + 7))
    with pytest.raises(TransactionReverted) as batched:  # a revert in the batch: call's own sentence
        owner.session.call_batch([token.functions.symbol(), cove.functions.policyOf(dataset_id + 7)])
    assert str(batched.value) == str(alone.value)


def test_batched_quotes_are_single_quotes_and_refuse_alike(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    paid = _publish(owner, tmp_path, 2)
    (free,) = _publish(owner, tmp_path, 1, price="0", first_seed=2, free_cap=2)
    soon = datetime.now(UTC) + timedelta(hours=1)
    (expiring,) = _publish(owner, tmp_path, 1, first_seed=3, expiry=soon)
    (listed,) = _publish(owner, tmp_path, 1, first_seed=4, allowlist=[buyer.session.sender, owner.session.sender])
    orders = [(paid[0], 1), (free, 2), (paid[1], 3), (expiring, 1), (listed, 1)]
    quotes = quote_purchases(buyer, orders)
    assert quotes == [quote_purchase(buyer, *order) for order in orders] and quotes[-1].proof != []

    def refusal(orders: list[tuple[int, int]]) -> str:
        with pytest.raises((InputError, TransactionReverted)) as batched:
            quote_purchases(buyer, orders)
        with pytest.raises(type(batched.value)) as one_by_one:
            for order in orders:
                quote_purchase(buyer, *order)
        assert str(batched.value) == str(one_by_one.value)
        return str(batched.value)

    assert f"Dataset #{free} gives at most 2 free credits" in refusal([(paid[0], 1), (free, 3)])
    assert "There is no dataset #0" in refusal([(paid[0], 1), (0, 1)])
    refusal([(paid[0], 1), (expiring + 9, 1)])  # unknown: the contract's revert, decoded
    buyer.session.advance_time(2 * 3600)
    # The first refusal in order wins, as when quoting one by one.
    assert f"Dataset #{expiring} stopped selling credits" in refusal([(expiring, 1), (free, 3), (0, 1)])
    assert f"Dataset #{free} gives at most" in refusal([(free, 3), (expiring, 1)])


def test_a_transaction_that_fails_once_mined_is_named_with_its_revert(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (free,) = _publish(client_for(0), tmp_path, 1, price="0", free_cap=2)
    buyer = client_for(1)
    buy = buyer.cove.functions.buy(free, 2, ZERO_ADDRESS, 0, [])  # each fits the cap alone, not both
    failed = rf"^Transaction 2 of 2 failed: Dataset #{free} gives at most 2 free credits .* The others were mined and stand"
    with pytest.raises(TransactionReverted, match=failed):
        buyer.session.transact_batch([buy, buy])
    assert buyer.session.call(buyer.cove.functions.freeCreditsTaken(free, buyer.session.sender)) == 2


def test_buying_from_many_datasets_takes_one_exact_approval(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _publish(client_for(0), tmp_path, 3)
    buyer = client_for(1)
    mint_test_tokens(buyer, 100)
    token = _token(buyer)
    batch = buy_credits_batch(buyer, [(ids[0], 1), (ids[1], 2), (ids[2], 3)])
    assert [p.dataset_id for p in batch.purchases] == ids
    assert [p.credits for p in batch.purchases] == [1, 2, 3]
    assert len(batch.approvals) == 1  # the whole batch's cost, exactly, once
    assert buyer.session.call(token.functions.balanceOf(buyer.session.sender)) == (100 - 12) * UNIT
    assert buyer.session.call(token.functions.allowance(buyer.session.sender, buyer.cove.address)) == 0
    for dataset_id, credits in zip(ids, (1, 2, 3)):
        datatoken = buyer.datatoken(buyer.session.call(buyer.cove.functions.datasetOf(dataset_id))[2])
        assert buyer.session.call(datatoken.functions.balanceOf(buyer.session.sender)) == credits * UNIT


def test_a_batch_the_buyer_cannot_pay_for_sends_nothing(client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _publish(client_for(0), tmp_path, 2, price="30")
    buyer = client_for(1)
    mint_test_tokens(buyer, 50)
    start = _nonce(buyer)
    with pytest.raises(InputError, match="The batch costs 60 tUSD but .* holds 50 tUSD"):
        buy_credits_batch(buyer, [(ids[0], 1), (ids[1], 1)])
    with pytest.raises(InputError, match="Name each dataset once"):
        buy_credits_batch(buyer, [(ids[0], 1), (ids[0], 1)])
    assert _nonce(buyer) == start
    # Control: the same buyer can pay for one of them.
    assert buy_credits_batch(buyer, [(ids[0], 1)]).purchases[0].credits == 1


def test_cove_buy_takes_several_datasets(cove, client_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _publish(client_for(0), tmp_path, 2)
    assert cove("faucet", "20", "--account", "dev1").exit_code == 0
    result = cove("buy", str(ids[0]), str(ids[1]), "-n", "2", "--account", "dev1", "--json")
    assert result.exit_code == 0, result.stderr
    batch = result.json()
    assert [p["dataset_id"] for p in batch["purchases"]] == ids and len(batch["approvals"]) == 1
    text = cove("buy", str(ids[0]), str(ids[1]), "--account", "dev1")
    assert text.exit_code == 0 and f"bought 1 credit(s) of dataset #{ids[1]} for 2 tUSD (buy" in text.stdout
    refused = cove("buy", str(ids[0]), str(ids[1]), "--no-approve", "--account", "dev1")
    assert refused.exit_code == 2 and "leave out --no-approve" in refused.stderr
