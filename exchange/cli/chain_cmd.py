"""`cove chain up|down|status` and `cove deploy`."""

from __future__ import annotations

import typer

from exchange.chain.anvil import LOCAL_CHAIN_ID, LocalChain
from exchange.chain.deployment import deploy, deployment_file, load_deployment
from exchange.chain.session import ChainSession, connect
from exchange.cli.options import AccountOption, HomeOption, JsonOption, RpcOption, layout, resolve_rpc, unlock
from exchange.cli.output import console, fields, print_json, success
from exchange.errors import NotDeployed

app = typer.Typer(help="Start, stop and inspect the local anvil chain.", no_args_is_help=True)


@app.command()
def up(home: HomeOption = None, json: JsonOption = False) -> None:
    """Start the local chain (a no-op when it already runs); its state survives `down`."""
    chain = LocalChain(layout(home).chain)
    info, started = chain.up()
    if json:
        print_json({"rpc_url": info.rpc_url, "pid": info.pid, "started": started, "state_file": info.state_file})
    else:
        success(f"local chain {'started' if started else 'already running'} at {info.rpc_url}")


@app.command()
def down(home: HomeOption = None, json: JsonOption = False) -> None:
    """Stop the local chain, saving its state for the next `up`."""
    stopped = LocalChain(layout(home).chain).down()
    if json:
        print_json({"stopped": stopped})
    else:
        success("local chain stopped" if stopped else "no local chain was running")


@app.command()
def status(home: HomeOption = None, rpc: RpcOption = None, json: JsonOption = False) -> None:
    """Show the chain Cove talks to: URL, chain id, head block, deployment."""
    info = LocalChain(layout(home).chain).running()
    url = rpc or (info.rpc_url if info else None)
    report: dict[str, object] = {"local_chain_running": info is not None, "rpc_url": url}
    if url:
        session = ChainSession(connect(url))
        report |= {"chain_id": session.chain_id, "block": int(session.w3.eth.block_number)}
        try:
            report["cove"] = load_deployment(layout(home).deployments, session).cove
        except NotDeployed:
            report["cove"] = None
    if json:
        print_json(report)
    else:
        console.print(fields("Chain", [(k.replace("_", " "), v) for k, v in report.items()]))


@app.command()
def mine(
    blocks: int = typer.Option(1, "--blocks", min=1, help="Blocks to mine."),
    seconds: int = typer.Option(0, "--seconds", min=0, help="Seconds to move the clock forward first."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Move the local chain's time and mine blocks (to get through voting periods and delays)."""
    session = ChainSession(connect(resolve_rpc(home, rpc)))
    session.advance_time(seconds, blocks)
    block = session.w3.eth.get_block("latest")
    if json:
        print_json({"block": int(block["number"]), "timestamp": int(block["timestamp"])})
    else:
        success(f"mined {blocks} block(s); now block {block['number']} at {block['timestamp']}")


def deploy_command(
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    redeploy: bool = typer.Option(False, "--redeploy", help="Deploy anew even if Cove is deployed here."),
    json: JsonOption = False,
) -> None:
    """Deploy Cove's contracts (and a test payment token on the local chain)."""
    session = ChainSession(connect(resolve_rpc(home, rpc)))
    directory = layout(home).deployments
    if not redeploy and deployment_file(directory, session.chain_id).exists():
        try:
            existing = load_deployment(directory, session)
        except NotDeployed:
            existing = None
        if existing is not None:
            if json:
                print_json(existing.model_dump() | {"deployed_now": False})
            else:
                success(f"Cove is already deployed on chain {session.chain_id} at {existing.cove} (--redeploy to replace)")
            return
    name = account or ("dev0" if session.chain_id == LOCAL_CHAIN_ID else None)
    if name is None:
        typer.echo("Pass --account NAME to pay for the deployment.", err=True)
        raise typer.Exit(2)
    session.account = unlock(home, name, session.chain_id)
    with console.status("deploying contracts..."):
        deployment = deploy(directory, session)
    if json:
        print_json(deployment.model_dump() | {"deployed_now": True})
    else:
        success(f"Cove deployed on chain {deployment.chain_id} at {deployment.cove}")
        if deployment.payment_token:
            success(f"test payment token (tUSD) at {deployment.payment_token}")
