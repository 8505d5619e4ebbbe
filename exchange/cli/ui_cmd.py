"""`cove ui`: the read-only market page, served on this machine."""

from __future__ import annotations

import sys
import time
from json import dumps

import typer

from exchange.cli.options import HomeOption, JsonOption, RpcOption, chain_command, open_client
from exchange.cli.output import console
from exchange.errors import InputError

DEFAULT_UI_PORT = 8750


@chain_command
def ui(
    port: int = typer.Option(DEFAULT_UI_PORT, "--port", "-p", min=0, max=65535, help="Port to serve on (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback makes the page public."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Serve the read-only market page: datasets, ledgers, jobs and provenance checks, from
    the chain and content alone (no key). Stop it with Ctrl-C."""
    from exchange.http_server import HttpServer, build_app
    from exchange.ui import MarketPage

    client = open_client(home, rpc, None, needs_account=False)
    page = MarketPage(client)
    try:
        server = HttpServer(build_app(page.routes()), host=host, port=port)
    except OSError as error:
        raise InputError(f"Cannot serve on {host}:{port} ({error.strerror}); pass another --port or --host.") from None
    server.start()
    if json:
        # One line, flushed: a script reads it to learn the URL while the page keeps serving.
        sys.stdout.write(dumps({"url": server.url, "chain_id": client.deployment.chain_id, "hub": client.deployment.cove}) + "\n")
        sys.stdout.flush()
    else:
        console.print(f"Serving the market page at [bold]{server.url}[/bold] (chain {client.deployment.chain_id}); Ctrl-C stops it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
