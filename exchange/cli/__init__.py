"""The `cove` command line (Typer + Rich)."""
