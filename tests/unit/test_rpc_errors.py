"""Every node's JSON-RPC error becomes one sentence: revert data found in any format and
decoded, node refusals phrased. Recorded payloads from anvil, Hardhat 2 and 3 and Ganache 7
(tests/fixtures/rpc_errors/; each file's note says how it was recorded, or that it was
written from a documented format: geth, Ganache 6, hosted RPCs) are replayed through a
real web3 and ChainSession, so what web3 makes of each payload is tested too."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3
from web3.exceptions import BadResponseFormat, ContractCustomError, ContractLogicError, Web3RPCError
from web3.providers.base import BaseProvider

from exchange.accounts import dev_account
from exchange.chain.artifacts import load_artifact
from exchange.chain.rpc_errors import (
    chain_error,
    is_log_query_limit,
    is_revert,
    node_message,
    revert_data,
)
from exchange.chain.session import ChainSession, connect
from exchange.errors import (
    ChainError,
    LogQueryLimited,
    NodeError,
    NodeIncompatible,
    RpcRateLimited,
    RpcUnauthorized,
    RpcUnreachable,
    TransactionRefused,
    TransactionReverted,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rpc_errors"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
FAUCET_LIMIT_EXCEEDED = "0xbf0742b2"  # FaucetLimitExceeded(uint256,uint256)
ZERO_ADDRESS = "0x" + "00" * 20


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def fixtures(*actions: str) -> list[Any]:
    return [pytest.param(load(p), id=p.stem) for p in FIXTURE_FILES if load(p)["action"] in actions]


def error_exchange(fixture: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    """The last exchange (of `method`, if given) the node answered with an error."""
    failed = [x for x in fixture["exchanges"] if x.get("http_status") != 200 or "error" in x.get("response", {})]
    return [x for x in failed if method in (None, x["request"]["method"])][-1]


def http_error(exchange: dict[str, Any]) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = exchange["http_status"]
    body = exchange.get("response_text") or json.dumps(exchange["response"])
    response._content = body.encode()
    return requests.HTTPError(f"{response.status_code} Client Error", response=response)


def assert_one_sentence(error: ChainError) -> str:
    message = str(error)
    assert message.endswith(".") and "\n" not in message, message
    assert "Traceback" not in message and "{'" not in message and "HexBytes" not in message, message
    assert not "a" <= message[0] <= "z", message
    return message


def assert_expected(error: BaseException, expect: dict[str, Any]) -> None:
    assert type(error).__name__ == expect["error"], (type(error).__name__, str(error))
    assert isinstance(error, ChainError)
    if "error_name" in expect:
        assert isinstance(error, TransactionReverted) and error.error_name == expect["error_name"], str(error)
    if "reason" in expect:
        assert isinstance(error, NodeError) and error.reason == expect["reason"], str(error)
    assert_one_sentence(error)


def assert_not_chained(error: BaseException) -> None:
    """No web3 exception shows under the Cove error (`raise … from None`)."""
    assert error.__cause__ is None, repr(error.__cause__)
    assert error.__context__ is None or error.__suppress_context__, repr(error.__context__)


class ReplayProvider(BaseProvider):
    """Answers each JSON-RPC method with what a real node answered (in order, the last repeated)."""

    def __init__(self, fixture: dict[str, Any]):
        super().__init__()
        self.chain_id = fixture["chain_id"]
        self.answers: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for exchange in fixture["exchanges"]:
            self.answers[exchange["request"]["method"]].append(exchange["response"])
        self.asked: list[str] = []

    def make_request(self, method: str, params: Any) -> Any:  # type: ignore[override]
        self.asked.append(method)
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": 1, "result": hex(self.chain_id)}
        queue = self.answers.get(method)
        assert queue, f"the session asked {method}, which the recording has no answer for"
        return dict(queue.popleft() if len(queue) > 1 else queue[0])

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


def replay_session(fixture: dict[str, Any]) -> tuple[ChainSession, ReplayProvider]:
    provider = ReplayProvider(fixture)
    return ChainSession(Web3(provider), dev_account(0)), provider


def recorded_target(fixture: dict[str, Any]) -> str:
    """The contract the recorded session called (any address will do for a replay)."""
    for exchange in fixture["exchanges"]:
        params = exchange["request"]["params"]
        if params and isinstance(params[0], dict) and params[0].get("to"):
            return Web3.to_checksum_address(params[0]["to"])
    return Web3.to_checksum_address("0x5FbDB2315678afecb367f032d93F642f64180aa3")


def constructor_args(artifact: str) -> list[Any]:
    """Sample arguments for `artifact`'s constructor, whatever its current ABI takes."""
    inputs: list[dict[str, Any]] = next(
        (e["inputs"] for e in load_artifact(artifact).abi if e["type"] == "constructor"), []
    )
    samples = {"string": "Cove Test Dollar", "uint8": 18, "address": ZERO_ADDRESS}
    return [samples[i["type"]] for i in inputs]


