"""What any JSON-RPC node's error means, in one sentence.

Nodes disagree on where a revert's data goes: anvil and geth answer code 3 with the data
in `error.data`; Hardhat 2 nests it in `error.data.data` and repeats it in the message as
"return data: 0x…"; Ganache 7 puts it in `error.data.result` for eth_estimateGas (and on
eth_sendRawTransaction puts the transaction hash there instead); Ganache 6 keys it by
transaction hash (`error.data["0x…"].return`); client libraries wrap all of these again
(`originalError`, `error.error`). `revert_data` finds it wherever it is, and `chain_error`
turns any node error into the Cove error a user sees: `TransactionReverted` decoded
against Cove's ABIs for a revert, otherwise one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import encode
from web3.exceptions import BadResponseFormat, ContractLogicError, TimeExhausted, Web3RPCError

from exchange.chain.reverts import describe_revert
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

_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
# Hardhat/EDR: "... reverted with an unrecognized custom error (return data: 0x…)".
_RETURN_DATA_IN_TEXT = re.compile(r"return data:\s*(0x(?:[0-9a-fA-F]{2})*)")
# anvil: "execution reverted: custom error 0xbf0742b2: 0000…" (the data without its 0x).
_CUSTOM_ERROR_IN_TEXT = re.compile(r"custom error (0x[0-9a-fA-F]{8})(?::\s*((?:[0-9a-fA-F]{2})*))?")
# Fields that hold revert data, most specific first; the rest of an object is searched after them.
_DATA_FIELDS = ("data", "result", "return", "returnData", "output", "revert", "originalError", "error", "cause")
# Fields that hold hex that is never revert data, or text searched only in the second pass.
_NOT_DATA_FIELDS = frozenset(
    {"hash", "txHash", "transactionHash", "programCounter", "program_counter", "code", "name",
     "stack", "message", "reason", "method", "params"}
)  # fmt: skip
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
_MAX_DEPTH = 8
_MAX_QUOTE = 200


def revert_data(error: object) -> str | None:
    """The revert data (0x-hex; "0x" for a revert without data) in any node's error, or None.

    `error` may be a web3 exception (ContractLogicError and subclasses, Web3RPCError), a
    JSON-RPC response or its `error` object, or a node's message text.
    """
    payload = _payload(error)
    found = list(_structured_hex(payload, 0)) + list(_hex_in_text(_texts(payload, 0)))
    if found:
        return next((data for data in found if data != "0x"), "0x")
    reason = _decoded_reason(payload, 0)
    if reason and any("revert" in text.lower() for text in _texts(payload, 0)):
        # Ganache 6 may give only the decoded Error(string) reason: encode it back.
        return "0x" + (_ERROR_STRING_SELECTOR + encode(["string"], [reason])).hex()
    return None


def rpc_error_object(error: object) -> dict[str, Any]:
    """The node's JSON-RPC `error` object (code, message, data) behind `error`, or {}."""
    payload = _payload(error)
    if isinstance(payload, str):
        return {"message": payload}
    if not isinstance(payload, dict):
        return {}
    inner = payload.get("error")
    if "code" in payload or "message" in payload or inner is None:
        return payload  # already the error object
    return inner if isinstance(inner, dict) else {"message": str(inner)}


def node_message(error: object) -> str:
    """The node's own message for `error`, on one line, without a trailing full stop."""
    body = rpc_error_object(error)
    message = body.get("message") if isinstance(body.get("message"), str) else None
    if message is None and isinstance(body.get("data"), dict) and isinstance(body["data"].get("message"), str):
        message = body["data"]["message"]
    if message is None:
        message = getattr(error, "message", None) or str(error)
    return " ".join(str(message).split()).rstrip(".")


