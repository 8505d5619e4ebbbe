"""The owner's SuperNode: an outbound connection to the aggregator's SuperLink (as owners'
firewalls expect), serving tasks on a loopback Runtime API to the runner's own loop."""

from __future__ import annotations

from pathlib import Path

from exchange.chain.anvil import free_loopback_port
from exchange.federated.services import FlowerService, flower_command


def supernode(superlink: str, home: Path, *, max_wait_s: int = 60) -> tuple[FlowerService, str]:
    """(service, Runtime API address) of a SuperNode dialling `superlink` (host:port).

    `--isolation process`: the SuperNode starts no ClientApp; the runner's TaskLoop answers
    its tasks. `max_wait_s` bounds how long it keeps retrying an unreachable SuperLink.
    """
    runtime = free_loopback_port()
    argv = [
        flower_command("flower-supernode"), "--insecure",
        "--superlink", superlink,
        "--isolation", "process",
        "--host", "127.0.0.1", "--port", str(runtime),
        "--max-wait-time", str(max_wait_s),
    ]  # fmt: skip
    return FlowerService("SuperNode", argv, [runtime], home / "supernode.log", flwr_home=home / "flwr"), f"127.0.0.1:{runtime}"