def run_recorded_action(fixture: dict[str, Any]) -> Any:
    """Does what the recorded session did, against the recording."""
    session, _ = replay_session(fixture)
    token = session.contract("TestPaymentToken", recorded_target(fixture))
    function = token.functions.faucet(1)
    action = fixture["action"]
    if action == "call":
        return session.call(function)
    if action == "transact":
        return session.transact(function)
    if action == "deploy":
        return session.deploy("TestPaymentToken", *constructor_args("TestPaymentToken"))
    if action == "deploy_cove":
        return session.deploy("Cove", *constructor_args("Cove"))
    assert action == "send"
    # Explicit gas and fees: the node executes the transaction, as when a revert appears
    # only after the estimate (the state changed in between).
    tx = function.build_transaction(
        {"from": session.sender, "gas": 300_000, "nonce": 7, "chainId": session.chain_id,  # type: ignore[arg-type]
         "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    )  # fmt: skip
    return session._send(dict(tx))


# --- the recorded payloads ------------------------------------------------------------------


def test_every_node_and_case_is_recorded() -> None:
    nodes = {p.stem.split("__")[0] for p in FIXTURE_FILES}
    assert {"anvil", "hardhat3", "hardhat2", "ganache", "ganache_vmerrors", "geth", "ganache6"} <= nodes
    for path in FIXTURE_FILES:
        fixture = load(path)
        assert fixture["note"] and fixture["node"] and fixture["exchanges"], path.name
        assert path.stat().st_size < 8_000, f"{path.name} should stay a small fixture"


@pytest.mark.parametrize("fixture", fixtures("call", "transact", "send", "deploy", "raw"))
def test_recorded_error_payload_reads_as_expected(fixture: dict[str, Any]) -> None:
    """The node's error object alone (as any client would see it) gives the expected error."""
    response = error_exchange(fixture)["response"]
    assert_expected(chain_error(response), fixture["expect"])
    assert_expected(chain_error(response["error"]), fixture["expect"])
    # ... and so does the web3 exception carrying it.
    assert_expected(chain_error(Web3RPCError(repr(response["error"]), rpc_response=response)), fixture["expect"])


@pytest.mark.parametrize("fixture", fixtures("call", "transact", "send", "deploy", "deploy_cove"))
def test_chain_session_turns_each_recording_into_a_cove_error(fixture: dict[str, Any]) -> None:
    """What ChainSession raises when a real node answered this way: never a web3 exception."""
    expect = fixture["expect"]
    if expect.get("ok"):
        address, receipt = run_recorded_action(fixture)
        assert receipt["status"] == 1 and Web3.is_checksum_address(address)
        return
    with pytest.raises(ChainError) as raised:
        run_recorded_action(fixture)
    assert_expected(raised.value, expect)
    assert_not_chained(raised.value)


@pytest.mark.parametrize("fixture", fixtures("http"))
def test_recorded_http_refusals_read_as_expected(fixture: dict[str, Any]) -> None:
    assert_expected(chain_error(http_error(error_exchange(fixture))), fixture["expect"])


def test_faucet_revert_data_is_found_alike_on_every_node() -> None:
    """The same revert, reported four ways, yields the same bytes and the same sentence."""
    names = ["anvil__eth_call_custom_error", "hardhat3__eth_call_custom_error", "hardhat2__eth_call_custom_error",
             "geth__eth_call_custom_error", "hardhat3__eth_sendRawTransaction_custom_error"]  # fmt: skip
    found = {name: revert_data(error_exchange(load(FIXTURES / f"{name}.json"))["response"]) for name in names}
    assert len(set(found.values())) == 1, found
    data = next(iter(found.values()))
    assert data is not None and data.startswith(FAUCET_LIMIT_EXCEEDED) and len(data) == 2 + 2 * (4 + 64)
    sentences = {str(chain_error(error_exchange(load(FIXTURES / f"{n}.json"))["response"])) for n in names}
    assert sentences == {"The faucet gives at most 10000 tokens per call."}


def test_hardhat2_nests_the_data_and_repeats_it_in_its_message() -> None:
    error = error_exchange(load(FIXTURES / "hardhat2__eth_call_custom_error.json"))["response"]["error"]
    assert isinstance(error["data"], dict) and "unrecognized custom error (return data: 0x" in error["message"]
    nested = revert_data({"data": error["data"]})
    from_message_only = revert_data({"code": error["code"], "message": error["message"]})
    assert nested == from_message_only and nested is not None and nested.startswith(FAUCET_LIMIT_EXCEEDED)


def test_ganache_puts_the_data_in_result_but_a_transaction_hash_on_send() -> None:
    estimate = error_exchange(load(FIXTURES / "ganache__eth_estimateGas_custom_error.json"))["response"]
    assert revert_data(estimate) == "0xf5ed3857" + f"{999:064x}"  # UnknownDataset(999)
    recording = load(FIXTURES / "ganache_vmerrors__eth_sendRawTransaction_revert.json")
    send = error_exchange(recording, "eth_sendRawTransaction")["response"]
    assert send["error"]["data"]["result"] == send["error"]["data"]["hash"]
    assert revert_data(send) is None  # the hash is not revert data: the session replays the call instead


def test_ganache_invalid_opcode_carries_empty_data_and_is_not_a_revert() -> None:
    replay = error_exchange(load(FIXTURES / "ganache__mined_invalid_opcode_replayed.json"))["response"]
    assert replay["error"]["data"] == "0x" and revert_data(replay) == "0x"
    error = chain_error(replay)
    assert isinstance(error, NodeIncompatible) and not is_revert(replay)
    message = str(error)
    for needed in ("Cancun EVM", "March 2024", "anvil, Hardhat, geth/reth or a current L2 RPC", "invalid opcode"):
        assert needed in message, message


# --- formats that client libraries and proxies wrap around them -----------------------------


UNKNOWN_999 = "0xf5ed3857" + f"{999:064x}"
WRAPPINGS = [
    "geth", "hardhat2", "originalError", "error.error", "ganache6", "ganache7", "anvil-message",
    "hardhat-message", "json-text", "web3-custom", "web3-logic-dict", "valueerror-dict",
]  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 3, "message": "execution reverted", "data": UNKNOWN_999},  # geth, anvil
        {"error": {"code": -32603, "message": "x", "data": {"message": "x", "data": UNKNOWN_999}}},  # Hardhat 2
        {"code": -32603, "message": "x", "data": {"originalError": {"code": 3, "data": UNKNOWN_999, "message": "m"}}},
        {"error": {"error": {"code": 3, "data": UNKNOWN_999}}},  # ethers' error.error
        {"code": -32000, "message": "revert", "data": {"0x" + "12" * 32: {"error": "revert", "return": UNKNOWN_999}}},
        {"code": -32000, "message": "VM Exception", "data": {"hash": None, "result": UNKNOWN_999, "reason": None}},
        {"message": f"execution reverted: custom error 0xf5ed3857: {999:064x}"},  # anvil, message only
        (
            "Error: VM Exception while processing transaction: reverted with an unrecognized custom error "
            f"(return data: {UNKNOWN_999})"
        ),
        json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "reverted", "data": UNKNOWN_999}}),
        ContractCustomError(UNKNOWN_999, data=UNKNOWN_999),
        ContractLogicError("execution reverted: VM Exception", data={"result": UNKNOWN_999, "message": "revert"}),
        ValueError({"code": 3, "message": "execution reverted", "data": UNKNOWN_999}),  # web3 5/6 style
    ],
    ids=WRAPPINGS,
)
def test_revert_data_is_found_in_any_wrapping(payload: object) -> None:
    assert revert_data(payload) == UNKNOWN_999
    error = chain_error(payload)
    assert isinstance(error, TransactionReverted) and error.error_name == "UnknownDataset"
    assert str(error) == "There is no dataset #999; list them with `cove datasets`."


