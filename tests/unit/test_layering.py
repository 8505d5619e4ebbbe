"""Layering: `exchange` (the buyer's and publisher's side) never imports `compute_to_data` (the
owner's premises), not even lazily; the owner's commands reach `cove` only as plugins."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import exchange

EXCHANGE = Path(exchange.__file__).resolve().parent
OWNER_SIDE = "compute_to_data"


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and OWNER_SIDE in node.value:
            found.append(f"string {node.value[:60]!r}")  # importlib.import_module("compute_to_data...")
    return found


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body[0] = ast.Pass()
    return tree


def test_no_exchange_module_names_the_owner_side() -> None:
    offenders = {}
    for path in sorted(EXCHANGE.rglob("*.py")):
        tree = _without_docstrings(ast.parse(path.read_text(), str(path)))
        named = [name for name in _imports(tree) if OWNER_SIDE in name]
        if named:
            offenders[str(path.relative_to(EXCHANGE))] = named
    assert offenders == {}


def test_the_check_finds_an_import_when_there_is_one() -> None:
    tree = ast.parse("def f():\n    from compute_to_data.runner import Runner\n")
    assert _imports(tree) == ["compute_to_data.runner"]
    tree = ast.parse('import importlib\nimportlib.import_module("compute_to_data.cli")\n')
    assert any(OWNER_SIDE in name for name in _imports(tree))


def test_importing_all_of_exchange_and_running_buyer_commands_loads_no_owner_code() -> None:
    code = (
        "import pkgutil, importlib, sys, exchange\n"
        "for m in pkgutil.walk_packages(exchange.__path__, 'exchange.'):\n"
        "    if m.name != 'exchange.cli.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "from exchange.cli.app import main\n"
        "for argv in (['cove', 'datasets', '--help'], ['cove', 'buy', '--help'], ['cove', 'version']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('compute_to_data')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_owner_commands_are_plugins_of_cove() -> None:
    registered = {entry.name: entry.value for entry in entry_points(group="cove.commands")}
    assert registered == {
        "runner": "compute_to_data.cli:runner_app", "node": "compute_to_data.cli:node_app",
        "audit": "compute_to_data.audit_cmd:audit_app",
    }
    done = subprocess.run([sys.executable, "-m", "exchange.cli", "runner", "start", "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "--listen" in done.stdout and "--public-url" in done.stdout
