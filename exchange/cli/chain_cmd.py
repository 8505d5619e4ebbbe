"""`cove chain up|down|status` and `cove deploy`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from exchange.chain.anvil import LOCAL_CHAIN_ID, LocalChain
from exchange.cli.options import chain_command, AccountOption, HomeOption, JsonOption, RpcOption, layout, resolve_rpc, target, unlock
from exchange.cli.output import console, fields, print_json, success
from exchange.errors import AccountError, ChainError, NotDeployed

if TYPE_CHECKING:
    from exchange.connection import Target

# The deployment and the chain session (web3) are imported by each command when it runs.

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
@chain_command
def status(home: HomeOption = None, rpc: RpcOption = None, json: JsonOption = False) -> None:
    """Show the chain Cove talks to: URL, chain id, head block, and the Cove hub there."""
    from exchange.chain.deployment import find_deployment
    from exchange.chain.session import ChainSession, connect

    info = LocalChain(layout(home).chain).running()
    try:
        where: Target | None = target(home, rpc)
    except ChainError:  # nothing named and no local chain: report just that
        where = None
    report: dict[str, object] = {"local_chain_running": info is not None, "rpc_url": where.rpc if where else None}
    if where is not None:
        session = ChainSession(connect(where.rpc))
        report |= {"chain_id": session.chain_id, "block": int(session.w3.eth.block_number)}
        try:
            deployment = find_deployment(layout(home).deployments, session, where.hub)
            report |= {"cove": deployment.cove, "compute_jobs": deployment.compute_jobs,
                       "deployment_block": deployment.block, "payment_token": deployment.payment_token}  # fmt: skip
        except NotDeployed as error:
            report |= {"cove": None, "problem": str(error)}
    if json:
        print_json(report)
    else:
        console.print(fields("Chain", [(k.replace("_", " "), v) for k, v in report.items()]))


@app.command()
@chain_command
def mine(
    blocks: int = typer.Option(1, "--blocks", min=1, help="Blocks to mine."),
    seconds: int = typer.Option(0, "--seconds", min=0, help="Seconds to move the clock forward first."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Move the local chain's time and mine blocks (to get through voting periods and delays)."""
    from exchange.chain.session import ChainSession, connect

    session = ChainSession(connect(resolve_rpc(home, rpc)))
    session.advance_time(seconds, blocks)
    block = session.w3.eth.get_block("latest")
    if json:
        print_json({"block": int(block["number"]), "timestamp": int(block["timestamp"])})
    else:
        success(f"mined {blocks} block(s); now block {block['number']} at {block['timestamp']}")


@chain_command
def deploy_command(
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    token: str | None = typer.Option(None, "--token", help="Default payment token of the hub: an existing ERC-20 (default: a new test token, tUSD, on the local chain; none elsewhere)."),
    redeploy: bool = typer.Option(False, "--redeploy", help="Deploy anew even if Cove is deployed here."),
    json: JsonOption = False,
) -> None:
    """Deploy a Cove hub (and a test payment token on the local chain); anyone can then use
    it knowing the RPC URL and the hub's address."""
    from exchange.chain.deployment import checked_hub_address, deploy, find_deployment, recorded_hub
    from exchange.chain.session import ChainSession, connect

    where = target(home, rpc)
    session = ChainSession(connect(where.rpc))
    directory = layout(home).deployments
    if not redeploy and where.hub is None and recorded_hub(directory, session.chain_id):
        try:
            existing = find_deployment(directory, session)
        except NotDeployed:
            existing = None
        if existing is not None:
            if json:
                print_json(existing.model_dump() | {"deployed_now": False})
            else:
                success(f"Cove is already deployed on chain {session.chain_id} at {existing.cove} (--redeploy to replace)")
            return
    local = session.chain_id == LOCAL_CHAIN_ID
    name = account or ("dev0" if local else None)
    if name is None:
        raise AccountError("Pass --account NAME (a keystore account with gas money) to pay for the deployment.")
    if token is not None:
        token = checked_hub_address(token)  # any address: the token need not be a hub
    session.account = unlock(home, name, session.chain_id)
    with console.status("deploying contracts..."):
        deployment = deploy(directory, session, token)
    if json:
        print_json(deployment.model_dump() | {"deployed_now": True})
        return
    success(f"Cove deployed on chain {deployment.chain_id} at {deployment.cove} (from block {deployment.block})")
    if deployment.payment_token and local and token is None:
        success(f"test payment token (tUSD) at {deployment.payment_token}")
    if not local:
        console.print(
            "Off the local chain there is no test token and no time travel (`cove faucet`, `cove chain mine`): "
            "price datasets in an existing ERC-20 with `cove publish … --price 5 --token 0x…`."
        )
    console.print(f"Others reach this hub with `--rpc {where.rpc} --hub {deployment.cove}` "
                  f"(or `cove network add NAME --rpc {where.rpc} --hub {deployment.cove}`).")  # fmt: skip
