"""LogReader: eth_getLogs in bounded block ranges, against a real anvil with thousands of
blocks, through a proxy on 127.0.0.1 that refuses what public RPCs refuse (too wide a
range, too many results, HTTP 413) the way they say it."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from exchange.accounts import dev_account
from exchange.chain.anvil import LocalChain
from exchange.chain.artifacts import load_artifact
from exchange.chain.logs import DEFAULT_LOG_RANGE, LOG_RANGE_ENV, LogReader, configured_log_range
from exchange.chain.session import ChainSession, connect
from exchange.errors import InputError, LogQueryLimited, NodeError, RpcRateLimited

pytestmark = pytest.mark.chain

FAUCET_ROUNDS = 12
# With the faucet's own block, a Transfer every 200 blocks: D+1, D+201, ... after the
# deployment block D. (anvil_mine slows down as the chain grows: ~2,400 blocks take seconds.)
BLOCKS_BETWEEN = 199
SPACING = BLOCKS_BETWEEN + 1


@dataclass
class Chain:
    rpc_url: str
    w3: Web3
    token: Contract
    first: int
    last: int
    amounts: list[int]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """An anvil with ~2,400 blocks and a TestPaymentToken Transfer every 200 of them
    (three in a row at the end, so some ranges hold more logs than others)."""
    local = LocalChain(tmp_path_factory.mktemp("log-chain"))
    info, _ = local.up()
    try:
        session = ChainSession(connect(info.rpc_url), dev_account(0))
        inputs = next(e["inputs"] for e in load_artifact("TestPaymentToken").abi if e["type"] == "constructor")
        args = {0: [], 3: ["Cove Test Dollar", "tUSD", 18]}[len(inputs)]
        address, receipt = session.deploy("TestPaymentToken", *args)
        token = session.contract("TestPaymentToken", address)
        amounts = []
        for round_ in range(FAUCET_ROUNDS + 2):
            amounts.append(round_ + 1)
            session.transact(token.functions.faucet(round_ + 1))
            if round_ < FAUCET_ROUNDS:
                session.w3.provider.make_request("anvil_mine", [hex(BLOCKS_BETWEEN)])  # type: ignore[arg-type]
        yield Chain(info.rpc_url, session.w3, token, int(receipt["blockNumber"]), session.w3.eth.block_number, amounts)
    finally:
        local.down()


@dataclass
class Limits:
    """What the fake provider refuses."""

    max_blocks: int | None = None  # "block range is too wide" above this many blocks
    max_results: int | None = None  # "query returned more than N results" above this many logs
    http_413_above: int | None = None  # HTTP 413 above this many blocks
    suggest: bool = False  # name a range that would work, as Infura and Alchemy do
    always: dict[str, Any] | None = None  # answer every eth_getLogs with this error
    ranges: list[tuple[int, int, str]] = field(default_factory=list)  # (from, to, "ok" | "refused")


@pytest.fixture
def proxy(chain: Chain) -> Iterator[tuple[str, Limits]]:
    """An HTTP proxy on 127.0.0.1 in front of the anvil, enforcing `Limits` on eth_getLogs."""
    limits = Limits()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = json.loads(body)
            if request.get("method") == "eth_getLogs":
                refusal = self._refusal(request)
                if refusal is not None:
                    return self._answer(*refusal)
            forwarded = urllib.request.Request(chain.rpc_url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(forwarded, timeout=10) as response:
                answer = json.loads(response.read())
            if request.get("method") == "eth_getLogs":
                start, end = (int(request["params"][0][k], 16) for k in ("fromBlock", "toBlock"))
                if limits.max_results is not None and len(answer.get("result", [])) > limits.max_results:
                    limits.ranges.append((start, end, "refused"))
                    message = f"query returned more than {limits.max_results} results"
                    if limits.suggest:
                        message += f". Try with this block range [{hex(start)}, {hex(start + 99)}]."
                    return self._answer(200, {"jsonrpc": "2.0", "id": request["id"],
                                              "error": {"code": -32005, "message": message}})  # fmt: skip
                limits.ranges.append((start, end, "ok"))
            self._answer(200, answer)

        def _refusal(self, request: dict[str, Any]) -> tuple[int, Any] | None:
            start, end = (int(request["params"][0][k], 16) for k in ("fromBlock", "toBlock"))
            width = end - start + 1
            error = None
            if limits.always is not None:
                error = limits.always
            elif limits.max_blocks is not None and width > limits.max_blocks:
                error = {"code": -32600, "message": "block range is too wide"}
            elif limits.http_413_above is not None and width > limits.http_413_above:
                limits.ranges.append((start, end, "refused"))
                return 413, "Request Entity Too Large"
            if error is None:
                return None
            limits.ranges.append((start, end, "refused"))
            return 200, {"jsonrpc": "2.0", "id": request["id"], "error": error}

        def _answer(self, status: int, payload: Any) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", limits
    server.shutdown()
    server.server_close()


def transfers(chain: Chain) -> dict[str, Any]:
    return {"address": chain.token.address, "topics": [chain.token.events.Transfer().topic]}


def unbounded(chain: Chain) -> list[Any]:
    """What a node without limits answers for the whole range at once."""
    query = {**transfers(chain), "fromBlock": chain.first, "toBlock": chain.last}
    return list(chain.w3.eth.get_logs(query))  # type: ignore[arg-type]


def keys(logs: list[Any]) -> list[tuple[int, int, str]]:
    return [(int(log["blockNumber"]), int(log["logIndex"]), log["transactionHash"].hex()) for log in logs]


def test_the_chain_is_long_and_has_the_events(chain: Chain) -> None:
    assert chain.last - chain.first > FAUCET_ROUNDS * BLOCKS_BETWEEN
    assert len(unbounded(chain)) == FAUCET_ROUNDS + 2


def test_chunks_cover_the_range_in_order_within_max_range(chain: Chain) -> None:
    reader = LogReader(chain.w3, max_range=170)
    ranges = [(start, end) for start, end, _ in reader.chunks(transfers(chain), chain.first, chain.last)]
    assert ranges[0][0] == chain.first and ranges[-1][1] == chain.last
    assert all(b[0] == a[1] + 1 for a, b in pairwise(ranges)), "contiguous, no gap or overlap"
    assert max(end - start + 1 for start, end in ranges) == 170
    assert keys(reader.read(transfers(chain), chain.first, chain.last)) == keys(unbounded(chain))
    assert list(reader.chunks(transfers(chain), 10, 9)) == []


def test_a_too_wide_range_is_halved_until_the_node_accepts_it(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.max_blocks = 200
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=1000)
    assert keys(reader.read(transfers(chain), chain.first, chain.last)) == keys(unbounded(chain))
    refused = [end - start + 1 for start, end, what in limits.ranges if what == "refused"]
    accepted = [end - start + 1 for start, end, what in limits.ranges if what == "ok"]
    assert refused == [1000, 500, 250], "halved, and refused only until a width fits"
    assert max(accepted) == 125 and reader.span == 125
    blocks = chain.last - chain.first + 1
    assert len(accepted) == -(-blocks // 125), "no chunk asked twice"
    # The node's cap does not change: a second read asks only widths it accepts.
    limits.ranges.clear()
    assert keys(reader.read(transfers(chain), chain.first, chain.last)) == keys(unbounded(chain))
    assert all(what == "ok" for _, _, what in limits.ranges)


def test_too_many_results_narrows_the_range_where_logs_are_dense(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.max_results = 2
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=800)
    chunks = list(reader.chunks(transfers(chain), chain.first, chain.last))
    assert keys([log for _, _, logs in chunks for log in logs]) == keys(unbounded(chain))
    assert all(len(logs) <= 2 for _, _, logs in chunks)
    assert any(what == "refused" for _, _, what in limits.ranges)
    assert len(limits.ranges) < 80, "bounded: one request per chunk plus a few halvings"


def test_the_nodes_suggested_range_is_taken(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.max_results, limits.suggest = 1, True
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=400)
    # Transfers at D+1, D+201, D+401, ...: [D+2, D+401] holds two, [D+2, D+101] none.
    start = chain.first + 2
    logs = reader.read(transfers(chain), start, start + 399)
    assert [int(log["blockNumber"]) for log in logs] == [chain.first + 1 + SPACING, chain.first + 1 + 2 * SPACING]
    assert limits.ranges[0] == (start, start + 399, "refused")
    assert limits.ranges[1] == (start, start + 99, "ok"), "asked exactly the range the node suggested"
    assert reader.span == 100


def test_a_node_that_refuses_even_one_block_says_so(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.max_results = 0  # any log at all is "too many"
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=64)
    with pytest.raises(LogQueryLimited) as raised:
        reader.read(transfers(chain), chain.first, chain.first + 2 * BLOCKS_BETWEEN)
    message = str(raised.value)
    assert message.endswith(".") and "\n" not in message
    assert f"even one block (block {chain.first + 1}:" in message, message
    assert raised.value.__cause__ is None
    # Halved from 64 down to 2 blocks, then the deployment block read and the faucet's refused.
    widths = [(end - start + 1, what) for start, end, what in limits.ranges]
    assert widths == [(w, "refused") for w in (64, 32, 16, 8, 4, 2)] + [(1, "ok"), (1, "refused")], widths


def test_http_413_is_a_size_limit_too(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.http_413_above = 600
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=1200)
    assert keys(reader.read(transfers(chain), chain.first, chain.last)) == keys(unbounded(chain))
    assert reader.span == 600


@pytest.mark.parametrize(
    ("error", "kind", "fragment"),
    [
        ({"code": -32005, "message": "daily request count exceeded, request rate limited"}, RpcRateLimited,
         "rate-limiting"),
        ({"code": -32000, "message": "leveldb: closed"}, NodeError, '"leveldb: closed"'),
    ],
)  # fmt: skip
def test_other_errors_are_not_retried_and_read_as_one_sentence(
    chain: Chain, proxy: tuple[str, Limits], error: dict[str, Any], kind: type[NodeError], fragment: str
) -> None:
    url, limits = proxy
    limits.always = error
    reader = LogReader(Web3(Web3.HTTPProvider(url)), max_range=500)
    with pytest.raises(kind) as raised:
        reader.read(transfers(chain), chain.first, chain.last)
    assert fragment in str(raised.value) and str(raised.value).endswith(".")
    assert len(limits.ranges) == 1 and reader.span == 500, "neither retried nor narrowed"


def test_contract_events_are_read_and_decoded(chain: Chain, proxy: tuple[str, Limits]) -> None:
    url, limits = proxy
    limits.max_blocks = 300
    w3 = Web3(Web3.HTTPProvider(url))
    token = w3.eth.contract(address=chain.token.address, abi=chain.token.abi)
    reader = LogReader(w3, max_range=1000)
    events = reader.read_events(token.events.Transfer(), chain.first, chain.last)
    assert [e["args"]["value"] for e in events] == chain.amounts
    assert {e["args"]["to"] for e in events} == {dev_account(0).address}
    assert all(e["event"] == "Transfer" and e["args"]["from"] == "0x" + "00" * 20 for e in events)
    # Raw logs decode the same way with the event's own process_log.
    raw = reader.read(transfers(chain), chain.first, chain.last)
    assert [token.events.Transfer().process_log(log)["args"]["value"] for log in raw] == chain.amounts
    # An indexed argument narrows the query: no Transfer went to dev1.
    to_dev1 = "0x" + "00" * 12 + dev_account(1).address[2:].lower()
    assert reader.read_events(token.events.Transfer(), chain.first, chain.last, [None, to_dev1]) == []


def test_the_range_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, chain: Chain) -> None:
    monkeypatch.delenv(LOG_RANGE_ENV, raising=False)
    assert configured_log_range() == DEFAULT_LOG_RANGE == LogReader(chain.w3).max_range == 2000
    monkeypatch.setenv(LOG_RANGE_ENV, " 500 ")
    assert LogReader(chain.w3).max_range == 500
    assert LogReader(chain.w3, max_range=10).max_range == 10, "an explicit range wins"


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "1e3"])
def test_a_bad_configured_range_is_one_sentence(value: str) -> None:
    with pytest.raises(InputError) as raised:
        configured_log_range({LOG_RANGE_ENV: value})
    message = str(raised.value)
    assert message.startswith("COVE_LOG_RANGE must be a positive whole number of blocks") and repr(value) in message
    assert message.endswith(".") and "\n" not in message


def test_a_filter_carrying_its_own_range_is_refused(chain: Chain) -> None:
    with pytest.raises(ValueError, match="from_block and to_block"):
        LogReader(chain.w3).read({**transfers(chain), "fromBlock": 0}, 0, 10)