def error_code(error: object) -> int | None:
    """The node's JSON-RPC error code, or the HTTP status of a refused request."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return int(error.response.status_code)
    code = rpc_error_object(error).get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def chain_error(error: object, doing: str = "the request") -> ChainError:
    """The Cove error a user sees for any node error: a decoded TransactionReverted for a
    revert, else a ChainError subclass with one sentence. `doing` names what was refused
    ("the transaction", "the log query") in the fallback sentence."""
    if isinstance(error, ChainError):
        return error
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return _http_error(error.response.status_code, error.response.text)
    if isinstance(error, requests.RequestException | ConnectionError | TimeoutError):
        return RpcUnreachable("The chain's JSON-RPC node stopped answering; check that it runs, then try again.")
    if isinstance(error, TimeExhausted):
        return ChainError("The node did not mine the transaction in time; it may still be mined, so check the "
                          "account's transactions before sending it again.")
    if isinstance(error, BadResponseFormat) and not (isinstance(raw := _payload(error), dict) and "error" in raw):
        return NodeError("The RPC node's answer is not valid JSON-RPC; check that the RPC URL is a node's.", "other")
    data = revert_data(error)
    if data and data != "0x" and error_code(error) != 4:  # code 4 carries a tx hash (geth's tx sync timeout)
        return describe_revert(data)
    message, code = node_message(error), error_code(error)
    for rule in _RULES:
        if rule.matches(message.lower(), code):
            return rule.build(message, code)
    if _looks_like_revert(error, message, code):
        return describe_revert(data or "0x")
    return NodeError(f"The node refused {doing}: {_quoted(message)}{_code_note(code)}.", "other", code)


def is_revert(error: object) -> bool:
    """True when `error` reports a revert (with or without data), not a node-side refusal."""
    return isinstance(chain_error(error), TransactionReverted)


def is_log_query_limit(error: object) -> bool:
    """True when a node refused eth_getLogs for too wide a block range or too many results."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return error.response.status_code == 413 or _matches_log_limit(_body_message(error.response.text).lower())
    message, code = node_message(error).lower(), error_code(error)
    if _matches_log_limit(message):
        return True
    # -32005 is "limit exceeded": a range or size limit unless it says it is a rate limit.
    return code == -32005 and not _RATE_LIMIT.matches(message, None)


# --- finding the revert data ------------------------------------------------------------


def _payload(error: object) -> Any:
    """The JSON-like payload an exception carries, or `error` itself."""
    if isinstance(error, Web3RPCError) and error.rpc_response:
        return dict(error.rpc_response)
    if isinstance(error, ContractLogicError):
        message = error.message or ""
        if isinstance(error.data, dict):  # web3 prefixed the node's own message: take it back off
            message = message.removeprefix("execution reverted: ")
        return {"message": message, "data": error.data}
    if isinstance(error, BadResponseFormat):  # e.g. an error without a code: web3 quotes it as a Python literal
        _, _, raw = str(error).partition("The raw response is: ")
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return {"message": str(error)}
    if isinstance(error, BaseException):
        first = error.args[0] if error.args else None
        if isinstance(first, dict):
            return first
        return {"message": str(error)}
    if isinstance(error, str) and error.lstrip().startswith("{"):
        try:
            return json.loads(error)
        except ValueError:
            return error
    return error


def _structured_hex(node: Any, depth: int) -> Iterator[str]:
    """Revert data held as a hex value: preferred fields first, then any nested object."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        if _HEX.fullmatch(node):
            yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from _structured_hex(item, depth + 1)
        return
    if not isinstance(node, dict):
        return
    hashes = {v.lower() for k, v in node.items() if k in ("hash", "txHash", "transactionHash") and isinstance(v, str)}
    others = [k for k in node if k not in _DATA_FIELDS and k not in _NOT_DATA_FIELDS]
    for key in [k for k in _DATA_FIELDS if k in node] + others:
        value = node[key]
        if isinstance(value, str) and value.lower() in hashes:
            continue  # Ganache 7 on eth_sendRawTransaction: `result` is the transaction hash
        if isinstance(value, str) and key in others:
            continue  # hex under an unknown name (an address, a block hash) is not revert data
        yield from _structured_hex(value, depth + 1)


def _texts(node: Any, depth: int) -> Iterator[str]:
    """Every message-like string in the payload."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item, depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key != "stack":
                yield from _texts(value, depth + 1)


def _hex_in_text(texts: Iterator[str]) -> Iterator[str]:
    for text in texts:
        if match := _RETURN_DATA_IN_TEXT.search(text):
            yield match.group(1)
        elif match := _CUSTOM_ERROR_IN_TEXT.search(text):
            yield match.group(1) + (match.group(2) or "")


def _decoded_reason(node: Any, depth: int) -> str | None:
    if depth > _MAX_DEPTH or not isinstance(node, dict | list):
        return None
    values = node.values() if isinstance(node, dict) else node
    if isinstance(node, dict) and isinstance(node.get("reason"), str) and node["reason"]:
        return str(node["reason"])
    return next((r for v in values if (r := _decoded_reason(v, depth + 1))), None)


