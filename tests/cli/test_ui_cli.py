"""`cove ui`'s refusals: each one sentence, before anything is served. (The page itself is
tested in a real browser by tests/e2e/test_market_page.py.)"""

from __future__ import annotations

import socket

import pytest

from exchange.chain.deployment import Deployment
from test_bad_input import UNREACHABLE, fails


def test_an_unreachable_rpc_is_one_sentence(cove) -> None:  # type: ignore[no-untyped-def]
    fails(cove("ui", "--rpc", UNREACHABLE, "--port", "0"), f"No Ethereum JSON-RPC node answers at {UNREACHABLE}")


@pytest.mark.chain
def test_a_port_in_use_is_a_user_mistake(cove, deployment: Deployment) -> None:  # type: ignore[no-untyped-def]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        message = fails(cove("ui", "--port", str(port)), f"Cannot serve on 127.0.0.1:{port}", "pass another --port", code=2)
    assert "in use" in message


def test_a_port_out_of_range_is_a_usage_error(cove) -> None:  # type: ignore[no-untyped-def]
    result = cove("ui", "--port", "70000")
    assert result.exit_code == 2 and "70000" in result.stderr and "Traceback" not in result.stderr