def test_hex_that_is_not_revert_data_is_left_alone() -> None:
    tx_hash = "0x" + "ab" * 32
    assert revert_data({"message": "already known", "data": {"txHash": tx_hash, "hash": tx_hash}}) is None
    assert revert_data({"code": -32000, "message": "nonce too low", "data": {"address": ZERO_ADDRESS}}) is None
    assert revert_data({"code": 3, "message": "execution reverted", "data": "0x"}) == "0x"
    assert revert_data({"code": 3, "message": "execution reverted", "data": "0xnothex"}) is None


def test_a_revert_without_data_still_reads_as_a_revert() -> None:
    error = chain_error({"code": 3, "message": "execution reverted"})
    assert isinstance(error, TransactionReverted) and str(error) == "The transaction reverted without a reason."
    assert isinstance(chain_error(ContractLogicError("execution reverted", data=None)), TransactionReverted)


def test_an_error_string_reason_alone_is_encoded_back() -> None:
    payload = {"message": "VM Exception while processing transaction: revert not yours", "code": -32000,
               "data": {"0x" + "cd" * 32: {"error": "revert", "reason": "not yours"}}}  # fmt: skip
    error = chain_error(payload)
    assert isinstance(error, TransactionReverted) and error.error_name == "Error"
    assert str(error) == "The transaction reverted: not yours."


