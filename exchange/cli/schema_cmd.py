"""`cove schema draft|check`: write the public schema a dataset is published under."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from exchange.cli.options import JsonOption
from exchange.cli.output import console, errors, print_json, success

# exchange.datasets (pandas, pyarrow) is imported by each command when it runs.

app = typer.Typer(help="The declared public schema of a dataset: draft it, edit it, check it.", no_args_is_help=True)

_DRAFT_WARNING = (
    "This draft was read off your private rows: its ranges, labels and nullability describe "
    "them. Edit it into public knowledge (the domain's natural ranges, the full list of codes) "
    "before you publish with --schema; Cove publishes exactly what the file says."
)


@app.command("draft")
def draft(
    file: Path = typer.Argument(..., help="The private CSV or Parquet file."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the draft here (default: print it)."),
    as_json: JsonOption = False,
) -> None:
    """Print a draft schema of a private file, for you to edit (it is read off the rows, so
    never publish it unedited)."""
    from exchange.datasets import draft_schema, load_table

    document = draft_schema(load_table(file)).model_dump(mode="json", exclude_none=True)
    text = json.dumps(document, indent=2) + "\n"
    if as_json:  # the warning travels with the draft: stderr is for an error alone
        if out is not None:
            out.write_text(text)
        print_json({"schema": document, "out": None if out is None else str(out), "warning": _DRAFT_WARNING})
        return
    errors.print(f"[yellow]{_DRAFT_WARNING}[/yellow]")
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        success(f"draft written to {out}")


@app.command("check")
def check(
    schema_file: Path = typer.Argument(..., help="The declared schema (JSON)."),
    file: Path | None = typer.Option(None, "--data", help="Also compare a private file with it (on this screen only)."),
    json: JsonOption = False,
) -> None:
    """Validate a declared schema, and say (to you alone) what training will adapt in a file:
    values clipped into the declared ranges, undeclared labels, missing cells."""
    from exchange.datasets import DatasetSchema, check_kinds, departures, load_table

    schema = DatasetSchema.load(schema_file)
    notes: list[str] = []
    if file is not None:
        frame = load_table(file)
        check_kinds(frame, schema)
        notes = departures(frame, schema)
    if json:
        print_json({"valid": True, "columns": len(schema.columns), "departures": notes})
        return
    success(f"{schema_file}: a valid schema of {len(schema.columns)} column(s)")
    for note in notes:
        console.print(f"  {note}")
