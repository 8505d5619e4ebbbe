"""The `cove` command: one Typer app; every failure becomes one sentence (or, with --json,
one JSON object) on stderr and an exit code: 2 for a user mistake, 1 for a failure, 130 for
Ctrl-C (README, "Exit codes and errors")."""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from exchange import __version__
from exchange.cli import account_cmd, chain_cmd, dataset_cmd, gov_cmd, jobs_cmd, market_cmd, network_cmd, schema_cmd, ui_cmd
from exchange.cli.options import JsonOption
from exchange.cli.output import errors, print_error_json, print_json
from exchange.errors import CoveError
from exchange.paths import home_holding, home_not_writable

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
app.command()(ui_cmd.ui)


@app.command()
def demo(
    home: Path | None = typer.Option(None, "--home", help="Keep the demo's state here (default: a temporary directory)."),
    json: JsonOption = False,
) -> None:
    """Run the end-to-end demo on a fresh local chain: deploy, publish, browse, buy."""
    from rich.console import Console

    from exchange.demo import run_demo  # imported on use: it pulls in numpy and pandas

    # With --json the story is not told: stdout holds the result alone, stderr only an error.
    outcome = run_demo(home, Console(quiet=True) if json else None)
    if json:
        print_json(outcome)


@app.command()
def version(json: JsonOption = False) -> None:
    """Print Cove's version."""
    if json:
        print_json({"version": __version__})
    else:
        typer.echo(__version__)


USAGE_CODE = "usage"  # the `code` of a Click usage error (an unknown option, a missing argument)
INTERRUPTED = 130  # what shells report for a process ended by Ctrl-C (128 + SIGINT)
# What the OS answers for a write it refuses: a read-only file system, missing permissions.
_REFUSED_WRITES = {errno.EROFS, errno.EACCES, errno.EPERM}


def wants_json(args: Sequence[str]) -> bool:
    """Whether the command line asks for `--json` (words after `--` are arguments, not options).

    Read off the words rather than from the parsed option: a usage error (an unknown option,
    a bad value) is raised while Click parses, before any option of the command is known.
    """
    words = list(args)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


def main() -> None:
    """Entry point: usage errors, CoveErrors and refused writes in a Cove home end in one
    sentence (a JSON object with --json) and their exit code; Ctrl-C ends quietly with 130."""
    args = sys.argv[1:]
    as_json = wants_json(args)
    try:
        code = app(args=args, standalone_mode=False)  # errors come here rather than to Click's printing
    except click.ClickException as error:  # a bad command line (or a file Click could not open): exit 2
        if as_json:
            print_error_json(error.format_message(), USAGE_CODE if isinstance(error, click.UsageError) else "input")
        else:
            from typer import rich_utils  # as Typer prints them; imported when needed (Markdown, ...)

            rich_utils.rich_format_error(error)
        sys.exit(2)
    except click.Abort as abort:  # a prompt cut short: by Ctrl-C, or by the end of its input
        if isinstance(abort.__context__, KeyboardInterrupt):
            sys.exit(INTERRUPTED)
        _fail("Aborted.", "aborted", 1, as_json)
    except CoveError as error:
        _fail(str(error), error.error_code, error.exit_code, as_json)
    except OSError as error:
        home = home_holding(error.filename) if error.errno in _REFUSED_WRITES else None
        if home is None:
            raise
        refused = home_not_writable(home, error)
        _fail(str(refused), refused.error_code, refused.exit_code, as_json)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)  # an int: a command's typer.Exit(code)


def _fail(message: str, code: str, exit_code: int, as_json: bool) -> None:
    if as_json:
        print_error_json(message, code)
    else:
        errors.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # one line: paths stay whole
    sys.exit(exit_code)
