"""Cove on a node other than anvil: a real Hardhat 3 node (EDR), started on a free
127.0.0.1 port from the npm package in node_modules, answers custom-error reverts in its
own format; ChainSession must read them as the same sentences as on anvil."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from exchange.accounts import dev_account
from exchange.chain.anvil import LocalChain, free_loopback_port, rpc_answers
from exchange.chain.artifacts import load_artifact
from exchange.chain.session import ChainSession, connect
from exchange.errors import ChainError, TransactionRefused, TransactionReverted
from exchange.paths import PROJECT_ROOT

pytestmark = [pytest.mark.chain, pytest.mark.node]

HARDHAT_PACKAGE = PROJECT_ROOT / "node_modules" / "hardhat"
LAUNCHER = Path(__file__).resolve().parent.parent / "fixtures" / "hardhat" / "node.mjs"
ZERO_ADDRESS = "0x" + "00" * 20
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def hardhat_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Hardhat node on a free loopback port, stopped after the module's tests."""
    assert (HARDHAT_PACKAGE / "package.json").is_file(), (
        f"Hardhat is not installed in {HARDHAT_PACKAGE.parent}: add the devDependency hardhat 3.9.1 "
        "to package.json and run npm ci"
    )
    node = shutil.which("node")
    assert node is not None, "node (20 or later) is needed to run Hardhat"
    project = tmp_path_factory.mktemp("hardhat-project")  # Hardhat writes its artifacts/ and cache here
    (project / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    log_path = project / "hardhat.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [node, str(LAUNCHER), str(port)],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "HARDHAT_DISABLE_TELEMETRY": "true"},
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not rpc_answers(url):
            assert process.poll() is None, f"Hardhat exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"Hardhat did not answer within {START_TIMEOUT_S} s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    local = LocalChain(tmp_path_factory.mktemp("anvil"))
    info, _ = local.up()
    yield info.rpc_url
    local.down()


def constructor_args(artifact: str) -> list[Any]:
    """Sample arguments for `artifact`'s constructor, whatever its current ABI takes."""
    inputs: list[dict[str, Any]] = next(
        (e["inputs"] for e in load_artifact(artifact).abi if e["type"] == "constructor"), []
    )
    samples = {"string": "Cove Test Dollar", "uint8": 18, "address": ZERO_ADDRESS}
    values = [samples[i["type"]] for i in inputs]
    return ["Cove Test Dollar", "tUSD", 18] if [i["type"] for i in inputs] == ["string", "string", "uint8"] else values


@dataclass
class Token:
    session: ChainSession
    address: str

    @property
    def contract(self) -> Any:
        return self.session.contract("TestPaymentToken", self.address)


def deployed_token(url: str) -> Token:
    session = ChainSession(connect(url), dev_account(0))
    address, _ = session.deploy("TestPaymentToken", *constructor_args("TestPaymentToken"))
    return Token(session, address)


def raised(action: Any) -> ChainError:
    with pytest.raises(ChainError) as caught:
        action()
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), "from None"
    message = str(error)
    assert message.endswith(".") and "\n" not in message, message
    return error


def sent_with_explicit_gas(token: Token, function: Any, gas: int = 300_000) -> Any:
    """Sends `function` without an estimate, so the node itself executes the failing transaction
    (anvil mines it with status 0; Hardhat refuses it at eth_sendRawTransaction)."""
    session = token.session
    nonce = session.w3.eth.get_transaction_count(Web3.to_checksum_address(session.sender), "pending")
    tx = function.build_transaction({"from": session.sender, "gas": gas, "nonce": nonce, "chainId": session.chain_id})
    return session._send(dict(tx))


def revert_sentences(url: str) -> list[tuple[str | None, str]]:
    """(error name, sentence) for each way a custom-error revert reaches a user."""
    token = deployed_token(url)
    session, contract = token.session, token.contract
    over_limit = contract.functions.faucet(contract.functions.FAUCET_LIMIT().call() + 1)
    beyond_balance = contract.functions.transfer(dev_account(1).address, 5)
    errors = [
        raised(lambda: session.call(over_limit)),  # eth_call
        raised(lambda: session.transact(over_limit)),  # eth_estimateGas
        raised(lambda: sent_with_explicit_gas(token, over_limit)),  # eth_sendRawTransaction / receipt
        raised(lambda: session.simulate(beyond_balance)),
        raised(lambda: session.transact(beyond_balance)),
        raised(lambda: sent_with_explicit_gas(token, beyond_balance)),
    ]
    assert all(isinstance(e, TransactionReverted) for e in errors), [type(e).__name__ for e in errors]
    return [(e.error_name, str(e)) for e in errors if isinstance(e, TransactionReverted)]


def test_hardhat_is_a_hardhat_3_node(hardhat_url: str) -> None:
    version = Web3(Web3.HTTPProvider(hardhat_url)).client_version
    assert version.startswith("HardhatNetwork/3."), version


def test_custom_error_reverts_read_the_same_on_hardhat_as_on_anvil(anvil_url: str, hardhat_url: str) -> None:
    on_anvil, on_hardhat = revert_sentences(anvil_url), revert_sentences(hardhat_url)
    assert on_hardhat == on_anvil
    owner = dev_account(0).address
    faucet = (
        "FaucetLimitExceeded",
        "The faucet gives at most 10000 tokens per call.",
    )
    balance = (
        "ERC20InsufficientBalance",
        f"{owner} holds 0 units of the payment token but 5 are needed; get more (on a local chain: `cove faucet`).",
    )
    assert on_anvil == [faucet] * 3 + [balance] * 3
    assert all("unrecognized custom error" not in sentence for _, sentence in on_hardhat)


def test_the_hub_deploys_on_hardhat(hardhat_url: str) -> None:
    """Hardhat runs the Cancun EVM Cove's contracts are compiled for."""
    session = ChainSession(connect(hardhat_url), dev_account(0))
    address, receipt = session.deploy("Cove", *constructor_args("Cove"))
    assert receipt["status"] == 1 and session.w3.eth.get_code(Web3.to_checksum_address(address)) != b""


def test_running_out_of_gas_is_explained_on_both(anvil_url: str, hardhat_url: str) -> None:
    # 30,000 gas passes the intrinsic cost but not a first mint's storage writes.
    anvil_token, hardhat_token = deployed_token(anvil_url), deployed_token(hardhat_url)
    mined = raised(lambda: sent_with_explicit_gas(anvil_token, anvil_token.contract.functions.faucet(1), 30_000))
    assert isinstance(mined, TransactionReverted) and "ran out of gas (it used all 30000)" in str(mined), str(mined)
    refused = raised(lambda: sent_with_explicit_gas(hardhat_token, hardhat_token.contract.functions.faucet(1), 30_000))
    assert isinstance(refused, TransactionRefused) and refused.reason == "gas", str(refused)
