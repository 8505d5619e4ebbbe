"""Many independent transactions from one account, pipelined: a few round trips for the lot.

`ChainSession.transact` makes about eight JSON-RPC calls per transaction (estimate, fees,
nonce, send, receipt) and waits for each receipt before the next, which caps a client at a
few dozen transactions a second whatever the node. `transact_batch` does the same work for
n transactions in five JSON-RPC batches (see the function), numbering the nonces itself.

It is for transactions that do not depend on one another (buying credits of several
datasets once the allowance covers them all; a runner completing several jobs): each gas
limit is estimated against the state before the batch. Nothing is sent unless every one of
them would succeed now; a transaction the node then refuses or that fails once mined is
reported in one sentence that says which one and that the others stand.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hexbytes import HexBytes
from web3._utils.method_formatters import receipt_formatter
from web3.contract.contract import ContractFunction
from web3.datastructures import AttributeDict
from web3.types import TxReceipt

from exchange.chain.rpc_errors import chain_error
from exchange.errors import ChainError

if TYPE_CHECKING:
    from exchange.chain.session import ChainSession

# Providers cap a JSON-RPC batch (Alchemy and Infura at 100 to 1,000 calls); stay below.
MAX_BATCH = 100
# Estimates are taken against the state before the batch; earlier transactions of the batch
# may make later ones dearer (a first write to a slot costs 20k more), so leave room.
GAS_HEADROOM = 1.25
GAS_SLACK = 25_000
# Receipts are polled after 5 ms, then twice as long each time up to 1 s: a local chain
# mines within milliseconds, a public one in seconds, where fast polls only cost the RPC.
RECEIPT_POLL_S = (0.005, 1.0)


def transact_batch(session: ChainSession, functions: Sequence[ContractFunction]) -> list[TxReceipt]:
    """Signs and sends `functions` as consecutive transactions of the session's account and
    returns their receipts, in order, once all are mined and succeeded.

    1. `eth_estimateGas` of each (a revert is decoded, per transaction, before anything is
       sent), the pending nonce, the latest block and the priority fee, in one batch per
       MAX_BATCH calls;
    2. every transaction built and signed here, nonces counted up from the pending one;
    3. one batch of `eth_sendRawTransaction` per MAX_BATCH transactions;
    4. batches of `eth_getTransactionReceipt` until every receipt is in.
    """
    if not functions:
        return []
    sender = session.sender
    drafts = [_draft(session, sender, function) for function in functions]
    gas, nonce, base_fee, tip = _estimates(session, drafts, sender)
    txs = [
        {
            **draft,
            "gas": int(limit * GAS_HEADROOM) + GAS_SLACK,
            "nonce": nonce + index,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
        }
        for index, (draft, limit) in enumerate(zip(drafts, gas))
    ]
    signed = [bytes(session.account.sign_transaction(tx).raw_transaction) for tx in txs]  # type: ignore[union-attr]
    hashes = _send_all(session, signed)
    receipts = _receipts(session, hashes)
    for index, receipt in enumerate(receipts):
        if receipt["status"] != 1:
            # Each passed its estimate before the batch, so earlier ones made it fail, maybe in
            # its own block: replay it after that block. With its gas limit, to tell out-of-gas apart.
            failure = session.mined_failure(txs[index], receipt, receipt["blockNumber"])
            raise type(failure)(
                f"Transaction {index + 1} of {len(receipts)} failed: {failure} The others were mined and stand."
            )
    return receipts


def calldata(function: ContractFunction) -> str:
    """`function`'s ABI-encoded call, as web3 encodes it. web3's `build_transaction` and
    `call` look the function up in the contract's whole ABI (and validate that ABI) again
    for every transaction: a millisecond or more each with Cove's ABI."""
    return str(function._encode_transaction_data())


def _draft(session: ChainSession, sender: str, function: ContractFunction) -> dict[str, Any]:
    # Built here, not by web3, which would fetch gas, nonce and fees one call at a time: they
    # are set once the batch's estimates are in. Cove's batches send no ether.
    return {"from": sender, "to": function.address, "data": calldata(function), "value": 0, "chainId": session.chain_id}


