"""A table encoded for training as it streams by, a chunk of rows at a time.

`TableEncoder` is a reader's sink (exchange.datasets.stream.TableSink): each chunk becomes a
small frame of the spec's columns, which `encode_features` and `encode_target` (with
`fill_missing`) turn into rows of the training arrays, exactly as they would on the whole
table, since every row's encoding depends on that row and the public schema alone. The
table itself is never held: memory is one chunk plus the arrays (float32 features and the
targets), which are allocated once, for the public (DP) row count.

Nothing here raises while the file is read: a failure only marks the encoding as failed,
and `EncodedTable.tensors` raises later, when training reaches its encoding stage, so that
a bad file, a file that is not the committed one, or kinds that are not the declared ones
are reported first, as they were when the whole table was loaded before encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from exchange.datasets.canonical import CanonicalColumn
from exchange.datasets.frames import empty_frame, to_frame
from exchange.datasets.schema import DatasetSchema, Kind, check_kinds
from exchange.datasets.stream import TableLayout
from exchange.ml.model import encode_features, encode_target
from exchange.ml.spec import ModelSpec

# Room above the public row count before the arrays must grow: that count is the true one
# plus a little noise (exchange.datasets.dp_count), a few dozen rows either way.
_SLACK_ROWS = 4096


@dataclass(frozen=True)
class EncodedTable:
    """A streamed table: its layout, and its training arrays (None if encoding failed)."""

    names: list[str]
    kinds: list[Kind]
    features: torch.Tensor | None
    targets: torch.Tensor | None

    def kinds_frame(self) -> pd.DataFrame:
        """A frame without rows with the table's columns and dtypes, for `check_kinds`."""
        return empty_frame(self.names, self.kinds)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.features is None or self.targets is None:
            raise ValueError("the table could not be encoded")  # no cause: it could be private
        return self.features, self.targets


class TableEncoder:
    """Encodes the chunks of a stream into preallocated arrays (see the module docstring)."""

    def __init__(self, spec: ModelSpec, schema: DatasetSchema, *, expected_rows: int):
        spec.check_against(schema)  # public: a spec that does not fit fails before any row
        self.spec = spec
        self.schema = schema
        self.capacity = expected_rows + _SLACK_ROWS
        self.used = list(dict.fromkeys([*spec.features, spec.target]))
        self.features: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.begin([], [])

    def begin(self, names: Sequence[str], kinds: Sequence[Kind]) -> None:
        """Start over (a CSV reader that re-reads the file calls it again); the arrays stay."""
        self.names, self.kinds = list(names), list(kinds)
        self.rows = 0
        self.failed = False
        # Kinds that are not the declared ones are refused at the kinds check; encoding them
        # would be wasted work.
        self.encoding = _declared(self.names, self.kinds, self.schema)
        self.columns = [self.names.index(name) for name in self.used] if self.encoding else []

    def add(self, columns: Sequence[CanonicalColumn]) -> None:
        if not self.encoding or self.failed:
            return
        try:
            self._append(columns)
        except Exception:  # noqa: BLE001 - deliberately opaque: the cause could be private
            self.failed = True
            self.features = self.targets = None

    def _append(self, columns: Sequence[CanonicalColumn]) -> None:
        kinds = [self.kinds[i] for i in self.columns]
        chunk = to_frame(self.used, kinds, [[columns[i].values] for i in self.columns])
        features = encode_features(self.spec, self.schema, chunk).numpy()
        targets = encode_target(self.spec, self.schema, chunk, fill_missing=True)[0].numpy()
        if len(targets) != len(features):
            raise ValueError("a target was left out")  # fill_missing keeps every row
        self.features = _room(self.features, features, self.rows, self.capacity)
        self.targets = _room(self.targets, targets, self.rows, self.capacity)
        self.features[self.rows : self.rows + len(features)] = features
        self.targets[self.rows : self.rows + len(targets)] = targets
        self.rows += len(features)

    def table(self, layout: TableLayout) -> EncodedTable:
        """The result of a complete read (`layout` is what the reader returned)."""
        features, targets = self.features, self.targets
        self.features = self.targets = None  # the table's tensors are the only references
        if not self.encoding or self.failed or self.rows != layout.rows or features is None or targets is None:
            return EncodedTable(layout.names, layout.kinds, None, None)
        # Shrinking in place gives the unused rows back without a copy.
        features.resize((self.rows, *features.shape[1:]), refcheck=False)
        targets.resize((self.rows,), refcheck=False)
        return EncodedTable(layout.names, layout.kinds, torch.from_numpy(features), torch.from_numpy(targets))


def _declared(names: list[str], kinds: list[Kind], schema: DatasetSchema) -> bool:
    try:
        check_kinds(empty_frame(names, kinds), schema)
    except Exception:  # noqa: BLE001 - the kinds check reports it, at its stage
        return False
    return True


def _room(array: np.ndarray | None, chunk: np.ndarray, rows: int, capacity: int) -> np.ndarray:
    """`array` with room for `chunk` after its first `rows` rows: allocated at the first chunk
    for `capacity` rows (pages never written cost no resident memory), grown by half if the
    public count was low."""
    if array is None:
        return np.empty((max(capacity, len(chunk)), *chunk.shape[1:]), dtype=chunk.dtype)
    if rows + len(chunk) > len(array):
        array.resize((max(rows + len(chunk), len(array) * 3 // 2), *array.shape[1:]), refcheck=False)
    return array
