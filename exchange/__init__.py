"""Cove: a privacy-preserving data exchange. Python SDK and CLI.

`from exchange import Cove, Spec` is the notebook SDK (exchange.sdk); it is imported on
first use, so the CLI does not pay for it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Cove", "Spec", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Cove", "Spec"):
        from exchange import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'exchange' has no attribute {name!r}")
