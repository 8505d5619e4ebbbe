"""A CSV file as a stream of chunks: Arrow parses blocks of rows on its threads; the cells are
typed and checked with Arrow kernels (csv_cells.py).

The rules are those of Python's csv module in strict mode and reader.py's typing, and
where Arrow might see a file differently -- quoting Python refuses, a row whose field
count is off -- the record-by-record reader (csv_records.py) has the last word, so every
message is the one it always was. A column's kind is known only at the end: the first
pass feeds the sink with the kinds the first chunk suggests, and if a later chunk changes
one (a column of whole numbers meets 2.5), the rows are read a second time with the kinds
now known. Memory holds a few blocks, whatever the file's size.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from exchange.datasets.column_names import check_header
from exchange.datasets.csv_bytes import check_bytes
from exchange.datasets.csv_cells import ColumnCells, ColumnProblem
from exchange.datasets.csv_records import check_records, is_blank_text, line_of_row, read_header
from exchange.datasets.schema import Kind
from exchange.datasets.stream import (
    Chunking,
    Progress,
    TableLayout,
    TableSink,
    entirely_empty,
    no_rows,
)
from exchange.errors import DatasetError

_ARROW_BLOCK = 1 << 20


def stream_csv(path: Path, sink: TableSink, chunking: Chunking, progress: Progress) -> TableLayout:
    """Read, type and check a CSV file into `sink` (see reader.stream_table)."""
    facts = check_bytes(path)
    if facts.quoted and not facts.quoting_ok:
        check_records(path)  # raises the error Python's csv module gives
    header = read_header(path)
    names = [cell.strip() for cell in header.cells]
    try:
        check_header(path, names)
    except DatasetError:
        check_records(path)  # a malformed row further down is reported first, as always
        raise
    blocks = _Blocks(path, header.data_offset, len(names), facts.quoted, chunking.csv_bytes)

    # Pass 1: classify every cell; feed the sink as long as the kinds hold.
    cells = [ColumnCells() for _ in names]
    begun: list[Kind | None] | None = None
    feeding = True
    rows = 0
    for batch in blocks.read():
        for column, raw in zip(cells, batch.columns):
            column.observe(raw, rows)
        rows += batch.num_rows
        progress(rows)
        kinds = [column.kind() for column in cells]
        if begun is None:
            begun = kinds
            feeding = None not in kinds
            if feeding:
                sink.begin(names, kinds)  # type: ignore[arg-type]
        if feeding and kinds == begun:
            chunk = [column.column(kind) for column, kind in zip(cells, kinds)]
            feeding = None not in chunk
            if feeding:
                sink.add(chunk)  # type: ignore[arg-type]
        else:
            feeding = False
    if max(column.longest for column in cells) > csv.field_size_limit():
        check_records(path)  # Python's csv module refuses fields this long (by characters)
    if rows == 0:
        raise no_rows(path)
    final = [_final_kind(path, name, column) for name, column in zip(names, cells)]
    if feeding and final == begun:
        return TableLayout(names, final, rows)

    # Pass 2: the kinds are known now.
    sink.begin(names, final)
    cells = [ColumnCells() for _ in names]
    read = 0
    for batch in blocks.read():
        chunk = []
        for column, raw, kind in zip(cells, batch.columns, final):
            column.observe(raw, read)
            chunk.append(column.column(kind))
        read += batch.num_rows
        progress(rows + read)
        if None in chunk:
            raise DatasetError(f"{path} changed while it was being read; publish it again.")
        sink.add(chunk)  # type: ignore[arg-type]
    if read != rows:
        raise DatasetError(f"{path} changed while it was being read; publish it again.")
    return TableLayout(names, final, rows)


def _final_kind(path: Path, name: str, column: ColumnCells) -> Kind:
    kind = column.kind()
    if kind is None:
        raise entirely_empty(path, name)
    problem = column.problem()
    if problem is not None:
        raise _problem_error(path, name, problem, line_of_row(path, problem.row))
    return kind


def _problem_error(path: Path, name: str, problem: ColumnProblem, line: int) -> DatasetError:
    if problem.what in ("not-number", "not-date"):
        what = "numbers" if problem.what == "not-number" else "dates"
        found = "an infinite value" if problem.infinite else "text"
        return DatasetError(
            f"Column '{name}' in {path} holds {what} but has {found} at line {line} "
            f"({problem.odd} such cell(s) in all); fix those cells or leave them empty for missing values."
        )
    if problem.what == "int-overflow":
        return DatasetError(
            f"Column '{name}' in {path} has an integer at line {line} that does "
            "not fit in 64 bits; store the column as text or scale it down."
        )
    if problem.what == "float-overflow":
        return DatasetError(
            f"Column '{name}' in {path} has a number at line {line} that is too "
            "large for a 64-bit float; rescale the column."
        )
    return DatasetError(
        f"Column '{name}' in {path} has an invalid date at line {line}; "
        "use ISO 8601 dates such as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ."
    )


class _Blocks:
    """The data rows after the header, as Arrow record batches of strings, one per block."""

    def __init__(self, path: Path, offset: int, columns: int, quoted: bool, block_bytes: int):
        self.path = path
        self.offset = offset
        self.columns = columns
        self.quoted = quoted
        self.block_bytes = block_bytes

    def read(self) -> Iterator[pa.RecordBatch]:
        """The rows in chunks of about `block_bytes` of text."""
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in self._blocks():
            pending.append(batch)
            size += batch.nbytes
            if size >= self.block_bytes:
                yield _combined(pending)
                pending, size = [], 0
        if pending:
            yield _combined(pending)

    def _blocks(self) -> Iterator[pa.RecordBatch]:
        # Arrow reads some 35 blocks ahead of its reader, whatever their size, so its blocks
        # are small and `read` puts them together again.
        size = self.path.stat().st_size
        if self.offset >= size:
            return
        block, done = min(self.block_bytes, _ARROW_BLOCK), 0  # done: rows handed out, over all attempts
        while True:
            rows = _Rows(self, block)
            try:
                seen = 0
                for batch in rows.batches():
                    start, seen = seen, seen + batch.num_rows
                    if seen > done:  # skip what an earlier attempt handed out already
                        yield batch.slice(done - start) if done > start else batch
                        done = seen
                return
            except pa.ArrowInvalid:
                pass  # its message may quote a row: never pass it on
            if rows.unexplained or block >= size:
                break
            block *= 4  # a row longer than a block: Arrow needs larger blocks
        check_records(self.path)  # the record-by-record reader names the row
        raise DatasetError(
            f"{self.path} has a row Cove cannot read as CSV; re-export the file as comma-separated UTF-8 text."
        )


def _combined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


class _Rows:
    """One attempt at reading the rows with Arrow, in blocks of `block` bytes."""

    def __init__(self, blocks: _Blocks, block: int):
        self.blocks = blocks
        self.block = block
        self.unexplained = False  # a row Arrow refused that is not a blank line

    def _on_invalid(self, row: pcsv.InvalidRow) -> str:
        # A whitespace-only line is layout (csv_records.is_blank); anything else is for the
        # record-by-record reader to explain.
        columns = self.blocks.columns
        if columns > 1 and row.actual_columns == 1 and is_blank_text(row.text, columns):
            return "skip"
        self.unexplained = True
        return "error"

    def batches(self) -> Iterator[pa.RecordBatch]:
        blocks = self.blocks
        names = [f"c{i}" for i in range(blocks.columns)]
        source = pa.OSFile(str(blocks.path))
        try:
            source.seek(blocks.offset)
            reader = pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(column_names=names, block_size=self.block),
                parse_options=pcsv.ParseOptions(newlines_in_values=blocks.quoted, invalid_row_handler=self._on_invalid),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from reader
        finally:
            source.close()
