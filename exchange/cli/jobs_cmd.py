"""`cove train`, `cove jobs`, `cove fetch`, `cove verify` (the buyer) and `cove runner start` (the owner)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import typer

from exchange.cli.options import AccountOption, HomeOption, JsonOption, RpcOption, open_client
from exchange.cli.output import console, print_json, success, table
from exchange.errors import CoveError, InputError, ProvenanceError

runner_app = typer.Typer(help="The owner's compute-to-data runner.", no_args_is_help=True)


def _read_spec(path: Path):  # type: ignore[no-untyped-def]
    from exchange.ml.spec import ModelSpec

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"Cannot read the spec file {path}; check the path (UTF-8 JSON).") from None
    return ModelSpec.parse(text)


def train(
    dataset_id: int = typer.Option(..., "--dataset", help="Dataset id."),
    spec_file: Path = typer.Option(..., "--spec", help="Model spec (JSON)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the runner completes or fails the job."),
    timeout: float = typer.Option(900, "--timeout", help="Seconds to wait with --wait."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Ask the dataset's runner to train a model: spends one credit, reserves the job's ε."""
    from exchange.jobs import request_job, wait_for

    spec = _read_spec(spec_file)
    client = open_client(home, rpc, account)
    with console.status("pricing the job's privacy and requesting it..."):
        ticket = request_job(client, dataset_id, spec)
    status = None
    if wait:
        with console.status(f"job #{ticket.job_id}: waiting for the runner..."):
            status = wait_for(client, ticket.job_id, timeout=timeout).status
    if json:
        print_json({**ticket.__dict__, "status": status})
        return
    success(
        f"job #{ticket.job_id} requested: it spends ε {ticket.epsilon:g}; dataset #{dataset_id} will have spent "
        f"ε {ticket.composed_epsilon:g} (gas {ticket.gas_used:,})"
    )
    if status:
        console.print(f"job #{ticket.job_id} is {status}" + ("; get it with `cove fetch`" if status == "completed" else ""))


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
    console.print(table("Jobs", ["job", "dataset", "status", "buyer", "runner", "deadline (UTC)"], rows))


def _checks_table(title: str, checks) -> None:  # type: ignore[no-untyped-def]
    console.print(table(title, ["check", "result", "detail"],
                        [[c.name, "✓ pass" if c.passed else "✗ FAIL", c.reason] for c in checks]))  # fmt: skip


def fetch(
    job_id: int = typer.Argument(..., help="Job id."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Model file to write [default: job-ID.safetensors]."),
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
    assert view.metadata is not None
    target = out or Path(f"job-{job_id}.safetensors")
    target.write_bytes(model_file_bytes(result.weights, result.spec, view.metadata.schema_))
    record = result.provenance.record
    if json:
        print_json({"job_id": job_id, "model_file": str(target), "epsilon_micro": record.epsilon,
                    "checks": [c.model_dump() for c in result.checks]})  # fmt: skip
        return
    _checks_table(f"Job #{job_id}: all checks passed", result.checks)
    success(f"model written to {target} (load it with exchange.ml.weights.load_model_file)")


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


def _data_option(values: list[str] | None) -> dict[int, Path]:
    files = {}
    for value in values or []:
        key, _, path = value.partition("=")
        if not key.isdigit() or not path:
            raise InputError(f"--data takes ID=PATH, not {value!r}.")
        if not Path(path).is_file():
            raise InputError(f"The private file {path} for dataset #{key} does not exist.")
        files[int(key)] = Path(path)
    return files


@runner_app.command("start")
def runner_start(
    once: bool = typer.Option(False, "--once", help="Handle what is pending, then exit."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between polls."),
    data: list[str] | None = typer.Option(None, "--data", help="ID=PATH: the private file of a dataset (repeatable) [default: what `cove publish` recorded]."),
    device: str | None = typer.Option(None, "--device", help="Torch device [default: cuda when available, else cpu]."),
    cpu_seconds: int = typer.Option(3600, "--cpu-seconds", help="CPU-time limit of one training."),
    memory_gb: float = typer.Option(6.0, "--memory-gb", help="Memory limit of one training."),
    wall_seconds: float = typer.Option(1800, "--wall-seconds", help="Wall-clock limit of one training."),
    allow_unsandboxed: bool = typer.Option(False, "--allow-unsandboxed", help="Train even where no sandbox can be made (recorded in provenance)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
) -> None:
    """Serve compute jobs on your datasets: claim, check, train with DP in the sandbox, publish."""
    from compute_to_data.runner import Runner, RunnerLimits
    from compute_to_data.sandbox import sandbox_available

    if sandbox_available() is None and not allow_unsandboxed:
        raise CoveError("No sandbox can be made on this machine (needs unshare or bubblewrap); refusing to train. "
                        "Pass --allow-unsandboxed to train anyway, recorded in provenance.")  # fmt: skip
    client = open_client(home, rpc, account)
    limits = RunnerLimits(cpu_seconds=cpu_seconds, memory_bytes=int(memory_gb * 1024**3),
                          wall_seconds=wall_seconds, device=device, allow_unsandboxed=allow_unsandboxed)  # fmt: skip
    files = _data_option(data) or None
    runner = Runner(client, limits, files, report=lambda message: console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {message}"))
    console.print(f"runner {runner.address} serving datasets {sorted(runner.data_files) or 'none'} (sandbox: {sandbox_available() or 'none'})")
    if once:
        runner.recover()
        runner.poll()
        return
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    try:
        runner.run(interval, stop=lambda: stopping["now"])
    except KeyboardInterrupt:
        pass
    console.print("runner stopped")

