"""A first look at a CSV file's bytes, a block at a time, before any parsing.

It refuses what cannot be CSV text -- invalid UTF-8, NUL bytes (a binary file), nothing but
whitespace -- in bounded memory and time (a binary file is refused at its first NUL,
whatever its size), and says whether the file quotes fields at all and whether its
quoting is what Python's csv module accepts in strict mode. Arrow's parser is lenient
about quoting (`"a"x` reads as `ax`), so a file whose quoting Python would refuse goes to
the record-by-record reader for its exact error.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exchange.datasets.csv_records import BOM
from exchange.errors import DatasetError

_BLOCK = 8 << 20
_QUOTE, _COMMA, _CR, _LF = 34, 44, 13, 10
_SEPARATORS = (_COMMA, _CR, _LF)


@dataclass(frozen=True)
class CsvBytes:
    """What the bytes of a CSV file say about it."""

    quoted: bool  # some field is quoted (Arrow must then allow line breaks inside values)
    quoting_ok: bool  # the quoting is what Python's csv module accepts (strict)


def check_bytes(path: Path) -> CsvBytes:
    """Read the whole file once; DatasetError if it is not UTF-8 text with some content."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    quotes = _QuoteCheck()
    content = False
    with open(path, "rb") as handle:
        start = len(BOM) if handle.read(len(BOM)) == BOM else 0
        handle.seek(start)
        offset = start
        while block := handle.read(_BLOCK):
            nul = block.find(b"\x00")
            pending = len(decoder.getstate()[0])
            text = None
            if pending or nul >= 0 or not block.isascii():  # ASCII is UTF-8 as it stands
                try:
                    text = decoder.decode(block if nul < 0 else block[:nul])
                except UnicodeDecodeError as exc:
                    raise _not_utf8(path, offset - pending + exc.start) from None
            if nul >= 0:
                raise DatasetError(
                    f"{path} is a binary file, not CSV text (it holds a NUL byte at offset "
                    f"{offset + nul}); export the dataset as a UTF-8 .csv or a .parquet file."
                )
            if not content:
                content = bool((text if text is not None else block.decode("ascii")).strip())
            quotes.feed(block)
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, offset - len(decoder.getstate()[0]) + exc.start) from None
    if not content:
        raise DatasetError(f"{path} contains only whitespace; export the dataset again.")
    return CsvBytes(quoted=quotes.seen, quoting_ok=quotes.finish())


def _not_utf8(path: Path, offset: int) -> DatasetError:
    return DatasetError(
        f"{path} is not valid UTF-8 (first bad byte at offset {offset}, line {_lines_before(path, offset) + 1}); "
        "re-save it with UTF-8 encoding."
    )


def _lines_before(path: Path, offset: int) -> int:
    """Line feeds before byte `offset`, counted a block at a time."""
    count = 0
    with open(path, "rb") as handle:
        while offset > 0 and (block := handle.read(min(_BLOCK, offset))):
            count += block.count(b"\n")
            offset -= len(block)
    return count


class _QuoteCheck:
    """Python's csv quoting rules (strict, doubled quotes, no escape character), on bytes.

    A quote opens a quoted field only at the start of a field; inside one, a quote is
    either doubled or closes the field, and then a comma, a line break or the end of the
    file must follow. Any other quote is an ordinary character of an unquoted field.
    Only the quotes are visited, so a file with few quotes is checked at memory speed.
    """

    _OUTSIDE, _INSIDE, _CLOSING = 0, 1, 2  # closing: a quote ended a block inside a field

    def __init__(self) -> None:
        self.seen = False
        self._ok = True
        self._state = self._OUTSIDE
        self._before = _LF  # the start of the file starts a field

    def feed(self, block: bytes) -> None:
        if not self._ok or not block:
            return
        skip = -1
        if self._state == self._CLOSING:
            self._state = self._INSIDE if block[0] == _QUOTE else self._OUTSIDE
            if block[0] == _QUOTE:
                skip = 0
            elif block[0] not in _SEPARATORS:
                self._ok = False
                return
        if b'"' in block:
            self.seen = True
            positions = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _QUOTE).tolist()
            self._walk(block, positions, skip)
        self._before = block[-1]

    def _walk(self, block: bytes, positions: list[int], skip: int) -> None:
        last = len(block) - 1
        for q in positions:
            if q == skip:
                continue
            if self._state == self._OUTSIDE:
                before = block[q - 1] if q else self._before
                if before in _SEPARATORS:
                    self._state = self._INSIDE
            elif q == last:
                self._state = self._CLOSING
            else:
                after = block[q + 1]
                if after == _QUOTE:
                    skip = q + 1
                elif after in _SEPARATORS:
                    self._state = self._OUTSIDE
                else:
                    self._ok = False
                    return

    def finish(self) -> bool:
        """Whether the quoting was valid, now that the file has ended."""
        return self._ok and self._state != self._INSIDE
