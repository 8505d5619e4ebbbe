"""Pipelined transactions (exchange.chain.batch) and batched purchases, on a real anvil."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exchange.errors import InputError, TransactionReverted
from exchange.market import buy_credits_batch, mint_test_tokens
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


def _publish(owner: Any, tmp_path: Path, count: int, price: str = "2") -> list[int]:
    ids = []
    for seed in range(count):
        path = tmp_path / f"d{seed}.csv"
        make_table(rows=40, seed=seed).to_csv(path, index=False)
        terms = parse_terms(price=price, payment_token=owner.deployment.payment_token, budget="4", per_job_cap="2")
        ids.append(publish_dataset(owner, path, name=f"d{seed}", terms=terms, schema=PATIENTS_SCHEMA).dataset_id)
    return ids


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