# --- phrasing the rest ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kind", "reason", "fragments"),
    [
        ({"code": -32000, "message": "invalid opcode: opcode 0x5c not defined"}, NodeIncompatible, "evm-too-old",
         ["Cancun EVM", "March 2024"]),
        ({"code": -32003, "message": "Insufficient funds for gas * price + value"}, TransactionRefused,
         "insufficient-funds", ["not enough", "fund it"]),
        ({"code": -32000, "message": "replacement transaction underpriced"}, TransactionRefused, "nonce",
         ["nonce", "wait for it to be mined"]),
        ({"code": -32000, "message": "max fee per gas less than block base fee: maxFeePerGas: 1, baseFee: 7"},
         TransactionRefused, "fee", ["higher fee"]),
        ({"code": -32000, "message": "exceeds block gas limit"}, TransactionRefused, "gas", ["gas limit"]),
        ({"code": -32000, "message": "gas required exceeds allowance (30000000)"}, TransactionRefused, "gas",
         ["gas limit"]),
        ({"code": -32601, "message": "the method evm_increaseTime does not exist/is not available"},
         NodeIncompatible, "unsupported-method", ["does not support evm_increaseTime", "local chain"]),
        ({"code": -32601, "message": "Method not found"}, NodeIncompatible, "unsupported-method",
         ["does not support a JSON-RPC method Cove needs"]),
        ({"code": 429, "message": "Too Many Requests"}, RpcRateLimited, "rate-limited", ["wait a minute"]),
        ({"code": -32600, "message": "Must be authenticated!"}, RpcUnauthorized, "unauthorized", ["API key"]),
        ({"code": -32005, "message": "query returned more than 10000 results"}, LogQueryLimited, "too-many-logs",
         ["COVE_LOG_RANGE"]),
    ],
)
def test_node_refusals_are_one_sentence_saying_what_to_do(
    payload: dict[str, Any], kind: type[NodeError], reason: str, fragments: list[str]
) -> None:
    error = chain_error(payload)
    assert type(error) is kind and error.reason == reason and error.code == payload["code"]
    message = assert_one_sentence(error)
    for fragment in fragments:
        assert fragment in message, message


