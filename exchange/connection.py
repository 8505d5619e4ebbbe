"""Which chain, which hub and which gateways a command talks to.

Explicit values (options, SDK arguments, then $COVE_RPC_URL, $COVE_HUB, $COVE_GATEWAYS) win
over a named network (`--network`, $COVE_NETWORK), which wins over this home's local chain
(`cove chain up`) and the hub `cove deploy` recorded for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.chain.anvil import LocalChain
from exchange.errors import ChainError
from exchange.networks import NetworkBook, checked_http_url
from exchange.paths import HomeLayout


@dataclass(frozen=True)
class Target:
    """Where to connect: an RPC URL, a hub (None: the one recorded for the chain), gateways."""

    rpc: str
    hub: str | None = None
    gateways: tuple[str, ...] = ()
    log_range: int | None = None
    network: str | None = None


def _env_list(name: str) -> list[str]:
    return [part for part in os.environ.get(name, "").replace(",", " ").split() if part]


def resolve_target(
    layout: HomeLayout,
    *,
    rpc: str | None = None,
    hub: str | None = None,
    network: str | None = None,
    gateways: Sequence[str] = (),
) -> Target:
    """The target of a command or SDK session (see the module doc for the order)."""
    rpc = rpc or os.environ.get("COVE_RPC_URL") or None
    hub = hub or os.environ.get("COVE_HUB") or None
    network = network or os.environ.get("COVE_NETWORK") or None
    given = [checked_http_url(g, "gateway URL") for g in (list(gateways) or _env_list("COVE_GATEWAYS"))]
    log_range = None
    if network is not None:
        named = NetworkBook(layout.networks).get(network)
        rpc, hub = rpc or named.rpc, hub or named.hub
        given = given or list(named.gateways)
        log_range = named.log_range
    if rpc is None:
        info = LocalChain(layout.chain).running()
        if info is None:
            raise ChainError(
                "No chain to talk to: pass --rpc URL and --hub ADDRESS (or --network NAME), "
                "or start the local chain with `cove chain up`."
            )
        rpc = info.rpc_url
    return Target(rpc=rpc, hub=hub, gateways=tuple(given), log_range=log_range, network=network)
