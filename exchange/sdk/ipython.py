"""One readable line for a CoveError in IPython and Jupyter, instead of a traceback.

A CoveError's message is the whole story (what is wrong and what to do), and the web3
exceptions under it are never chained (`raise ... from None`), so the traceback adds
nothing but noise. `install()` registers a custom exception handler on the running IPython
shell that prints `CoveError: <sentence>`; other exceptions keep IPython's tracebacks.
"""

from __future__ import annotations

import sys
from typing import Any

from exchange.errors import CoveError


def _get_ipython() -> Any:
    """The running IPython shell, or None (also when IPython is not installed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def one_line(error: BaseException) -> str:
    """What the handler prints for `error`."""
    sentence = " ".join(str(error).split()) or type(error).__name__
    return f"CoveError: {sentence}"


def cove_error_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    """IPython custom exception handler: prints one line, shows no traceback."""
    print(one_line(value), file=sys.stderr)
    return []


def install(shell: Any = None) -> bool:
    """Registers `cove_error_handler` for CoveError on `shell` (default: the running IPython).

    Returns whether it is registered. A shell that already has another custom handler
    keeps it: the SDK never takes over a handler it did not install.
    """
    shell = shell if shell is not None else _get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    current = tuple(getattr(shell, "custom_exceptions", ()) or ())
    if current and current != (CoveError,):
        return False
    shell.set_custom_exc((CoveError,), cove_error_handler)
    return True
