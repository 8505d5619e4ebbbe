"""The `cove` command: one Typer app; every CoveError becomes one sentence and an exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from exchange import __version__
from exchange.cli import account_cmd, chain_cmd, dataset_cmd, gov_cmd, jobs_cmd, market_cmd
from exchange.cli.output import errors
from exchange.errors import CoveError

app = typer.Typer(
    name="cove",
    help="Cove: a data exchange where private data never leaves its owner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(chain_cmd.app, name="chain")
app.add_typer(account_cmd.app, name="account")
app.add_typer(dataset_cmd.dataset_app, name="dataset")
app.add_typer(dataset_cmd.policy_app, name="policy")
app.add_typer(jobs_cmd.runner_app, name="runner")
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
    home: Path | None = typer.Option(None, "--home", help="Keep the demo's state here [default: a temporary directory]."),
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
        errors.print(f"[red]Error:[/red] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        errors.print("Interrupted.")
        sys.exit(130)
