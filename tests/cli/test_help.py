"""`--help` on every command, plugins included, shows each option's help whole."""

from __future__ import annotations

from typing import Any

import typer

from exchange.cli.app import app
from tests.conftest import run_cove


def _commands(group: Any, ctx: Any, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """(command path, command) of every leaf under `group` (Typer's click, duck-typed)."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if hasattr(command, "list_commands"):
            yield from _commands(command, command.context_class(command, parent=ctx), (*path, name))
        else:
            yield (*path, name), command


def test_every_help_shows_its_defaults(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "400")
    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root, root.context_class(root)):
        result = run_cove(*path, "--help")
        assert result.exit_code == 0, path
        text = " ".join(result.stdout.replace("│", " ").split())
        for param in command.params:
            help_text = getattr(param, "help", None) or ""
            if "[default:" in help_text:
                # Rich takes an unescaped "[default: …]" for markup and drops it.
                shown = " ".join(help_text.replace("\\[", "[").split())
                assert shown in text, (path, param.name)
                checked += 1
    assert checked >= 20  # control: the walk reached the commands that have such defaults
