"""The owner's commands: `cove runner start` and `cove node start`.

They live on the owner's side of the layering (exchange never imports compute_to_data) and
join the `cove` command as plugins (entry points in the `cove.commands` group); without
them installed, a buyer's `cove` simply has no `runner` or `node` command.
"""

from __future__ import annotations

import json as json_module
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from exchange.cli.options import AccountOption, HomeOption, JsonOption, RpcOption, chain_command, open_client
from exchange.cli.output import console, print_json, success
from exchange.errors import CoveError, InputError

runner_app = typer.Typer(help="The owner's compute-to-data runner (and its endpoint).", no_args_is_help=True)
node_app = typer.Typer(help="The owner's endpoint alone: serves the published content of a runner.", no_args_is_help=True)

ListenOption = typer.Option(None, "--listen", help="Serve the endpoint at HOST:PORT (e.g. 127.0.0.1:8740; port 0 picks one).")
PublicUrlOption = typer.Option(None, "--public-url", help="The endpoint's public URL, announced on-chain for buyers (default: the --listen address).")


def _data_option(values: list[str] | None) -> tuple[dict[int, Path], tuple[Path, ...]]:
    """--data ID=PATH (that dataset) and --data PATH (whichever dataset it is the data of)."""
    explicit: dict[int, Path] = {}
    candidates: list[Path] = []
    for value in values or []:
        key, sep, rest = value.partition("=")
        path = Path(rest if sep else value).expanduser()
        if sep and not key.isdigit():
            raise InputError(f"--data takes ID=PATH or PATH, not {value!r}.")
        if not path.is_file():
            raise InputError(f"The private file {path} does not exist; check the --data path.")
        if sep:
            explicit[int(key)] = path
        else:
            candidates.append(path)
    return explicit, tuple(candidates)


def _json_line(event: str, **fields: object) -> None:
    """One JSON object on one line, flushed: what `runner start --json` prints as it runs."""
    sys.stdout.write(json_module.dumps({"event": event, "time": datetime.now(UTC).isoformat(timespec="seconds"), **fields}) + "\n")
    sys.stdout.flush()


def _start_node(home: Path | None, rpc: str | None, account: str | None, runner: str | None,
                listen: str, public_url: str | None, quiet: bool = False):  # type: ignore[no-untyped-def]  # fmt: skip
    """Starts the endpoint on its own client (it serves from a thread of its own)."""
    from compute_to_data.node.service import Listen, OwnerNode

    client = open_client(home, rpc, account, needs_account=runner is None)
    node = OwnerNode(client, runner or client.session.sender, Listen.parse(listen)).start()
    url = public_url or node.url
    if client.session.account is not None and client.session.sender.lower() == node.runner.lower():
        announced = node.announce(url)
        message = f"endpoint {node.url} announced on-chain as {url}" if announced else f"endpoint {node.url} ({url} on-chain)"
    else:
        message = f"endpoint {node.url} serving runner {node.runner} (announce it as that runner with --public-url)"
    if not quiet:
        console.print(message)
    return node


def _wait_for_stop() -> threading.Event:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    return stopping


def _reporter(json: bool) -> Callable[[str], None]:
    """How the runner's reports are shown: a timed line for a person, a JSON line for a script."""
    if json:
        return lambda message: _json_line("report", message=Text.from_markup(message).plain)
    return lambda message: console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {message}")


