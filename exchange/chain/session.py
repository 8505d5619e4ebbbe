"""A connection to one chain, one account and Cove's contracts on it.

Every contract call and transaction goes through `ChainSession`, which turns reverts
into `TransactionReverted` with a readable sentence and connection failures into
`RpcUnreachable`, so no web3 traceback reaches a user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, Web3RPCError
from web3.types import TxReceipt

from exchange.chain.artifacts import load_artifact
from exchange.chain.reverts import describe_revert
from exchange.chain.anvil import LOCAL_CHAIN_ID
from exchange.errors import AccountError, ChainError, InputError, RpcUnreachable, TransactionReverted

RECEIPT_TIMEOUT_S = 120


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A Web3 connected to `rpc_url`, or RpcUnreachable with what to do."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - the cheapest call that proves a node answers
    except (requests.RequestException, OSError, ValueError, Web3RPCError):
        raise RpcUnreachable(
            f"No Ethereum JSON-RPC node answers at {rpc_url}; start the local chain with "
            "`cove chain up` or pass a reachable --rpc URL."
        ) from None
    return w3


@contextmanager
def _decoded_reverts() -> Iterator[None]:
    """Re-raises web3's revert and connection errors as Cove errors."""
    try:
        yield
    except (ContractCustomError, ContractPanicError, ContractLogicError) as error:
        data = error.data if isinstance(error.data, str) else None
        if data:
            raise describe_revert(data) from None
        raise TransactionReverted(f"The transaction reverted: {error.message or 'no reason given'}.") from None
    except requests.RequestException:
        raise RpcUnreachable("The chain's JSON-RPC node stopped answering; check that it runs.") from None


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
            raise InputError("Only the local chain's time can be moved.")
        if seconds:
            self.w3.provider.make_request("evm_increaseTime", [int(seconds)])  # type: ignore[arg-type]
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]

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
            raise ChainError(f"The node refused the transaction: {_rpc_message(error)}.") from None
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        if receipt["status"] != 1:
            raise self._replay_failure(tx, receipt)
        return receipt

    def _replay_failure(self, tx: dict[str, Any], receipt: TxReceipt) -> TransactionReverted:
        """Re-runs a mined, failed transaction as a call to learn why it reverted."""
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except (ContractCustomError, ContractPanicError, ContractLogicError) as error:
            if isinstance(error.data, str):
                return describe_revert(error.data)
        return TransactionReverted(f"Transaction {HexBytes(receipt['transactionHash']).to_0x_hex()} reverted.")


def _rpc_message(error: Web3RPCError) -> str:
    payload = error.rpc_response.get("error", {}) if error.rpc_response else {}
    return str(payload.get("message") or error.message or error).rstrip(".")
