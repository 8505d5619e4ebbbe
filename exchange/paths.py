"""Where Cove keeps its local state: keystores, the local chain, deployments, storage, index."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cove_home(override: Path | str | None = None) -> Path:
    """The Cove home directory: `override`, else $COVE_HOME, else ~/.cove."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("COVE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cove"


class HomeLayout:
    """Named paths inside one Cove home directory (created on demand)."""

    def __init__(self, root: Path):
        self.root = root

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def keystores(self) -> Path:
        return self._dir("keystores")

    @property
    def chain(self) -> Path:
        return self._dir("chain")

    @property
    def deployments(self) -> Path:
        return self._dir("deployments")

    @property
    def storage(self) -> Path:
        return self._dir("storage")

    @property
    def index(self) -> Path:
        return self._dir("index")

    @property
    def networks(self) -> Path:
        """Named networks (`cove network add`): RPC URL, hub address, gateways."""
        return self.root / "networks.json"

    @property
    def owned(self) -> Path:
        """The owner's private map of dataset ids to local files."""
        return self.root / "owned-datasets.json"

    @property
    def private(self) -> Path:
        """The owner's private state (0700): the commitment key, tables the SDK wrote."""
        path = self.root / "private"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    @property
    def commitment_key(self) -> Path:
        """The owner's commitment secret (see exchange.datasets.commitment.CommitmentKey)."""
        return self.private / "commitment.key"

    @property
    def runner(self) -> Path:
        return self._dir("runner")

    @property
    def federations(self) -> Path:
        """The aggregator's side of federated jobs: its SuperLink's state, each round's model."""
        return self._dir("federations")