@runner_app.command("start")
@chain_command
def runner_start(
    once: bool = typer.Option(False, "--once", help="Handle what is pending, then exit."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between polls."),
    data: list[str] | None = typer.Option(None, "--data", help="A private file: PATH (matched to its dataset by commitment) or ID=PATH (repeatable) (default: what `cove publish` recorded in this home)."),
    commitment_key: Path | None = typer.Option(None, "--commitment-key", help="The owner's commitment key file (it checks the files against the datasets' hiding commitments) (default: this home's)."),
    listen: str | None = ListenOption,
    public_url: str | None = PublicUrlOption,
    device: str | None = typer.Option(None, "--device", help="Torch device (default: cuda when available, else cpu)."),
    cpu_seconds: int = typer.Option(3600, "--cpu-seconds", help="CPU-time limit of one training."),
    memory_gb: float = typer.Option(6.0, "--memory-gb", help="Memory limit of one training."),
    wall_seconds: float = typer.Option(1800, "--wall-seconds", help="Wall-clock limit of one training."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Jobs trained at once, each in its own sandbox (default: one per core, as many as the memory limit allows)."),
    allow_unsandboxed: bool = typer.Option(False, "--allow-unsandboxed", help="Train even where no sandbox can be made (recorded in provenance)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Serve compute jobs on your datasets: claim, check, train with DP in the sandbox, publish.

    With --listen it also runs your endpoint, which serves your datasets' metadata and your
    jobs' results to buyers (and is announced on-chain). With --json it prints one JSON
    object a line: `started`, then a `report` for each thing it does, then `stopped`."""
    from compute_to_data.data_files import DataFiles
    from compute_to_data.queue_view import QueueView
    from compute_to_data.runner import Runner, RunnerLimits
    from compute_to_data.sandbox import sandbox_available, seccomp_problem

    if sandbox_available() is None and not allow_unsandboxed:
        problem = seccomp_problem()
        why = f"its seccomp filter cannot be built: {problem}" if problem else "it needs unshare or bubblewrap"
        raise CoveError(f"No sandbox can be made on this machine ({why}); refusing to train. "
                        "Pass --allow-unsandboxed to train anyway, recorded in provenance.")  # fmt: skip
    explicit, candidates = _data_option(data)
    client = open_client(home, rpc, account)
    node = _start_node(home, rpc, account, None, listen, public_url, quiet=json) if listen else None
    limits = RunnerLimits(cpu_seconds=cpu_seconds, memory_bytes=int(memory_gb * 1024**3),
                          wall_seconds=wall_seconds, device=device, allow_unsandboxed=allow_unsandboxed,
                          workers=workers)  # fmt: skip
    runner = Runner(client, limits, DataFiles(explicit, candidates),
                    commitment_key_file=commitment_key.expanduser() if commitment_key else None,
                    report=_reporter(json))  # fmt: skip
    if runner.commitment_key is None and not json:
        console.print(f"[yellow]no commitment key yet[/yellow] at {escape(str(runner.commitment_key_file))}: jobs are "
                      "refused until the owner's key is there (--commitment-key FILE)")  # fmt: skip
    if json:
        _json_line("started", runner=runner.address, chain_id=client.session.chain_id, hub=client.cove.address,
                   sandbox=sandbox_available(), workers=runner.workers, endpoint=node.url if node else None,
                   commitment_key=runner.commitment_key is not None)  # fmt: skip
    else:
        console.print(f"runner {runner.address} on chain {client.session.chain_id}, hub {client.cove.address} "
                      f"(sandbox: {sandbox_available() or 'none'}; {runner.workers} worker"
                      f"{'s' if runner.workers > 1 else ''})")  # fmt: skip
    try:
        if once:
            runner.recover()
            runner.poll()
            return
        stopping = _wait_for_stop()
        view = None if json else QueueView(console)  # a live table is for a person at a terminal
        try:
            runner.run(interval, stop=stopping.is_set, on_poll=view)
        except KeyboardInterrupt:
            pass
        finally:
            if view is not None:
                view.close()
        if json:
            _json_line("stopped")
        else:
            console.print("runner stopped")
    finally:
        runner.close()  # the warm sandbox, if one was started
        if node is not None:
            node.stop()


@node_app.command("start")
@chain_command
def node_start(
    listen: str = typer.Option("127.0.0.1:8740", "--listen", help="Serve at HOST:PORT (port 0 picks one)."),
    public_url: str | None = PublicUrlOption,
    runner: str | None = typer.Option(None, "--runner", help="The runner whose content to serve (default: your account)."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Serve the published content of a runner (metadata, allowlists, provenance, encrypted
    weights) over the IPFS trustless gateway protocol, without training anything."""
    node = _start_node(home, rpc, account, runner, listen, public_url)
    if json:
        print_json({"url": node.url, "runner": node.runner})
    else:
        success(f"serving /ipfs/ at {node.url}; Ctrl-C stops")
    stopping = _wait_for_stop()
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
