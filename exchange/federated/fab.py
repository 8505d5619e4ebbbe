"""Cove's Flower App bundle (FAB): where it lives, and the hash runners pin.

Runners never execute the FAB; they check that the run they are asked to join is Cove's own
(`fab_hash`), built from the same installed version, so that the ServerApp sending them
rounds is the one documented here and not, say, one that asks for evaluation metrics.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

APP_DIR = Path(__file__).with_name("app")


@cache
def fab_bytes() -> bytes:
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(APP_DIR)


def fab_hash() -> str:
    """sha256 hex of the FAB, as Flower reports a run's `fab_hash`."""
    return hashlib.sha256(fab_bytes()).hexdigest()
