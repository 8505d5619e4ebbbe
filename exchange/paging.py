"""Pages of a longer listing, for the market page and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 50  # rows of a listing on one page: a hub of 10,000 datasets stays a light page


@dataclass(frozen=True)
class Slice:
    """Which page of a longer list is shown."""

    number: int  # from 1
    count: int  # pages in all, at least 1
    first: int  # position of the first row shown, from 1
    last: int  # position of the last row shown
    matching: int  # rows in the whole list


def paginate(rows: list[Any], number: int, size: int = PAGE_SIZE) -> tuple[list[Any], Slice]:
    """Page `number` of `rows` (clamped to the pages there are)."""
    count = max(1, -(-len(rows) // size))
    number = min(max(number, 1), count)
    start = (number - 1) * size
    shown = rows[start : start + size]
    return shown, Slice(number, count, start + 1 if shown else 0, start + len(shown), len(rows))
