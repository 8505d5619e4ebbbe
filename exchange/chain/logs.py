"""eth_getLogs in bounded block ranges.

Public RPCs cap eth_getLogs: by block range (500, 2000, 10000 blocks...) or by result size
("query returned more than 10000 results", "Log response size exceeded", HTTP 413). A
`LogReader` asks for at most `max_range` blocks at a time and, when the node refuses a
range as too wide or too large, halves it (down to one block) and goes on; the narrower
range is kept for later reads, since a node's cap does not change. Any other node error
becomes a Cove ChainError sentence. Every refusal narrows the range, so a read makes at
most one request per chunk plus log2(max_range) retries, with no waiting between them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.exceptions import Web3RPCError
from web3.types import EventData, LogReceipt

from exchange.chain.rpc_errors import chain_error, is_log_query_limit, node_message
from exchange.errors import InputError, LogQueryLimited

LOG_RANGE_ENV = "COVE_LOG_RANGE"
DEFAULT_LOG_RANGE = 2000
# Infura and Alchemy name a range they would accept: "Try with this block range [0x1, 0x2]".
_SUGGESTED_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")


def configured_log_range(environ: Mapping[str, str] | None = None) -> int:
    """The largest block range per eth_getLogs request: $COVE_LOG_RANGE if set, else 2000."""
    raw = (os.environ if environ is None else environ).get(LOG_RANGE_ENV, "").strip()
    if not raw:
        return DEFAULT_LOG_RANGE
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(
            f"{LOG_RANGE_ENV} must be a positive whole number of blocks, not {raw!r}; "
            f"unset it to use {DEFAULT_LOG_RANGE}."
        )
    return int(raw)


class _RangeRefused(Exception):
    """The node refused a block range as too wide or too large."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LogReader:
    """Reads logs over any block range in chunks a node accepts."""

    def __init__(self, w3: Web3, max_range: int | None = None):
        if max_range is not None and max_range < 1:
            raise InputError(f"The log range must be at least one block, not {max_range}.")
        self.w3 = w3
        self.max_range = configured_log_range() if max_range is None else max_range
        self.span = self.max_range  # narrowed for good when the node refuses a range

    def chunks(
        self, filter_params: Mapping[str, Any], from_block: int, to_block: int
    ) -> Iterator[tuple[int, int, list[LogReceipt]]]:
        """(first block, last block, logs) for consecutive ranges covering [from_block,
        to_block], in block order, for a filter with `address` and/or `topics`."""
        if "fromBlock" in filter_params or "toBlock" in filter_params or "blockHash" in filter_params:
            raise ValueError("pass the block range as from_block and to_block, not in the filter")
        start = from_block
        while start <= to_block:
            end = min(to_block, start + self.span - 1)
            try:
                logs = self._get_logs(filter_params, start, end)
            except _RangeRefused as refused:
                self._narrow(start, end, refused.message)
                continue
            yield start, end, logs
            start = end + 1

    def read(self, filter_params: Mapping[str, Any], from_block: int, to_block: int) -> list[LogReceipt]:
        """Every log matching `filter_params` in [from_block, to_block], in chain order."""
        return [log for _, _, logs in self.chunks(filter_params, from_block, to_block) for log in logs]

    def read_events(
        self, event: ContractEvent, from_block: int, to_block: int, topics: Sequence[Any] = ()
    ) -> list[EventData]:
        """The decoded `event`s (e.g. `token.events.Transfer()`) of its contract in the range;
        `topics` optionally narrows the indexed arguments after the event's own topic."""
        filter_params = {"address": event.address, "topics": [event.topic, *topics]}
        return [event.process_log(log) for log in self.read(filter_params, from_block, to_block)]

    def _get_logs(self, filter_params: Mapping[str, Any], start: int, end: int) -> list[LogReceipt]:
        try:
            query = {**filter_params, "fromBlock": start, "toBlock": end}
            return list(self.w3.eth.get_logs(query))  # type: ignore[arg-type]
        except (Web3RPCError, requests.RequestException) as error:
            if is_log_query_limit(error):
                raise _RangeRefused(_refusal_text(error)) from None
            raise chain_error(error, "the log query") from None

    def _narrow(self, start: int, end: int, message: str) -> None:
        """Halves the span after a refusal of [start, end], or takes the node's own suggestion."""
        width = end - start + 1
        if width == 1:
            raise LogQueryLimited(
                f"The node refuses to return the logs of even one block (block {start}: {message}); "
                "use an RPC URL without this limit.",
                "too-many-logs",
            )
        suggested = _suggested_width(message, start)
        self.span = suggested if suggested is not None and suggested < width else max(1, width // 2)


def _refusal_text(error: Exception) -> str:
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}: {' '.join(error.response.text.split())[:200]}"
    return node_message(error)[:300]


def _suggested_width(message: str, start: int) -> int | None:
    """The width of the range the node suggested, when it starts where we asked."""
    match = _SUGGESTED_RANGE.search(message)
    if match is None:
        return None
    first, last = int(match.group(1), 16), int(match.group(2), 16)
    return last - start + 1 if first == start and last >= start else None
