"""The owner's node: an HTTP endpoint on the owner's premises for the content its runner serves.

It speaks the IPFS trustless gateway protocol over exactly the content the chain names for
its runner (`PublishedContent`), takes the owner's documents before they are published
(`/cove/v1/documents`), and announces its public URL on-chain (`setEndpoint`), so that a
buyer who knows only the chain finds it. A browser at `/` gets the read-only market page
(`exchange.ui`), each check on it labelled as the endpoint's own. It binds 127.0.0.1 unless told otherwise; a
public deployment puts it behind the owner's reverse proxy and names that as `public_url`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from compute_to_data.node.documents import Offers, documents_routes
from compute_to_data.node.gateway import gateway_routes
from compute_to_data.node.published import PublishedContent
from exchange.client import CoveClient
from exchange.errors import InputError
from exchange.http_server import HttpServer, build_app
from exchange.networks import checked_http_url
from exchange.ui import MarketPage

log = logging.getLogger("cove.node")

DEFAULT_PORT = 8740


@dataclass(frozen=True)
class Listen:
    """Where the node binds: host and port (0 picks a free one)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
            raise InputError(f"--listen takes HOST:PORT (for instance 127.0.0.1:{DEFAULT_PORT}), not {text!r}.")
        return cls(host.strip("[]"), int(port))


class OwnerNode:
    """The endpoint of one runner account, served from `client`'s home."""

    def __init__(self, client: CoveClient, runner: str, listen: Listen = Listen()):
        self.client = client
        self.runner = runner
        self.content = PublishedContent(client, runner)
        offers = Offers(client.home.root / "node" / "offers.sqlite", client.store)
        self.page = MarketPage(client, runner)
        market = [route for route in self.page.routes() if route.path != "/"]
        routes = [*gateway_routes(self.content), *documents_routes(offers), Route("/", self._front), *market]
        self.server = HttpServer(build_app(routes), host=listen.host, port=listen.port)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> OwnerNode:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def announce(self, public_url: str) -> bool:
        """Sets the runner's endpoint on-chain to `public_url` unless it is that already; the
        client must sign as the runner. Returns whether a transaction was sent."""
        url = checked_http_url(public_url, "public URL")
        cove = self.client.cove
        if self.client.session.sender.lower() != self.runner.lower():
            raise InputError(
                f"Only the runner {self.runner} can announce its endpoint; sign as that account (--account)."
            )
        if self.client.session.call(cove.functions.endpointOf(self.runner)) == url:
            return False
        self.client.session.transact(cove.functions.setEndpoint(url))
        return True

    async def _front(self, request: Request) -> Response:
        """The market page for a browser; for anything else, what this node is, as JSON."""
        if "text/html" in request.headers.get("accept", ""):
            return await self.page.index(request)
        deployment = self.client.deployment
        return JSONResponse({
            "service": "cove-node",
            "chain_id": deployment.chain_id,
            "hub": deployment.cove,
            "runner": self.runner,
            "protocols": ["ipfs-trustless-gateway"],
        })  # fmt: skip

    def __enter__(self) -> OwnerNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
