"""Which private file backs which dataset, on the owner's premises.

A runner learns it three ways: explicitly (`--data ID=PATH`), by content (`--data PATH`:
the file whose commitment, keyed with the owner's commitment key, is a dataset's on-chain
commitment; so a runner started before the dataset was published serves it once it is), or
from the map `cove publish` keeps in a Cove home the runner shares with the publisher. Commitments of candidate files are computed
here, on the owner's machine, once per file version (size and modification time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from exchange.datasets import CommitmentKey, commit, load_table
from exchange.errors import CoveError
from exchange.owned import OwnedDatasets

log = logging.getLogger("cove.runner")


@dataclass
class DataFiles:
    """The private files a runner may train on, and how they are matched to datasets."""

    explicit: dict[int, Path] = field(default_factory=dict)
    candidates: tuple[Path, ...] = ()
    owned: OwnedDatasets | None = None
    chain_id: int = 0
    hub: str = ""
    key: CommitmentKey | None = None  # the owner's commitment key: needed to match by content
    _commitments: dict[tuple[Path, int, int], str | None] = field(default_factory=dict, repr=False)

    def match(self, datasets: Iterable[dict]) -> dict[int, Path]:
        """Dataset id → file for the `datasets` (index rows: id, commitment) this runner can serve."""
        recorded = self.owned.files(self.chain_id, self.hub) if self.owned is not None else {}
        by_commitment = self._candidate_commitments()
        found: dict[int, Path] = {}
        for dataset in datasets:
            dataset_id = int(dataset["id"])
            path = self.explicit.get(dataset_id) or recorded.get(dataset_id) or by_commitment.get(dataset["commitment"])
            if path is not None and path.is_file():
                found[dataset_id] = path
        return found

    def _candidate_commitments(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if self.key is None:
            return found
        for path in self.candidates:
            commitment = self._commitment(path)
            if commitment is not None:
                found.setdefault(commitment, path)
        return found

    def _commitment(self, path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        version = (path, stat.st_size, stat.st_mtime_ns)
        if version not in self._commitments:
            try:
                self._commitments[version] = commit(load_table(path), self.key).digest  # type: ignore[arg-type]
            except CoveError as error:  # unreadable as a table: not a dataset file
                log.warning("cannot use %s as a dataset file: %s", path, error)
                self._commitments[version] = None
        return self._commitments[version]
