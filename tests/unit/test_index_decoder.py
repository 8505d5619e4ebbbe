"""The index's event decoder against web3's `process_log` on shapes Cove's events do not all
use yet (indexed strings, structs with arrays, arrays of structs); the hub's and ComputeJobs'
own events are compared on a real chain in tests/integration/test_index_listing.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3

from exchange.index import _EventDecoder, _jsonable

WHO = "0x" + "ab" * 20
ABI: dict[str, Any] = {"type": "event", "name": "E", "anonymous": False, "inputs": [
    {"indexed": True, "name": "who", "type": "address"},
    {"indexed": True, "name": "tag", "type": "string"},
    {"indexed": False, "name": "pair", "type": "tuple",
     "components": [{"name": "a", "type": "uint64[2]"}, {"name": "b", "type": "address"}]},
    {"indexed": False, "name": "list", "type": "tuple[]", "components": [{"name": "x", "type": "bool"}]},
    {"indexed": False, "name": "note", "type": "string"},
]}  # fmt: skip


def _log(topics: list[bytes], data: bytes) -> dict[str, Any]:
    return {"address": Web3.to_checksum_address("0x" + "11" * 20), "topics": [HexBytes(t) for t in topics],
            "data": HexBytes(data), "blockNumber": 1, "transactionHash": HexBytes(b"\0" * 32), "logIndex": 0,
            "transactionIndex": 0, "blockHash": HexBytes(b"\0" * 32), "removed": False}  # fmt: skip


def test_the_decoder_gives_what_web3_gives() -> None:
    event = Web3().eth.contract(address="0x" + "11" * 20, abi=[ABI]).events.E()
    topic = keccak(text="E(address,string,(uint64[2],address),(bool)[],string)")
    data = encode(["(uint64[2],address)", "(bool)[]", "string"], [([1, 2**63], WHO), [(True,), (False,)], "ε ✓"])
    log = _log([topic, encode(["address"], [WHO]), keccak(text="hi")], data)
    theirs = dict(event.process_log(log)["args"])
    ours = _EventDecoder(ABI).args(log)
    assert list(ours) == list(theirs)
    assert json.dumps(_jsonable(ours)) == json.dumps(_jsonable(theirs))
    assert ours["who"] == Web3.to_checksum_address(WHO) and ours["tag"] == keccak(text="hi")


def test_a_log_with_the_wrong_number_of_topics_is_refused() -> None:
    with pytest.raises(ValueError, match="1 indexed topics, not 2"):
        _EventDecoder(ABI).args(_log([b"\0" * 32, b"\0" * 32], b""))
