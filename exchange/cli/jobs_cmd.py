"""`cove train`, `cove jobs`, `cove fetch`, `cove verify`: compute jobs from the buyer's side.

The owner's side (`cove runner start`, `cove node start`) lives in compute_to_data and is
added to `cove` as a plugin.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from exchange.cli.options import chain_command, AccountOption, HomeOption, JsonOption, RpcOption, open_client
from exchange.cli.output import console, print_json, success, table
from exchange.errors import InputError, ProvenanceError
from exchange.units import delta_text

MAX_ROUNDS = 100  # exchange.ml.spec.MAX_ROUNDS (that module imports pandas; `cove --help` must not)
MAX_FEDERATION = 16  # FederatedRounds.MAX_JOBS
WAIT_DEFAULT_S = 900  # `cove train --wait`

if TYPE_CHECKING:
    from exchange.client import CoveClient
    from exchange.jobs import JobTicket


def _read_spec(path: Path):  # type: ignore[no-untyped-def]
    from exchange.ml.spec import ModelSpec

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"Cannot read the spec file {path}; check the path (UTF-8 JSON).") from None
    return ModelSpec.parse(text)


@chain_command
def train(
    dataset_ids: list[int] = typer.Option(
        ..., "--dataset",
        help="Dataset id; give it several times (--dataset 1 --dataset 2 ...) to train one model over them in --rounds.",
    ),
    spec_file: Path = typer.Option(..., "--spec", help="Model spec (JSON)."),
    rounds: int | None = typer.Option(
        None, "--rounds", help=f"Federated rounds over several datasets (1 to {MAX_ROUNDS}); each trains the spec's epochs."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until the runner completes or fails the job."),
    timeout: float | None = typer.Option(
        None, "--timeout",
        help="Seconds to wait with --wait (default: 900); for a federated run, for the whole run (default: from the rounds and the timeouts).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where a federated run writes its model (default: federation-ID.safetensors)."
    ),
    join_timeout: float = typer.Option(120, "--join-timeout", help="Seconds a federated run waits for every runner to join."),
    stage_timeout: float = typer.Option(
        120, "--stage-timeout", help="Seconds a federated round waits for the runners' replies to each SecAgg+ key stage."
    ),
    train_timeout: float = typer.Option(
        600, "--train-timeout", help="Seconds a federated round waits for the runners to train and send their updates."
    ),
    listen: str | None = typer.Option(
        None, "--listen", help="HOST:PORT the federated run's Flower SuperLink binds (default: 127.0.0.1, a free port).",
    ),
    public_address: str | None = typer.Option(
        None, "--public-address", help="HOST:PORT the runners dial to join (default: the --listen address).",
    ),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Ask the dataset's runner to train a model: spends one credit, reserves the job's ε.

    With several --dataset and --rounds, this machine aggregates one model over all of them (Flower with SecAgg+): one job and one credit per dataset, each charged for every round.
    """
    federated = _federated_arguments(dataset_ids, rounds)
    spec = _read_spec(spec_file)
    if federated:
        _train_federated(
            dataset_ids, spec, rounds or 1, out, home, rpc, account, json, timeout=timeout, join_timeout=join_timeout,
            stage_timeout=stage_timeout, train_timeout=train_timeout, listen=listen, public_address=public_address,
        )  # fmt: skip
        return
    from exchange.jobs import request_job, wait_for

    [dataset_id] = dataset_ids
    with console.status("connecting to the chain...") as progress:
        client = open_client(home, rpc, account)
        progress.update("pricing the job's privacy and requesting it...")
        ticket = request_job(client, dataset_id, spec)
        status = None
        if wait:
            progress.update(f"job #{ticket.job_id}: waiting for the runner...")
            status = wait_for(client, ticket.job_id, timeout=WAIT_DEFAULT_S if timeout is None else timeout).status
        progress.update(f"job #{ticket.job_id}: computing its tight ε (information only)...")
        tight, why = _tight_figures(client, dataset_id, ticket)
    if json:
        print_json({**ticket.__dict__, "status": status, "tight": tight, "tight_unavailable": why})
        return
    success(
        f"job #{ticket.job_id} requested: it spends ε {ticket.epsilon:g}; dataset #{dataset_id} will have spent "
        f"ε {ticket.composed_epsilon:g} (gas {ticket.gas_used:,})"
    )
    if tight:
        console.print(f"  tight ε {tight['epsilon']:.3g} for the job, {tight['composed_epsilon']:.3g} for the dataset, "
                      f"at δ {delta_text(tight['delta'])} ({tight['accountant']}; {tight['note']})", highlight=False)  # fmt: skip
    else:
        console.print(f"  no tight ε: {escape(why or '')}", highlight=False)
    if status:
        console.print(f"job #{ticket.job_id} is {status}" + ("; get it with `cove fetch`" if status == "completed" else ""))


