"""The CSV file as Python's csv module reads it, record by record: the definition of what a
row, a blank line and a line number are, for the rare moments the fast path needs it.

Arrow parses the rows (csv_stream.py); this module reads the header, finds the line a
data row starts on when an error has to name it, and, when Arrow met a row it cannot
account for, walks the file to raise exactly the error the record-by-record reader always
raised. It streams: memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.errors import DatasetError

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Header:
    """The header record and the byte offset of the first line after it."""

    cells: list[str]
    data_offset: int


def read_header(path: Path) -> Header:
    """The first non-blank record, and where the data starts; DatasetError on bad quoting."""
    counted = _CountedLines(path)
    reader = csv.reader(counted, strict=True)
    try:
        for record in reader:
            if not is_blank(record, None):
                return Header(record, counted.offset)
    except csv.Error:
        raise _parse_error(path, reader.line_num) from None
    finally:
        counted.close()
    raise AssertionError("a file that is not blank has a header")  # prescan.py saw to that


def data_records(path: Path) -> Iterator[tuple[list[str], int]]:
    """Each data row and the line it starts on; DatasetError for bad quoting or a row whose
    field count differs from the header's."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        header: list[str] | None = None
        start = 1
        try:
            for record in reader:
                if not is_blank(record, header):
                    if header is None:
                        header = record
                    elif len(record) != len(header):
                        raise DatasetError(
                            f"Line {start} of {path} has {len(record)} fields but the header has "
                            f"{len(header)}; fix that row (quote values that contain commas)."
                        )
                    else:
                        yield record, start
                start = reader.line_num + 1
        except csv.Error:
            raise _parse_error(path, reader.line_num) from None


def check_records(path: Path) -> None:
    """Walk the whole file, raising the first structural error (see `data_records`)."""
    for _ in data_records(path):
        pass


def line_of_row(path: Path, row: int) -> int:
    """The line data row `row` (0-based) starts on, counting quoted line breaks and blank lines."""
    for index, (_, line) in enumerate(data_records(path)):
        if index == row:
            return line
    raise IndexError(row)


def is_blank(record: list[str], header: list[str] | None) -> bool:
    """An empty or whitespace-only line, which is layout rather than a row.

    In a one-column file such a line could be a missing value; like pandas, Cove skips it.
    """
    if not record:
        return True
    return len(record) == 1 and not record[0].strip() and (header is None or len(header) > 1)


def is_blank_text(text: str, columns: int) -> bool:
    """Whether the text of one row, as Arrow saw it, is a blank line (see `is_blank`)."""
    records = list(csv.reader(io.StringIO(text, newline="")))
    return len(records) <= 1 and (not records or is_blank(records[0], ["", ""] if columns > 1 else [""]))


def _parse_error(path: Path, line: int) -> DatasetError:
    return DatasetError(
        f"{path} cannot be parsed as CSV at line {line}; make sure every "
        'quoted field is closed and quotes inside fields are doubled ("").'
    )


class _CountedLines:
    """The file's lines as the csv module takes them, counting the bytes handed out."""

    def __init__(self, path: Path):
        with open(path, "rb") as raw:
            self.offset = len(BOM) if raw.read(len(BOM)) == BOM else 0
        self._handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by read_header

    def __iter__(self) -> Iterator[str]:
        for line in self._handle:
            self.offset += len(line.encode("utf-8"))
            yield line

    def close(self) -> None:
        self._handle.close()