def _looks_like_revert(error: object, message: str, code: int | None) -> bool:
    return isinstance(error, ContractLogicError) or code == 3 or "revert" in message.lower()


# --- phrasing everything else ------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """A kind of node error, recognised by its message (lower case) or code."""

    patterns: tuple[str, ...]
    codes: tuple[int, ...]
    build: Callable[[str, int | None], ChainError]

    def matches(self, message: str, code: int | None) -> bool:
        return (code is not None and code in self.codes) or any(re.search(p, message) for p in self.patterns)


_CURRENT_NODES = "anvil, Hardhat, geth/reth or a current L2 RPC"


def _evm_too_old(message: str, code: int | None) -> ChainError:
    return NodeIncompatible(
        "This node does not run the Cancun EVM that Cove's contracts need (live on Ethereum mainnet "
        f"since March 2024): it stopped on an opcode it does not know ({_quoted(message)}); "
        f"use a current node: {_CURRENT_NODES}.",
        "evm-too-old",
        code,
    )


def _unsupported_method(message: str, code: int | None) -> ChainError:
    method = re.search(r"\b((?:eth|net|web3|anvil|evm|hardhat|debug|txpool|ganache)_[A-Za-z0-9]+)", message)
    name = method.group(1) if method else "a JSON-RPC method Cove needs"
    local = method is not None and method.group(1).split("_")[0] in ("anvil", "evm", "hardhat", "ganache")
    hint = (
        "it is a local development chain's method, so this works only on a local chain such as `cove chain up`"
        if local
        else f"use a node that offers it ({_CURRENT_NODES})"
    )
    return NodeIncompatible(f"This node does not support {name}; {hint}.", "unsupported-method", code)


def _rate_limited(message: str, code: int | None) -> ChainError:
    return RpcRateLimited(
        f"The RPC provider is rate-limiting requests ({_quoted(message)}); wait a minute and try again, "
        "or use an RPC URL with a higher limit (your own API key or node).",
        "rate-limited",
        code,
    )


def _unauthorized(message: str, code: int | None) -> ChainError:
    return RpcUnauthorized(
        f"The RPC provider refused access ({_quoted(message)}); check the API key in the RPC URL "
        "(--rpc or COVE_RPC_URL) and that it may use this network.",
        "unauthorized",
        code,
    )


def _insufficient_funds(message: str, code: int | None) -> ChainError:
    return TransactionRefused(
        "The account has not enough of the chain's native currency to pay for this transaction's gas; "
        "fund it and try again (on the local chain, use a dev account).",
        "insufficient-funds",
        code,
    )


def _nonce(message: str, code: int | None) -> ChainError:
    return TransactionRefused(
        f"The node refused the transaction's nonce ({_quoted(message)}): another transaction from this account "
        "is pending or was just mined; wait for it to be mined, then try again.",
        "nonce",
        code,
    )


def _fee(message: str, code: int | None) -> ChainError:
    return TransactionRefused(
        f"The node wants a higher fee than the transaction offers ({_quoted(message)}); try again "
        "(Cove asks the node for its current fee each time).",
        "fee",
        code,
    )


def _gas(message: str, code: int | None) -> ChainError:
    return TransactionRefused(
        f"The node refused the transaction's gas limit ({_quoted(message)}); let Cove estimate the gas, "
        "or use a chain whose block gas limit fits the transaction.",
        "gas",
        code,
    )


def _out_of_gas(message: str, code: int | None) -> ChainError:
    return TransactionRefused(
        f"The transaction ran out of gas ({_quoted(message)}); send it again with a higher gas limit.", "gas", code
    )


def _too_many_logs(message: str, code: int | None) -> ChainError:
    return LogQueryLimited(
        f"The node refuses log queries this large ({_quoted(message)}); set COVE_LOG_RANGE to fewer blocks "
        "(e.g. 500) or use an RPC URL without this limit.",
        "too-many-logs",
        code,
    )


# Providers' words for an eth_getLogs range or size cap (Alchemy, Infura, QuickNode, Ankr, ...).
_LOG_LIMIT_PATTERNS = (
    r"block range", r"range (is )?too (wide|large)", r"range exceeds", r"range limit", r"limited to .*range",
    r"blocks distance", r"more than \d+ (results|logs)", r"exceeds? max results", r"too many (logs|results|blocks)",
    r"log response size", r"response size", r"response too large", r"payload too large", r"result set too large",
    r"query timeout exceeded",
)  # fmt: skip

