"""`--help` on every command, plugins included, shows each option's help whole."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.text import Text

from exchange.cli.app import app
from tests.conftest import run_cove


def _commands(group: Any, ctx: Any, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """(command path, command) of every leaf under `group` (Typer's click, duck-typed); a
    group without subcommands (`cove audit`, one callback) is a leaf too."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        inner = command.context_class(command, parent=ctx)
        if hasattr(command, "list_commands") and command.list_commands(inner):
            yield from _commands(command, inner, (*path, name))
        else:
            yield (*path, name), command


def _leaves() -> list[tuple[tuple[str, ...], Any]]:
    root = typer.main.get_command(app)
    return list(_commands(root, root.context_class(root)))


def _shown(result: Any) -> str:
    return " ".join(result.stdout.replace("│", " ").split())


def test_every_help_shows_its_defaults(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "400")
    checked = 0
    for path, command in _leaves():
        result = run_cove(*path, "--help")
        assert result.exit_code == 0, path
        text = _shown(result)
        for param in command.params:
            help_text = getattr(param, "help", None) or ""
            if "(default:" in help_text or "[default:" in help_text:
                # As Rich renders it: an escaped "\[default: …]" loses its backslash.
                shown = " ".join(Text.from_markup(help_text).plain.split())
                assert shown in text, (path, param.name)
                checked += 1
    assert checked >= 20  # control: the walk reached the commands that have such defaults


@pytest.mark.parametrize("width", [80, 120, 400])
def test_no_help_has_a_stray_dot_or_an_empty_default(monkeypatch, width: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", str(width))
    leaves = _leaves()
    assert {("audit",), ("runner", "start"), ("node", "start")} <= {path for path, _ in leaves}  # plugins too
    for path, _ in leaves:
        result = run_cove(*path, "--help")
        assert result.exit_code == 0, path
        words = _shown(result).split()
        assert "." not in words, (path, " ".join(words[max(0, words.index(".") - 12): words.index(".") + 1]))
        text = " ".join(words)
        for flaw in ("[default: ]", "(default: )", "\\["):
            assert flaw not in text, (path, flaw, text[max(0, text.find(flaw) - 80): text.find(flaw) + 20])


def test_help_texts_read_the_same_with_or_without_rich_markup() -> None:
    """A help text that holds no markup renders the same in Rich, in Click's plain help and in
    any Typer version: no default can vanish and leave " ." behind."""
    found = set()
    for path, command in _leaves():
        for name, text in [("(command)", command.help or ""), *[(p.name, getattr(p, "help", None) or "") for p in command.params]]:
            if Text.from_markup(text).plain != text:
                found.add((path, name, text))
    assert found == set()
    assert Text.from_markup("a \\[default: b].").plain != "a \\[default: b]."  # control: the check sees markup


def test_a_markup_default_read_twice_leaves_a_stray_dot() -> None:
    """Control for the two tests above: what the issue showed, from the old form of --home's help."""
    old = "Cove's state directory \\[default: ~/.cove]."
    assert Text.from_markup(Text.from_markup(old).plain).plain == "Cove's state directory ."
    new = "Cove's state directory (default: ~/.cove)."
    assert Text.from_markup(Text.from_markup(new).plain).plain == new