def _federated_arguments(dataset_ids: list[int], rounds: int | None) -> bool:
    """Whether `cove train` was asked for a federated run; InputError for arguments that do not fit."""
    seen: set[int] = set()
    for dataset_id in dataset_ids:
        if dataset_id in seen:
            raise InputError(f"Dataset #{dataset_id} is given twice; give each --dataset once.")
        seen.add(dataset_id)
    if rounds is not None and not 1 <= rounds <= MAX_ROUNDS:
        raise InputError(f"--rounds must be between 1 and {MAX_ROUNDS}, not {rounds}.")
    if len(dataset_ids) == 1:
        if rounds is not None:
            raise InputError(
                "--rounds trains one model over several datasets; give two or more --dataset, or leave --rounds out."
            )
        return False
    if rounds is None:
        raise InputError(
            f"Training over {len(dataset_ids)} datasets needs --rounds (1 to {MAX_ROUNDS}): how many federated rounds to run."
        )
    if len(dataset_ids) > MAX_FEDERATION:
        raise InputError(f"A federation trains on at most {MAX_FEDERATION} datasets, not {len(dataset_ids)}.")
    return True


def _train_federated(
    dataset_ids: list[int], spec: Any, rounds: int, out: Path | None, home: Path | None, rpc: str | None,
    account: str | None, json: bool, **run: Any,
) -> None:  # fmt: skip
    """`cove train --dataset A --dataset B ... --rounds R`: this machine is the aggregator."""
    from exchange.federated.run import train_federated

    with console.status("connecting to the chain...") as progress:
        client = open_client(home, rpc, account)

        def on_round(round_number: int, digest: bytes) -> None:
            if not json:
                console.print(f"  round {round_number}/{rounds} committed: model 0x{digest.hex()}", highlight=False)
            progress.update(f"round {round_number}/{rounds} committed; training round {round_number + 1}..."
                            if round_number < rounds else "every round committed; checking them...")  # fmt: skip

        result = train_federated(
            client, spec, dataset_ids, rounds, on_round=on_round, on_status=progress.update, **run,
        )  # fmt: skip
        target = out or Path(f"federation-{result.federation_id}.safetensors")
        target.write_bytes(result.model_file())
    if json:
        print_json(result.to_dict() | {"model_file": str(target)})
        return
    ticket = result.ticket
    rows = [[f"#{j.dataset_id}", f"#{j.job_id}", f"{j.epsilon:g}", f"{j.composed_epsilon:g}"] for j in ticket.jobs]
    console.print(table(f"Federation #{ticket.federation_id}: {ticket.rounds} rounds, aggregated by {ticket.aggregator}",
                        ["dataset", "job", "ε of the job", "dataset's ε spent"], rows))  # fmt: skip
    digests = [[0, "0x" + ticket.initial_digest.hex()]]
    digests += [[r, "0x" + d.hex()] for r, d in enumerate(result.round_digests, start=1)]
    console.print(table("Model digests, each checked against the chain", ["round", "model digest"], digests))
    success(
        f"federation #{ticket.federation_id} trained {ticket.rounds} rounds over {len(ticket.jobs)} datasets "
        f"(gas {ticket.gas_used:,}); model written to {target} (load it with exchange.ml.weights.load_model_file)"
    )