# Each kind of refusal as nodes and providers word it (lower case), with its JSON-RPC codes.
_EVM_TOO_OLD = (
    r"invalid opcode", r"opcode 0x[0-9a-f]+ not defined", r"undefined opcode", r"unsupported opcode",
    r"unknown opcode", r"bad instruction", r"invalid instruction",
)  # fmt: skip
_RATE_LIMITED = (
    r"rate.?limit", r"too many requests", r"compute units per second", r"request limit reached",
    r"daily request count", r"exceeded .*(quota|capacity)", r"throughput", r"credits? (limit|exhausted)",
)  # fmt: skip
_UNAUTHORIZED = (
    r"unauthori[sz]ed", r"must be authenticated", r"invalid (api|project) (key|id)", r"api key",
    r"project id", r"forbidden", r"authentication", r"access denied",
)  # fmt: skip
_NO_FUNDS = (r"insufficient funds", r"enough funds", r"insufficient balance")
_NONCE = (
    r"nonce too (low|high)", r"nonce has already been used", r"replacement (transaction )?underpriced",
    r"already known", r"known transaction", r"invalid nonce", r"nonce.*(expected|lower)",
)  # fmt: skip
_FEE = (
    r"underpriced", r"max fee per gas less than block base fee", r"fee ?cap", r"gas price too low",
    r"tip (is )?(too low|above)",
)  # fmt: skip
_GAS_LIMIT = (
    r"intrinsic gas", r"requires at least \d+ gas", r"gas limit", r"gas cap", r"exceeds block gas",
    r"gas required exceeds",
)  # fmt: skip
_NO_METHOD = (
    r"method not found", r"does not exist/is not available", r"method .* (is )?not supported",
    r"unsupported method", r"method not allowed", r"not whitelisted", r"unknown method",
)  # fmt: skip

_RATE_LIMIT = _Rule(_RATE_LIMITED, (429,), _rate_limited)
# In order: the first that matches phrases the error.
_RULES: tuple[_Rule, ...] = (
    _Rule(_EVM_TOO_OLD, (), _evm_too_old),
    _RATE_LIMIT,
    _Rule(_UNAUTHORIZED, (401, 403), _unauthorized),
    _Rule(_LOG_LIMIT_PATTERNS, (413,), _too_many_logs),
    _Rule(_NO_FUNDS, (-38014,), _insufficient_funds),
    _Rule(_NONCE, (-38010, -38011), _nonce),
    _Rule(_FEE, (), _fee),
    _Rule((r"out of gas",), (), _out_of_gas),
    _Rule(_GAS_LIMIT, (-38013, -38015), _gas),
    _Rule(_NO_METHOD, (-32601, -32004), _unsupported_method),
)


def _matches_log_limit(message: str) -> bool:
    return "invalid block range" not in message and any(re.search(p, message) for p in _LOG_LIMIT_PATTERNS)


def _http_error(status: int, body: str) -> ChainError:
    text = _body_message(body) or f"HTTP {status}"
    if status == 429:
        return _rate_limited(text, status)
    if status in (401, 403):
        return _unauthorized(text, status)
    if status == 413:
        return _too_many_logs(text, status)
    if status == 404:
        return RpcUnreachable("There is no JSON-RPC endpoint at this URL (HTTP 404); check the RPC URL's path.")
    if status >= 500:
        return RpcUnreachable(f"The RPC node failed (HTTP {status}); try again later or use another RPC URL.")
    return NodeError(f"The RPC node refused the request (HTTP {status}: {_quoted(text)}).", "other", status)


def _body_message(body: str) -> str:
    """The message in an HTTP error body: its JSON-RPC error message, else its first line."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:_MAX_QUOTE]
    return node_message(parsed) if isinstance(parsed, dict) else ""


def _quoted(message: str) -> str:
    """The node's message, short enough to sit inside a sentence."""
    text = " ".join(message.split()).rstrip(".")
    return f'"{text[:_MAX_QUOTE]}…"' if len(text) > _MAX_QUOTE else f'"{text}"'


def _code_note(code: int | None) -> str:
    return f" (code {code})" if code is not None else ""

