"""`CoveClient`: one object holding the chain session, the deployment, storage and the index.

The CLI builds one per command; the SDK user builds one per notebook. Operations live in
their own modules (publish, market, catalog) and take a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from exchange.chain.deployment import Deployment, load_deployment
from exchange.chain.session import ChainSession, connect
from exchange.index import EventIndex
from exchange.paths import HomeLayout, cove_home
from exchange.storage import ContentStore, LocalDirectoryStore


@dataclass
class CoveClient:
    session: ChainSession
    deployment: Deployment
    store: ContentStore
    home: HomeLayout

    @classmethod
    def open(
        cls,
        rpc_url: str,
        account: LocalAccount | None = None,
        home: Path | str | None = None,
        store: ContentStore | None = None,
    ) -> CoveClient:
        """Connects to `rpc_url` and finds Cove's deployment there (NotDeployed if absent)."""
        layout = HomeLayout(cove_home(home))
        session = ChainSession(connect(rpc_url), account)
        deployment = load_deployment(layout.deployments, session)
        return cls(session, deployment, store or LocalDirectoryStore(layout.storage), layout)

    @cached_property
    def cove(self) -> Contract:
        return self.session.contract("Cove", self.deployment.cove)

    @cached_property
    def jobs(self) -> Contract:
        """ComputeJobs, deployed by the hub's constructor."""
        return self.session.contract("ComputeJobs", self.session.call(self.cove.functions.computeJobs()))

    def erc20(self, address: str) -> Contract:
        # The test token's ABI is a superset of ERC-20 + EIP-2612 + EIP-5267.
        return self.session.contract("TestPaymentToken", address)

    def datatoken(self, address: str) -> Contract:
        return self.session.contract("Datatoken", address)

    @cached_property
    def index(self) -> EventIndex:
        return EventIndex(self.home.index, self.session, self.deployment, self.cove)

    def token_decimals(self, address: str | None) -> int:
        return 18 if address is None else int(self.session.call(self.erc20(address).functions.decimals()))

    def token_symbol(self, address: str | None) -> str:
        return "free" if address is None else str(self.session.call(self.erc20(address).functions.symbol()))
