"""The owner's private note of which local file backs which published dataset.

Only the owner's machine has it (the runner reads it to find the data); it never leaves.
Keyed by chain id and hub address, so datasets on different chains never mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from exchange.errors import InputError


class OwnedDatasets:
    def __init__(self, file: Path):
        self.file = file

    def _load(self) -> dict[str, str]:
        if not self.file.exists():
            return {}
        return dict(json.loads(self.file.read_text()))

    @staticmethod
    def _key(chain_id: int, hub: str, dataset_id: int) -> str:
        return f"{chain_id}:{hub.lower()}:{dataset_id}"

    def remember(self, chain_id: int, hub: str, dataset_id: int, path: Path) -> None:
        entries = self._load()
        entries[self._key(chain_id, hub, dataset_id)] = str(path.resolve())
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True))
        os.replace(tmp, self.file)

    def files(self, chain_id: int, hub: str) -> dict[int, Path]:
        prefix = f"{chain_id}:{hub.lower()}:"
        return {int(k[len(prefix):]): Path(v) for k, v in self._load().items() if k.startswith(prefix)}

    def file_of(self, chain_id: int, hub: str, dataset_id: int) -> Path:
        path = self.files(chain_id, hub).get(dataset_id)
        if path is None or not path.is_file():
            raise InputError(
                f"This machine has no private file for dataset #{dataset_id}; run the runner where it was "
                "published, or pass --data ID=PATH."
            )
        return path
