"""A connection to one chain, one account and Cove's contracts on it.

Every contract call and transaction goes through `ChainSession`, which turns reverts
into `TransactionReverted` with a readable sentence, connection failures into
`RpcUnreachable` and every other node error into one ChainError sentence, whatever the
node (anvil, Hardhat, Ganache, geth, hosted RPCs; see rpc_errors), so no web3 traceback
reaches a user.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from eth_utils.abi import get_abi_output_types
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.contract.utils import format_contract_call_return_data_curried
from web3.exceptions import BadResponseFormat, ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import RPCEndpoint, TxReceipt

from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.chain.artifacts import load_artifact
from exchange.chain.batch import MAX_BATCH, calldata, transact_batch
from exchange.chain.rpc_errors import chain_error, revert_data
from exchange.errors import (
    AccountError,
    ChainError,
    InputError,
    RpcUnreachable,
    TransactionReverted,
)

RECEIPT_TIMEOUT_S = 120


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A Web3 connected to `rpc_url`, or a ChainError (RpcUnreachable, RpcUnauthorized, ...) with what to do."""
    # web3 checks every call's chainId against the node's, asking the node each time: cache
    # the answer (and nothing else), which halves the round trips of a read.
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout},
        cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")},
    )  # fmt: skip
    w3 = Web3(provider)
    try:
        w3.eth.chain_id  # noqa: B018 - the cheapest call that proves a node answers
    except requests.HTTPError as error:  # a server answered, but refused: say why (API key, rate limit, ...)
        raise chain_error(error) from None
    except Web3RPCError as error:
        raise chain_error(error) from None
    except (requests.RequestException, OSError, ValueError, BadResponseFormat):
        raise RpcUnreachable(
            f"No Ethereum JSON-RPC node answers at {rpc_url}; start the local chain with "
            "`cove chain up` or pass a reachable --rpc URL."
        ) from None
    return w3


@contextmanager
def _decoded_reverts(doing: str = "the request") -> Iterator[None]:
    """Re-raises every node error as a Cove error: reverts as TransactionReverted, decoded
    whatever the node's format, the rest as one ChainError sentence (see rpc_errors)."""
    try:
        yield
    except (ContractLogicError, Web3RPCError, requests.RequestException, BadResponseFormat, TimeExhausted) as error:
        raise chain_error(error, doing) from None