def test_an_unknown_node_error_is_quoted_in_one_sentence() -> None:
    error = chain_error({"code": -32000, "message": "Something odd\n happened."}, "the transaction")
    assert type(error) is NodeError and error.reason == "other"
    assert str(error) == 'The node refused the transaction: "Something odd happened" (code -32000).'
    long = chain_error({"code": -1, "message": "x" * 1000})
    assert len(str(long)) < 300 and str(long).endswith('…" (code -1).')


def test_node_message_prefers_the_nodes_own_words() -> None:
    response = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "nonce too low."}}
    rpc = Web3RPCError("{'code': -32000}", rpc_response=response)  # type: ignore[arg-type]
    assert node_message(rpc) == "nonce too low"
    web3_prefixed = ContractLogicError("execution reverted: VM Exception: invalid opcode", data={"result": "0x"})
    assert node_message(web3_prefixed) == "VM Exception: invalid opcode"


def test_bad_response_format_is_read_back_or_explained() -> None:
    # web3 8 refuses an error without an integer code, quoting the response as a Python literal.
    quoted = BadResponseFormat(
        "The response was in an unexpected format and unable to be parsed. error[\"code\"] is required. "
        "The raw response is: {'jsonrpc': '2.0', 'id': 1, 'error': {'message': 'insufficient funds for gas'}}"
    )
    assert isinstance(chain_error(quoted), TransactionRefused)
    garbage = chain_error(BadResponseFormat("The raw response is: <html>"))
    assert type(garbage) is NodeError and "not valid JSON-RPC" in str(garbage)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, RpcUnauthorized), (403, RpcUnauthorized), (429, RpcRateLimited), (413, LogQueryLimited),
     (404, RpcUnreachable), (502, RpcUnreachable), (400, NodeError)],
)  # fmt: skip
def test_http_refusals(status: int, kind: type[ChainError]) -> None:
    error = chain_error(http_error({"http_status": status, "response_text": "nope"}))
    assert type(error) is kind
    assert_one_sentence(error)


def test_connection_failures_are_unreachable() -> None:
    assert isinstance(chain_error(requests.ConnectionError("refused")), RpcUnreachable)
    assert isinstance(chain_error(requests.Timeout("slow")), RpcUnreachable)


def test_log_query_limits_are_told_from_rate_limits() -> None:
    assert is_log_query_limit({"code": -32005, "message": "query returned more than 10000 results"})
    assert is_log_query_limit({"code": -32005, "message": "limit exceeded"})
    assert not is_log_query_limit({"code": -32005, "message": "daily request count exceeded, request rate limited"})
    assert not is_log_query_limit({"code": -32000, "message": "invalid block range params"})
    assert is_log_query_limit(http_error({"http_status": 413, "response_text": "Request Entity Too Large"}))


# --- connect() against a server that refuses ---------------------------------------------------


@pytest.fixture
def refusing_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering every POST with the recorded refusal."""
    exchange = error_exchange(load(FIXTURES / f"{request.param}.json"))
    body = (exchange.get("response_text") or json.dumps(exchange["response"])).encode()

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(exchange["http_status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3/0123456789abcdef0123456789abcdef"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("refusing_server", "kind"),
    [("infura__unauthorized_http_401", RpcUnauthorized), ("alchemy__rate_limited_http_429", RpcRateLimited)],
    indirect=["refusing_server"],
)
def test_connect_says_why_a_provider_refuses(refusing_server: str, kind: type[ChainError]) -> None:
    with pytest.raises(kind) as raised:
        connect(refusing_server)
    message = assert_one_sentence(raised.value)
    assert "0123456789abcdef" not in message, "an API key in the URL must never be printed"
    assert_not_chained(raised.value)
