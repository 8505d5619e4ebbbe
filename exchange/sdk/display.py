"""HTML for notebooks: real tables with every cell escaped, never dict dumps.

Every `_repr_html_` of the SDK goes through `table` or `fields`, so no value (a dataset
name, a policy field, a reason from the chain) can inject markup into a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

_STYLE = "border-collapse: collapse; text-align: left"


def plain(value: Any) -> str:
    """One value as text: None as a dash, booleans as yes/no, floats without noise."""
    if value is None:
        text = "–"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    else:
        text = str(value)
    return text


def cell(value: Any) -> str:
    """One value as escaped HTML text."""
    return html.escape(plain(value))


def table(
    header: Sequence[Any] | None, rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An HTML table: an optional header row, then one row per sequence of cells."""
    parts = [f'<table class="cove-table" style="{_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align: left; font-weight: bold">{html.escape(caption)}</caption>')
    if header:
        parts.append("<thead><tr>" + "".join(f"<th>{cell(h)}</th>" for h in header) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{cell(value)}</td>" for value in row) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def fields(pairs: Iterable[tuple[Any, Any]], *, caption: str | None = None) -> str:
    """A two-column table: one row per (name, value)."""
    parts = [f'<table class="cove-table" style="{_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align: left; font-weight: bold">{html.escape(caption)}</caption>')
    parts.append("<tbody>")
    for name, value in pairs:
        parts.append(f'<tr><th style="text-align: left">{cell(name)}</th><td>{cell(value)}</td></tr>')
    parts.append("</tbody></table>")
    return "".join(parts)


def text_fields(pairs: Iterable[tuple[Any, Any]], title: str | None = None) -> str:
    """The plain-text twin of `fields`, for `repr` in a terminal."""
    pairs = list(pairs)
    width = max((len(str(name)) for name, _ in pairs), default=0)
    lines = [title] if title else []
    lines.extend(f"  {str(name).ljust(width)}  {plain(value)}" for name, value in pairs)
    return "\n".join(lines)