class ChainSession:
    """One chain, optionally one signing account."""

    def __init__(self, w3: Web3, account: LocalAccount | None = None):
        self.w3 = w3
        self.account = account
        self.chain_id = int(w3.eth.chain_id)

    def advance_time(self, seconds: int, blocks: int = 1) -> None:
        """Moves the LOCAL chain's clock forward by `seconds`, then mines `blocks` blocks, so
        voting periods and timelock delays pass in a moment. Refused on any other chain."""
        if self.chain_id != LOCAL_CHAIN_ID:
            raise InputError(
                "Only the local chain's time can be moved; on this chain, wait for the voting period or the "
                "timelock delay to pass."
            )
        if seconds:
            self._dev_request("evm_increaseTime", [int(seconds)])
        for _ in range(blocks):  # evm_mine: anvil, Hardhat and Ganache all answer it
            self._dev_request("evm_mine", [])

    def _dev_request(self, method: str, params: list[Any]) -> None:
        with _decoded_reverts():
            response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise chain_error(response)

    def contract(self, artifact: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(artifact).abi)

    @property
    def sender(self) -> str:
        if self.account is None:
            raise AccountError("This needs an account; pass --account NAME (see `cove account list`).")
        return str(self.account.address)

    def call(self, function: ContractFunction, block: int | str = "latest") -> Any:
        """Calls a view function; reverts become TransactionReverted."""
        with _decoded_reverts():
            return function.call({"from": self.account.address} if self.account else {}, block)

    def call_batch(self, functions: Sequence[ContractFunction]) -> list[Any]:
        """`call` of each view function, in one JSON-RPC batch per MAX_BATCH calls instead of
        a round trip (and web3's per-call ABI lookups) each. A call that fails in the batch is
        made again alone, so that it raises just what `call` raises."""
        origin = {"from": self.account.address} if self.account else {}
        results: list[Any] = []
        for start in range(0, len(functions), MAX_BATCH):
            chunk = functions[start : start + MAX_BATCH]
            requests = [("eth_call", [{**origin, "to": f.address, "data": calldata(f)}, "latest"]) for f in chunk]
            with _decoded_reverts():
                responses = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
            if not isinstance(responses, list):  # the node refused the batch as a whole
                raise chain_error(responses, "the batch of calls")
            for function, response in zip(chunk, responses):
                failed = "error" in response
                results.append(self.call(function) if failed else self._decoded(function, response["result"]))
        return results

    def _decoded(self, function: ContractFunction, result: str) -> Any:
        """An eth_call's result decoded just as `ContractFunction.call` decodes it."""
        with _decoded_reverts():
            return format_contract_call_return_data_curried(
                self.w3, False, function.abi, function.abi_element_identifier, (),
                get_abi_output_types(function.abi), HexBytes(result),
            )  # fmt: skip

    def simulate(self, function: ContractFunction) -> Any:
        """Runs `function` as the sender without sending it: raises what it would revert with."""
        with _decoded_reverts():
            return function.call({"from": self.sender})

    def transact(self, function: ContractFunction, value: int = 0) -> TxReceipt:
        """Signs and sends `function` from the session's account and waits for success."""
        sender = self.sender
        with _decoded_reverts():
            tx = function.build_transaction(
                {
                    "from": sender,
                    "value": value,
                    "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
                    "chainId": self.chain_id,
                }
            )
            return self._send(tx)

    def transact_batch(self, functions: Sequence[ContractFunction]) -> list[TxReceipt]:
        """Sends independent transactions pipelined, in a few round trips (exchange.chain.batch)."""
        return transact_batch(self, functions)

    def deploy(self, artifact: str, *args: Any) -> tuple[str, TxReceipt]:
        """Deploys `artifact` with constructor `args`; returns its address and receipt."""
        spec = load_artifact(artifact)
        factory = self.w3.eth.contract(abi=spec.abi, bytecode=spec.bytecode)
        sender = self.sender
        with _decoded_reverts():
            tx = factory.constructor(*args).build_transaction(
                {"from": sender, "nonce": self.w3.eth.get_transaction_count(sender, "pending"), "chainId": self.chain_id}
            )
            receipt = self._send(tx)
        return str(receipt["contractAddress"]), receipt

    def _send(self, tx: dict[str, Any]) -> TxReceipt:
        assert self.account is not None
        signed = self.account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as error:
            raise self._refusal(tx, error) from None
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        except TimeExhausted:
            raise ChainError(
                f"Transaction {HexBytes(tx_hash).to_0x_hex()} was not mined within {RECEIPT_TIMEOUT_S} s; it may "
                "still be, so check it before sending it again."
            ) from None
        if receipt["status"] != 1:
            raise self.mined_failure(tx, receipt)
        return receipt

    def _refusal(self, tx: dict[str, Any], error: Web3RPCError) -> ChainError:
        """Why the node refused to take `tx`. Nodes that execute a transaction on receipt
        (Hardhat, Ganache) refuse a reverting one, some without its revert data: then a
        replay as a call learns it."""
        refusal = chain_error(error, "the transaction")
        undecoded = isinstance(refusal, TransactionReverted) and refusal.error_name is None
        if undecoded and revert_data(error) in (None, "0x"):
            return self.revert_of(tx) or refusal
        return refusal

    def mined_failure(self, tx: dict[str, Any], receipt: TxReceipt, replay_at: int | None = None) -> ChainError:
        """Why `tx` (its from, to, data and value at least), mined with a failed `receipt`,
        failed, in one sentence: its revert, decoded from a replay as a call on the state of
        block `replay_at` (default: the block before its own), else that it ran out of gas
        or just reverted."""
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        replayed = self.revert_of(tx, receipt["blockNumber"] - 1 if replay_at is None else replay_at)
        if replayed is not None:
            return replayed
        if "gas" in tx and receipt["gasUsed"] >= tx["gas"]:
            return TransactionReverted(
                f"Transaction {tx_hash} ran out of gas (it used all {tx['gas']}); "
                "send it again with a higher gas limit."
            )
        return TransactionReverted(f"Transaction {tx_hash} reverted.")

    def revert_of(self, tx: dict[str, Any], block: int | str = "latest") -> ChainError | None:
        """The error `tx` (its from, to, data and value) fails with when run as a call at
        `block`, decoded as `call` decodes reverts, or None if it succeeds."""
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(call, block)  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as error:
            return chain_error(error, "the transaction")
        return None
