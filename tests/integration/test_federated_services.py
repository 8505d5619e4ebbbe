"""Flower's services as Cove starts them: on the address asked, stopped with their group."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.chain.anvil import free_loopback_port
from exchange.errors import InputError
from exchange.federated.aggregator import Aggregator
from exchange.federated.run import train_federated
from exchange.federated.services import port_open


def test_a_superlink_binds_the_address_asked_and_runners_are_told_the_public_one(tmp_path: Path) -> None:
    port = free_loopback_port()
    with Aggregator(tmp_path, "0x" + "11" * 32, listen=f"127.0.0.1:{port}", public_address="agg.example:9092") as agg:
        assert agg.port == port and port_open(port)
        assert agg.fleet_address == "agg.example:9092"  # what goes into the spec
        assert f'address = "127.0.0.1:{port}"' in (tmp_path / "flwr" / "config.toml").read_text()
        process = agg.service.process  # type: ignore[union-attr]
    assert process is not None and process.poll() is not None and not port_open(port)


def test_by_default_it_is_loopback_on_a_free_port(tmp_path: Path) -> None:
    with Aggregator(tmp_path, "0x" + "11" * 32) as agg:
        assert agg.fleet_address == f"127.0.0.1:{agg.port}" and port_open(agg.port)


@pytest.mark.parametrize("listen", ["9092", "http://0.0.0.0:9092", "0.0.0.0:99999"])
def test_a_bad_listen_address_is_refused_before_anything_runs(listen: str) -> None:
    with pytest.raises(InputError, match="--listen must be HOST:PORT"):
        train_federated(None, None, [1, 2], 2, listen=listen, aggregator_key="0x" + "11" * 32)  # type: ignore[arg-type]
