"""Printing results: Rich tables for people, JSON for scripts, errors as one sentence."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True)


_PRIMITIVES = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if type(value) in _PRIMITIVES:  # most of a listing: answered before the other checks
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def frame_records(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` as `pandas.DataFrame(rows).to_dict("records")` types them, without pandas: a
    numeric column holding a float or a None is float throughout, None becoming NaN."""
    records = [dict(row) for row in rows]
    for column in dict.fromkeys(key for row in records for key in row):
        values = [row.get(column) for row in records]
        numeric = all(_is_number(v) or v is None for v in values) and any(v is not None for v in values)
        if numeric and not all(isinstance(v, int) for v in values):
            for row in records:
                value = row.get(column)
                row[column] = math.nan if value is None else float(value)
    return records


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def print_json(value: Any) -> None:
    text = json.dumps(_plain(value), indent=2, ensure_ascii=False)
    if console.is_terminal:
        console.print_json(text)  # highlighted, for a person
    else:
        # What Rich prints off a terminal, byte for byte, without its highlighting pass: that
        # takes seconds for a listing of 10,000 datasets.
        console.file.write(text + "\n")


def print_error_json(message: str, code: str) -> None:
    """`--json`'s error object, one line on stderr, for a script to read instead of a sentence."""
    sys.stderr.write(json.dumps({"error": {"message": message, "code": code}}, ensure_ascii=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]], whole: Collection[str] = ()) -> Table:
    """A table; the `whole` columns (addresses) are never cut or wrapped, the others fold to make room."""
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        if column in whole:
            index = columns.index(column)
            width = max((cell_len(str(row[index])) for row in rows if row[index] is not None), default=0)
            grid.add_column(column, no_wrap=True, overflow="ignore", min_width=max(width, cell_len(column)))
        else:
            grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*["" if cell is None else escape(str(cell)) for cell in row])
    return grid


def fields(title: str, pairs: list[tuple[str, Any]]) -> Table:
    """A two-column key/value table."""
    grid = Table(title=title, title_justify="left", show_header=False)
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(key, "" if value is None else escape(str(value)))
    return grid


def success(message: str) -> None:
    console.print(f"[green]✓[/green] {escape(message)}")
