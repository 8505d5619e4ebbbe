"""Byte-level facts about every string of an Arrow string array at once, from its buffers.

Arrow's string kernels cost tens of nanoseconds a cell (a regular expression, 60 to 100);
the questions the CSV reader asks of every chunk -- is any byte non-ASCII, does any cell
start or end with whitespace, does any cell hold a dot -- are a vectorised comparison or
two over the offsets and the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class StringView:
    """The offsets and bytes of a string array (one without nulls, or whose null slots are
    empty, as Arrow's kernels make them)."""

    def __init__(self, array: pa.Array):
        count = len(array)
        self.offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=count + 1, offset=array.offset * 4)
        data = array.buffers()[2]
        self._data = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
        self.starts = self.offsets[:-1]
        self.ends = self.offsets[1:]
        self.lengths = self.ends - self.starts

    @property
    def data(self) -> np.ndarray:
        """The bytes of all the strings, back to back."""
        return self._data[self.offsets[0] : self.offsets[-1]]

    def all_ascii(self) -> bool:
        data = self.data
        return not len(data) or int(data.max()) < 0x80

    def has_any(self, characters: bytes) -> bool:
        """Whether any string holds any of `characters` (single-byte ones)."""
        data = self.data
        return any(bool((data == c).any()) for c in characters)

    def first_bytes(self) -> np.ndarray:
        """Each string's first byte (0 for an empty string)."""
        nonempty = self.lengths > 0
        return np.where(nonempty, self._data[np.minimum(self.starts, len(self._data) - 1)], 0)

    def last_bytes(self) -> np.ndarray:
        """Each string's last byte (0 for an empty string)."""
        nonempty = self.lengths > 0
        return np.where(nonempty, self._data[np.maximum(self.ends - 1, 0)], 0)

    def starts_with_any(self, characters: bytes) -> np.ndarray:
        first = self.first_bytes()
        hit = np.zeros(len(first), dtype=bool)
        for c in characters:
            hit |= first == c
        return hit

    def edge_at_most(self, byte: int) -> bool:
        """Whether some non-empty string starts or ends with a byte at most `byte`."""
        nonempty = self.lengths > 0
        if not nonempty.any():
            return False
        return bool(((self.first_bytes() <= byte) & nonempty).any() or ((self.last_bytes() <= byte) & nonempty).any())
