"""Where Cove keeps its local state: keystores, the local chain, deployments, storage, index."""

from __future__ import annotations

import os
from pathlib import Path

from exchange.errors import HomeNotWritable

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The homes this process laid out, so that a write refused inside one of them (by a module
# that writes there itself: keystores, the deployment record, the cache) can be told apart
# from one refused elsewhere (`cove fetch -o /read-only/file`).
_HOMES: set[Path] = set()


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
        _HOMES.add(Path(os.path.abspath(root)))

    def _dir(self, *parts: str, mode: int = 0o777) -> Path:
        path = self.root.joinpath(*parts)
        try:
            path.mkdir(mode=mode, parents=True, exist_ok=True)
        except OSError as error:
            raise home_not_writable(self.root, error) from None
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
        return self._dir("private", mode=0o700)

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


def home_not_writable(root: Path, error: OSError) -> HomeNotWritable:
    """The one sentence for a state directory the OS refused to create or write."""
    reason = (error.strerror or str(error)).lower()
    return HomeNotWritable(
        f"Cove's state directory {root} is not writable ({reason}); pass a writable directory "
        "with --home DIR or set COVE_HOME."
    )


def home_holding(path: object) -> Path | None:
    """The home laid out in this process that `path` (an OSError's filename) lies in, if any."""
    if not isinstance(path, str | bytes | os.PathLike):
        return None
    where = Path(os.path.abspath(os.fsdecode(path)))
    return next((home for home in _HOMES if where == home or home in where.parents), None)
