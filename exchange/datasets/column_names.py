"""Checks of a dataset file's column names, shared by the CSV and Parquet readers."""

from __future__ import annotations

from pathlib import Path

from exchange.datasets.csv_cells import DATETIME_RE, FLOAT_RE, NONFINITE_RE
from exchange.errors import DatasetError


def check_header(path: Path, names: list[str]) -> None:
    """A CSV header: comma-separated, not a data row, every name given once."""
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        raise DatasetError(
            f"The header of {path} looks like it uses ';', tab or '|' between columns; "
            "Cove reads comma-separated files, so re-export with commas."
        )
    if all(_looks_like_value(name) for name in names):
        # Do not repeat the cells: without a header, they are the first data row.
        raise DatasetError(
            f"The first line of {path} looks like data, not a header (every cell is a number "
            "or date); add a header line with the column names."
        )
    check_column_names(path, names)


def check_column_names(path: Path, names: list[str]) -> None:
    """Blank or repeated names usually mean a header-less file or an exported index.

    Positions, not names, are reported: in a header-less file the "names" are data.
    """
    for pos, name in enumerate(names, start=1):
        if not name.strip():
            raise DatasetError(
                f"Column {pos} of {path} has no name; give every column a name in the header "
                "(a blank first name usually means a pandas index was saved: use index=False)."
            )
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=1):
        if name in seen:
            raise DatasetError(
                f"Columns {seen[name]} and {pos} of {path} have the same name; "
                "give every column a distinct name in the header."
            )
        seen[name] = pos


def _looks_like_value(cell: str) -> bool:
    cell = cell.strip()
    return bool(FLOAT_RE.fullmatch(cell) or DATETIME_RE.fullmatch(cell) or NONFINITE_RE.fullmatch(cell))