def _tight_figures(client: CoveClient, dataset_id: int, ticket: JobTicket) -> tuple[dict[str, Any] | None, str | None]:
    """The job's and the dataset's ε from the tight accountant (information only), or why there are none."""
    from exchange.ml.tight_accounting import NOT_ENFORCED, tight_or_reason
    from exchange.sdk.ledger import charged_mechanisms

    releases = charged_mechanisms(client, dataset_id)  # the ledger's, this job last
    delta = ticket.delta
    alone, why = tight_or_reason(releases[-1:], delta)
    composed, _ = tight_or_reason(releases, delta)
    if alone is None or composed is None:
        return None, why
    return {"epsilon": alone.epsilon, "composed_epsilon": composed.epsilon, "delta": delta,
            "accountant": alone.source, "note": NOT_ENFORCED}, None  # fmt: skip


@chain_command
def jobs(
    everyone: bool = typer.Option(False, "--all", help="Every job, not only yours."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """List compute jobs and their state."""
    from exchange.jobs import list_jobs

    client = open_client(home, rpc, account, needs_account=not everyone)
    found = list_jobs(client, None if everyone else client.session.sender)
    if json:
        print_json([{k: v for k, v in j.__dict__.items() if not isinstance(v, bytes)} for j in found])
        return
    rows = [[j.job_id, j.dataset_id, j.status, j.consumer, j.runner or "-",
             datetime.fromtimestamp(j.deadline, UTC).strftime("%Y-%m-%d %H:%M")] for j in found]  # fmt: skip
    console.print(table("Jobs", ["job", "dataset", "status", "buyer", "runner", "deadline (UTC)"], rows, whole={"buyer", "runner"}))


def _checks_table(title: str, checks) -> None:  # type: ignore[no-untyped-def]
    console.print(table(title, ["check", "result", "detail"],
                        [[c.name, "✓ pass" if c.passed else "✗ FAIL", c.reason] for c in checks]))  # fmt: skip


@chain_command
def fetch(
    job_id: int = typer.Argument(..., help="Job id."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Model file to write (default: job-ID.safetensors)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Download, decrypt and verify a completed job; write a ready model file."""
    from exchange.catalog import dataset_view
    from exchange.jobs import fetch_result
    from exchange.ml.weights import model_file_bytes

    client = open_client(home, rpc, account)
    result = fetch_result(client, job_id)
    if not result.verified:
        if not json:
            _checks_table(f"Job #{job_id}", result.checks)
        raise ProvenanceError(f"Job #{job_id} failed verification; no model file was written.")
    view = dataset_view(client, result.job.dataset_id)
    target = out or Path(f"job-{job_id}.safetensors")
    target.write_bytes(model_file_bytes(result.weights, result.spec, view.metadata.schema_))
    record = result.provenance.record
    if json:
        print_json({"job_id": job_id, "model_file": str(target), "epsilon_micro": record.epsilon,
                    "checks": [c.model_dump() for c in result.checks]})  # fmt: skip
        return
    _checks_table(f"Job #{job_id}: all checks passed", result.checks)
    success(f"model written to {target} (load it with exchange.ml.weights.load_model_file)")


@chain_command
def verify(
    job_id: int = typer.Argument(..., help="Job id."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Re-run every check of a completed job: signature, on-chain hashes, spec, ε, commitment."""
    from exchange.jobs import fetch_result

    result = fetch_result(open_client(home, rpc, account), job_id)
    if json:
        print_json({"job_id": job_id, "verified": result.verified, "checks": [c.model_dump() for c in result.checks]})
    else:
        _checks_table(f"Job #{job_id}", result.checks)
    if not result.verified:
        raise typer.Exit(1)
