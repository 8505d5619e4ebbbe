"""`cove network add|list|remove`: name a chain, its Cove hub and its gateways once."""

from __future__ import annotations

import typer

from exchange.cli.options import HomeOption, JsonOption, layout
from exchange.cli.output import console, print_json, success, table

# exchange.networks and the chain session (web3) are imported by each command when it runs.

app = typer.Typer(help="Named networks: an RPC URL, a Cove hub and IPFS gateways under one name.", no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Short name, e.g. sepolia or hospital-net."),
    rpc: str = typer.Option(..., "--rpc", help="The chain's JSON-RPC URL."),
    hub: str = typer.Option(..., "--hub", help="Address of the Cove hub on that chain."),
    gateway: list[str] | None = typer.Option(None, "--gateway", help="IPFS gateway to fetch content from (repeatable)."),
    log_range: int | None = typer.Option(None, "--log-range", help="Most blocks per eth_getLogs call (public RPCs cap it)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check now that the RPC answers and the hub is a Cove hub."),
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Name a network; then `--network NAME` (or COVE_NETWORK) stands for its RPC, hub and gateways."""
    from exchange.chain.deployment import read_deployment
    from exchange.chain.session import ChainSession, connect
    from exchange.networks import NetworkBook

    network = NetworkBook.validated(name, rpc, hub, gateway or [], log_range)
    detail = "not checked"
    if check:  # prove the values against the chain before writing anything
        deployment = read_deployment(ChainSession(connect(network.rpc)), network.hub)
        detail = f"chain {deployment.chain_id}, hub {deployment.cove} from block {deployment.block}"
    NetworkBook(layout(home).networks).save(name, network)
    if json:
        print_json({"name": name, **network.model_dump(mode="json")})
    else:
        success(f"network {name!r} saved ({detail}); use it with --network {name}")


@app.command("list")
def list_(home: HomeOption = None, json: JsonOption = False) -> None:
    """List the named networks."""
    from exchange.networks import NetworkBook

    networks = NetworkBook(layout(home).networks).all()
    if json:
        print_json([{"name": n, **v.model_dump(mode="json")} for n, v in sorted(networks.items())])
        return
    if not networks:
        console.print("no networks yet; add one with `cove network add NAME --rpc URL --hub ADDRESS`")
        return
    rows = [[n, v.rpc, v.hub, ", ".join(v.gateways) or "-", v.log_range or "-"] for n, v in sorted(networks.items())]
    console.print(table("Networks", ["name", "rpc", "hub", "gateways", "log range"], rows, whole={"hub"}))


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The network's name."), home: HomeOption = None, json: JsonOption = False) -> None:
    """Forget a named network (nothing on chain changes)."""
    from exchange.networks import NetworkBook

    NetworkBook(layout(home).networks).remove(name)
    if json:
        print_json({"removed": name})
    else:
        success(f"network {name!r} removed")
