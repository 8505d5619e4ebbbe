"""`cove gov deploy|propose|proposals|vote|delegate|queue|execute`: consortium governance."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from exchange.cli.options import AccountOption, HomeOption, JsonOption, RpcOption, chain_command, layout, open_client
from exchange.cli.output import console, print_json, success, table
from exchange.errors import InputError

# exchange.governance (web3, the consortium contracts) is imported by each command when it runs.

app = typer.Typer(help="Govern datasets by a consortium's vote (Governor + timelock).", no_args_is_help=True)
ConsortiumOption = typer.Option(None, "--consortium", "-c", help="Consortium: its name in this home, or its governor's address (default: the only one this home knows).")


def _book(home):  # type: ignore[no-untyped-def]
    from exchange.governance import ConsortiumBook

    return ConsortiumBook(layout(home).deployments)


def _consortium(client, home, consortium: str | None):  # type: ignore[no-untyped-def]
    from exchange.governance import find_consortium

    return find_consortium(client, _book(home), consortium)


@app.command("deploy")
@chain_command
def deploy_cmd(
    name: str = typer.Option(..., "--name", help="The consortium's name."),
    member: list[str] = typer.Option(..., "--member", help="ADDRESS=VOTES (repeatable)."),
    voting_delay: int = typer.Option(60, "--voting-delay", help="Seconds from proposal to voting."),
    voting_period: int = typer.Option(3600, "--voting-period", help="Seconds voting stays open."),
    timelock_delay: int = typer.Option(600, "--timelock-delay", help="Seconds between queue and execute."),
    quorum: int = typer.Option(30, "--quorum", help="Quorum, percent of all voting power."),
    threshold: int = typer.Option(1, "--threshold", help="Votes needed to propose."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Deploy a consortium: membership token (votes), timelock and governor."""
    from exchange.governance import deploy_consortium, parse_members

    members = parse_members(member)
    session = open_client(home, rpc, account).session
    with console.status("deploying the consortium..."):
        consortium = deploy_consortium(
            session, _book(home), name=name, members=members, voting_delay=voting_delay,
            voting_period=voting_period, min_delay=timelock_delay, quorum_percent=quorum, threshold=threshold,
        )  # fmt: skip
    if json:
        print_json(consortium.model_dump())
    else:
        success(f"consortium {name!r}: governor {consortium.governor}, timelock {consortium.timelock}")
        console.print(f"  publish governed datasets with `cove publish … --governed-by {name}`; members on other "
                      f"machines name it with `--consortium {consortium.governor}`")


def _parse_sets(values: list[str]) -> dict[str, str]:
    changes = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep:
            raise InputError(f"--set takes KEY=VALUE, not {value!r}.")
        changes[key.strip().replace("-", "_")] = setting.strip()
    return changes


@app.command("propose")
@chain_command
def propose_cmd(
    dataset_id: int = typer.Option(..., "--dataset", help="The governed dataset."),
    sets: list[str] = typer.Option(..., "--set", help="KEY=VALUE: a policy field (budget, per_job_cap, price, ...), runner, paused or controller."),
    description: str = typer.Option(..., "--description", help="What the proposal does and why."),
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Propose changes to a governed dataset; invalid policies are refused now, not at execution."""
    from exchange.governance import build_actions, proposal_number, propose

    client = open_client(home, rpc, account)
    found = _consortium(client, home, consortium)
    actions = build_actions(client, found, dataset_id, _parse_sets(sets))
    proposal_id = propose(client, found, actions, description)
    number = proposal_number(client, found, proposal_id)
    if json:
        print_json({"number": number, "proposal_id": str(proposal_id), "actions": [a.summary for a in actions]})
    else:
        success(f"proposal #{number} created: " + "; ".join(a.summary for a in actions))
        console.print(f"  members vote on it with `cove gov vote {number} for|against|abstain`")


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


@app.command("proposals")
@chain_command
def proposals_cmd(
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Proposals with their state, votes, quorum and deadlines."""
    from exchange.governance import proposals

    client = open_client(home, rpc, None, needs_account=False)
    found = proposals(client, _consortium(client, home, consortium))
    if json:
        print_json([{**p.__dict__, "proposal_id": str(p.proposal_id)} for p in found])
        return
    # The short number is what vote, queue and execute take; the full id is in --json.
    rows = [[str(p.number), p.state, f"{p.votes_for:g}", f"{p.votes_against:g}", f"{p.votes_abstain:g}",
             f"{p.quorum:g}", _when(p.vote_start), _when(p.vote_end), _when(p.eta), p.description[:40]] for p in found]  # fmt: skip
    console.print(table("Proposals (times UTC)", ["#", "state", "for", "against", "abstain", "quorum",
                                                   "voting starts", "voting ends", "executable", "description"], rows))  # fmt: skip


ProposalArgument = typer.Argument(..., help="The proposal: its number (the # of `cove gov proposals`) or its full id.")


@app.command("vote")
@chain_command
def vote_cmd(
    proposal: str = ProposalArgument,
    choice: str = typer.Argument(..., help="for, against or abstain."),
    reason: str = typer.Option("", "--reason", help="Why (public, on-chain)."),
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Vote on an active proposal."""
    from exchange.governance import vote

    client = open_client(home, rpc, account)
    found = vote(client, _consortium(client, home, consortium), proposal, choice, reason)
    _done(json, f"{client.session.sender} voted {choice} on proposal #{found.number}", voter=client.session.sender,
          number=found.number, proposal_id=str(found.proposal_id), choice=choice)  # fmt: skip


@app.command("delegate")
@chain_command
def delegate_cmd(
    to: str = typer.Argument(..., help="Address to delegate your votes to (yourself to vote directly)."),
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Delegate your voting power (it counts from the next proposal's snapshot on)."""
    from exchange.governance import delegate

    client = open_client(home, rpc, account)
    delegate(client, _consortium(client, home, consortium), to)
    _done(json, f"{client.session.sender} delegated to {to}", delegator=client.session.sender, delegate=to)


def _run_step(step, proposal: str, consortium: str | None, home, rpc, account):  # type: ignore[no-untyped-def]
    client = open_client(home, rpc, account)
    return step(client, _consortium(client, home, consortium), proposal)


def _done(json: bool, message: str, **fields: object) -> None:
    if json:
        print_json(fields)
    else:
        success(message)


@app.command("queue")
@chain_command
def queue_cmd(
    proposal: str = ProposalArgument,
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Queue a passed proposal in the timelock."""
    from exchange.governance import queue

    found = _run_step(queue, proposal, consortium, home, rpc, account)
    _done(json, f"proposal #{found.number} queued; execute it once the timelock delay has passed",
          number=found.number, proposal_id=str(found.proposal_id), state="queued")  # fmt: skip


@app.command("execute")
@chain_command
def execute_cmd(
    proposal: str = ProposalArgument,
    consortium: str | None = ConsortiumOption,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Execute a queued proposal after the timelock delay."""
    from exchange.governance import execute

    found = _run_step(execute, proposal, consortium, home, rpc, account)
    _done(json, f"proposal #{found.number} executed", number=found.number, proposal_id=str(found.proposal_id),
          state="executed")  # fmt: skip
