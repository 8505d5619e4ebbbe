"""`CoveClient`: one object holding the chain session, the deployment, content and the index.

The CLI builds one per command; the SDK user builds one per notebook. Operations live in
their own modules (publish, market, catalog, jobs) and take a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from exchange.chain.deployment import Deployment, find_deployment
from exchange.chain.session import ChainSession, connect
from exchange.errors import InputError
from exchange.content import ContentSources
from exchange.index import EventIndex
from exchange.networks import checked_http_url
from exchange.paths import HomeLayout, cove_home
from exchange.storage import LocalDirectoryStore

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract

    from exchange.connection import Target


@dataclass
class CoveClient:
    session: ChainSession
    deployment: Deployment
    store: LocalDirectoryStore  # this home's cache of content (and the owner's published documents)
    home: HomeLayout
    gateways: tuple[str, ...] = ()
    log_range: int | None = None
    content: ContentSources = field(init=False)
    # A token's symbol and decimals, read once: listings name a few tokens many times over.
    _token_facts: dict[tuple[str, str], int | str] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.content = ContentSources(self.store, self.gateways)

    @classmethod
    def open(
        cls,
        rpc_url: str,
        account: LocalAccount | None = None,
        home: Path | str | None = None,
        store: LocalDirectoryStore | None = None,
        *,
        hub: str | None = None,
        gateways: Sequence[str] = (),
        log_range: int | None = None,
    ) -> CoveClient:
        """Connects to `rpc_url` and finds the Cove hub there: `hub`, else the one this home
        recorded for the chain (NotDeployed when there is none or it is not a hub)."""
        layout = HomeLayout(cove_home(home))
        session = ChainSession(connect(rpc_url), account)
        deployment = find_deployment(layout.deployments, session, hub)
        return cls(session, deployment, store or LocalDirectoryStore(layout.storage), layout, tuple(gateways), log_range)

    @classmethod
    def for_target(cls, target: Target, account: LocalAccount | None = None, home: Path | str | None = None) -> CoveClient:
        return cls.open(target.rpc, account, home, hub=target.hub, gateways=target.gateways, log_range=target.log_range)

    @cached_property
    def cove(self) -> Contract:
        return self.session.contract("Cove", self.deployment.cove)

    @cached_property
    def jobs(self) -> Contract:
        """ComputeJobs, deployed by the hub's constructor."""
        return self.session.contract("ComputeJobs", self.deployment.compute_jobs)

    def erc20(self, address: str) -> Contract:
        # The test token's ABI is a superset of ERC-20 + EIP-2612 + EIP-5267.
        return self.session.contract("TestPaymentToken", address)

    def datatoken(self, address: str) -> Contract:
        return self.session.contract("Datatoken", address)

    @cached_property
    def index(self) -> EventIndex:
        return EventIndex(self.home.index, self.session, self.deployment, self.cove, self.jobs, self.log_range)

    def token_decimals(self, address: str | None) -> int:
        if address is None:
            return 18
        key = (address.lower(), "decimals")
        if key not in self._token_facts:
            self._token_facts[key] = int(self.session.call(self.erc20(address).functions.decimals()))
        return int(self._token_facts[key])

    def token_symbol(self, address: str | None) -> str:
        if address is None:
            return "free"
        key = (address.lower(), "symbol")
        if key not in self._token_facts:
            self._token_facts[key] = str(self.session.call(self.erc20(address).functions.symbol()))
        return str(self._token_facts[key])

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock contracts compare deadlines against."""
        return int(self.session.w3.eth.get_block("latest")["timestamp"])

    def endpoint_of(self, runner: str | None) -> str | None:
        """The public endpoint `runner` published on-chain, if it is a usable http(s) URL."""
        if runner is None or int(runner, 16) == 0:
            return None
        url = str(self.session.call(self.cove.functions.endpointOf(runner)))
        if not url:
            return None
        try:
            return checked_http_url(url, "endpoint URL")
        except InputError:  # a runner's malformed URL is simply not a source
            return None

    def endpoints_of(self, runner: str | None) -> list[str]:
        endpoint = self.endpoint_of(runner)
        return [endpoint] if endpoint else []
