"""`python -m exchange.cli`: the `cove` command, for when its script is not on PATH."""

from exchange.cli.entry import main

main()
