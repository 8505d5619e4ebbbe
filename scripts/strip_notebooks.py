#!/usr/bin/env python3
"""Strips outputs from notebooks so they are committed clean.

    scripts/strip_notebooks.py                  # every notebooks/*.ipynb, in place
    scripts/strip_notebooks.py path.ipynb ...   # just these
    scripts/strip_notebooks.py --check          # exit 1 (and name them) if any has outputs

A stripped notebook has, in every code cell, `outputs: []` and `execution_count: null`,
and no per-run metadata (execution timings, collapsed/scrolled state, widget state). The
file is written the way Jupyter writes it (one-space indent, sorted keys, a final
newline), so stripping a clean notebook changes nothing. Plain JSON: it needs no Jupyter
package. `tests/test_notebooks.py` fails when a committed notebook is not clean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CELL_RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_RUN_METADATA = ("widgets", "varInspector")


def stripped(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of `notebook` without outputs, execution counts or per-run metadata."""
    clean = json.loads(json.dumps(notebook))
    for cell in clean.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        for key in CELL_RUN_METADATA:
            metadata.pop(key, None)
    for key in NOTEBOOK_RUN_METADATA:
        clean.get("metadata", {}).pop(key, None)
    return clean


def dumps(notebook: dict[str, Any]) -> str:
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip outputs from Jupyter notebooks.")
    parser.add_argument("paths", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if any is dirty")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(text)
        clean = stripped(notebook)
        if args.check:
            if clean != notebook:
                dirty.append(path)
        elif dumps(clean) != text:
            path.write_text(dumps(clean), encoding="utf-8")
            dirty.append(path)
    for path in dirty:
        print(f"{'has outputs or run metadata' if args.check else 'stripped'}: {path}")
    if args.check and dirty:
        print("Run scripts/strip_notebooks.py to strip them before committing.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
