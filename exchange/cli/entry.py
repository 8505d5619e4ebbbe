"""The `cove` script's entry point: Ctrl-C ends it quietly with 130, however early it comes.

`exchange.cli.app` imports Typer, Rich and every command module (a few tenths of a second),
and a KeyboardInterrupt raised by those imports would escape `app.main`'s handling as a
traceback. This module imports only the standard library, so the window left is Python's
own start-up.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130  # exchange.cli.app.INTERRUPTED, which this module must not import first


def main() -> None:
    try:
        from exchange.cli.app import main as cove

        cove()
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
