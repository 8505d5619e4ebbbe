"""The `cove` command: one Typer app; every CoveError becomes one sentence and an exit code."""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from exchange import __version__
from exchange.cli import account_cmd, chain_cmd, dataset_cmd, gov_cmd, jobs_cmd, market_cmd, network_cmd, schema_cmd
from exchange.cli.output import errors
from exchange.errors import CoveError

# Commands that other installed parts of Cove add to `cove` (the owner's runner and node
# register `runner` and `node` from compute_to_data); this package never names them.
PLUGIN_GROUP = "cove.commands"


@cache
def _plugins() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}


class _CoveGroup(TyperGroup):
    """The `cove` command group: its own commands, plus those registered as plugins, loaded on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _plugins():
            command = typer.main.get_group(_plugins()[cmd_name].load())
            command.name = cmd_name
        return command


app = typer.Typer(
    name="cove",
    cls=_CoveGroup,
    help="Cove: a data exchange where private data never leaves its owner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(chain_cmd.app, name="chain")
app.add_typer(network_cmd.app, name="network")
app.add_typer(account_cmd.app, name="account")
app.add_typer(dataset_cmd.dataset_app, name="dataset")
app.add_typer(schema_cmd.app, name="schema")
app.add_typer(dataset_cmd.policy_app, name="policy")
app.add_typer(gov_cmd.app, name="gov")
app.command("deploy")(chain_cmd.deploy_command)
app.command()(market_cmd.faucet)
app.command()(dataset_cmd.publish)
app.command()(dataset_cmd.datasets)
app.command()(market_cmd.buy)
app.command()(market_cmd.balance)
app.command()(jobs_cmd.train)
app.command()(jobs_cmd.jobs)
app.command()(jobs_cmd.fetch)
app.command()(jobs_cmd.verify)


@app.command()
def demo(
    home: Path | None = typer.Option(None, "--home", help="Keep the demo's state here \\[default: a temporary directory]."),
) -> None:
    """Run the end-to-end demo on a fresh local chain: deploy, publish, browse, buy."""
    from exchange.demo import run_demo  # imported on use: it pulls in numpy and pandas

    run_demo(home)


@app.command()
def version() -> None:
    """Print Cove's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: usage errors are Typer's; CoveErrors print one sentence, no traceback."""
    try:
        app()
    except CoveError as error:
        errors.print(f"[red]Error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)  # one line: paths stay whole
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        errors.print("Interrupted.")
        sys.exit(130)