def _estimates(session: ChainSession, drafts: list[dict[str, Any]], sender: str) -> tuple[list[int], int, int, int]:
    # Raw JSON-RPC, as the sends and receipts below: web3's request formatters cost more
    # than the node's answer for a call this simple.
    calls = [{k: draft[k] for k in ("from", "to", "data")} for draft in drafts]  # value: always 0
    requests = [("eth_estimateGas", [call]) for call in calls] + [
        ("eth_getTransactionCount", [sender, "pending"]),
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_maxPriorityFeePerGas", []),
    ]
    provider, results = session.w3.provider, []
    for start in range(0, len(requests), MAX_BATCH):
        try:
            responses = provider.make_batch_request(requests[start : start + MAX_BATCH])  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - no answer: find out below whether a call would fail
            responses = None
        if not isinstance(responses, list) or any("error" in response for response in responses):
            raise _first_failure(session, calls)  # one by one, to say which
        results += [response["result"] for response in responses]
    *gas, nonce, block, tip = results
    return [int(g, 16) for g in gas], int(nonce, 16), int(block["baseFeePerGas"], 16), int(tip, 16)


def _first_failure(session: ChainSession, calls: list[dict[str, Any]]) -> ChainError:
    for index, call in enumerate(calls):
        replayed = session.revert_of(call)
        if replayed is not None:
            return type(replayed)(f"Transaction {index + 1} of {len(calls)} would fail, so none was sent: {replayed}")
    return ChainError("The node did not answer the batch of gas estimates; nothing was sent, so try again.")


def _send_all(session: ChainSession, signed: list[bytes]) -> list[str]:
    provider = session.w3.provider
    hashes: list[str] = []
    for start in range(0, len(signed), MAX_BATCH):
        chunk = signed[start : start + MAX_BATCH]
        requests = [("eth_sendRawTransaction", [HexBytes(raw).to_0x_hex()]) for raw in chunk]
        responses = provider.make_batch_request(requests)  # type: ignore[attr-defined]
        if not isinstance(responses, list):  # the node refused the batch as a whole
            raise chain_error(responses, "the batch of transactions")
        for offset, response in enumerate(responses):
            if "error" in response:
                sent = start + offset
                raise ChainError(
                    f"The node refused transaction {sent + 1} of {len(signed)} ({chain_error(response, 'it')}); "
                    f"the {sent} before it were sent and stand, the rest were not mined: send them again."
                )
            hashes.append(str(response["result"]))
    return hashes


def _receipts(session: ChainSession, hashes: list[str]) -> list[TxReceipt]:
    from exchange.chain.session import RECEIPT_TIMEOUT_S

    w3 = session.w3
    found: dict[str, TxReceipt] = {}
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    pause, longest = RECEIPT_POLL_S
    while True:
        waiting = [h for h in hashes if h not in found]
        for start in range(0, len(waiting), MAX_BATCH):
            chunk = waiting[start : start + MAX_BATCH]
            requests = [("eth_getTransactionReceipt", [h]) for h in chunk]
            responses = w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
            if not isinstance(responses, list):
                raise chain_error(responses, "reading the receipts")
            for tx_hash, response in zip(chunk, responses):
                if response.get("result"):
                    found[tx_hash] = _formatted(response["result"])
        if len(found) == len(hashes):
            return [found[h] for h in hashes]
        if time.monotonic() > deadline:
            raise ChainError(
                f"{len(hashes) - len(found)} of {len(hashes)} transactions were not mined within {RECEIPT_TIMEOUT_S} s; "
                "they may still be, so check them before sending them again."
            )
        time.sleep(pause)
        pause = min(2 * pause, longest)


def _formatted(raw: dict[str, Any]) -> TxReceipt:
    """A raw receipt as `eth.get_transaction_receipt` returns it (ints, HexBytes, attribute access)."""
    return AttributeDict.recursive(receipt_formatter(raw))  # type: ignore[return-value]
