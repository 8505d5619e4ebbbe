"""`cove audit`: the owner's empirical privacy audit of the runner's DP training, before selling.

It trains once, on the owner's machine, with the runner's own training function on the
private table plus random canaries, and prints the empirical ε lower bound next to the
claimed ε (compute_to_data.audit). Nothing leaves the machine and no file is written: the
report goes to this terminal (or, with --json, to stdout for the owner to redirect).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from exchange.cli.options import JsonOption
from exchange.cli.output import console, fields, print_json
from exchange.errors import InputError
from exchange.units import delta_text

audit_app = typer.Typer(
    no_args_is_help=True,
    subcommand_metavar="",  # one command, no subcommands: the usage line shows none
)


@audit_app.callback(invoke_without_command=True)
def audit_command(
    data: Path = typer.Option(..., "--data", help="The private table (CSV or Parquet); it never leaves this machine."),
    spec_file: Path = typer.Option(..., "--spec", help="The model spec (JSON) to audit."),
    schema_file: Path | None = typer.Option(None, "--schema", help="The declared schema (JSON) the runner trains with (default: a draft read off the table)."),
    canaries: int = typer.Option(1000, "--canaries", help="Canary rows, each included with probability 1/2."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the lower bound."),
    rows: int | None = typer.Option(None, "--rows", help="The public row count that sets the sample rate (default: the table's rows plus half the canaries)."),
    device: str | None = typer.Option(None, "--device", help="Torch device (default: cuda when available, else cpu)."),
    json: JsonOption = False,
) -> None:
    """Audit the runner's DP training on your own data: an empirical ε lower bound.

    Trains once with the runner's own DP training on your table plus random canaries and reports the empirical ε lower bound (Steinke, Nasr & Jagielski 2023) next to the claimed ε. Each canary is a crafted row (features at the ends of the schema's ranges, a random label), included with probability 1/2; the attack ranks canaries by their loss. A bound above the claim means the training leaks more than it claims. Nothing is released or written.
    """  # fmt: skip
    from compute_to_data.audit import STAGES, audit
    from exchange.datasets import load_table

    spec = _read_spec(spec_file)
    frame = load_table(data)
    schema = _schema(schema_file, frame)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=json) as progress:
        task = progress.add_task("auditing", total=len(STAGES))

        def stage(name: str) -> None:
            progress.update(task, description=name, completed=STAGES.index(name))

        report = audit(frame, schema, spec, canaries=canaries, confidence=confidence, public_rows=rows,
                       device=device, progress=stage)  # fmt: skip
        progress.update(task, completed=len(STAGES))
    if json:
        print_json(_finite(report.to_dict()))
        return
    console.print(fields("Privacy audit (one training run, on this machine only)", [
        ("training", report.training),
        (f"claimed ε (δ = {delta_text(report.delta)})", f"{report.claimed_epsilon:.4f}"),
        (f"empirical ε lower bound ({report.confidence:.0%} confidence)", f"{report.epsilon_lower_bound:.4f}"),
        ("attack AUC (all canaries)", f"{report.auc:.4f}"),
        ("canaries", f"{report.canaries} ({report.included} included)"),
        ("guesses made", f"{report.guesses} ({report.guesses_in} in, {report.guesses_out} out; best of {len(report.plans)} plans)"),
        ("correct guesses", str(report.correct)),
        ("rows", f"{report.table_rows} in the table, {report.rows_trained} trained on, {report.public_rows} public (sets q)"),
        ("DP parameters", (f"σ {report.noise_multiplier:g}, q {report.sample_rate:g}, {report.steps} steps, "
                           f"{report.epochs} epochs, clip {report.max_grad_norm:g}")),
        ("time", f"{report.seconds:.1f} s"),
    ]))  # fmt: skip
    if report.violated:
        console.print("[red]✗[/red] The lower bound exceeds the claimed ε: this training leaks more than it claims.")
    else:
        console.print("[green]✓[/green] Consistent with the claimed ε (a lower bound: it cannot show the claim is tight).")


def _read_spec(path: Path):  # type: ignore[no-untyped-def]
    from exchange.ml.spec import ModelSpec

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"Cannot read the spec file {path}; check the --spec path (UTF-8 JSON).") from None
    return ModelSpec.parse(text)


def _schema(path: Path | None, frame: Any):  # type: ignore[no-untyped-def]
    from exchange.datasets.schema import DatasetSchema, draft_schema

    if path is None:
        return draft_schema(frame)  # the owner's own screen only: nothing here is published
    return DatasetSchema.load(path)


def _finite(value: Any) -> Any:
    """JSON has no infinity: a non-finite number (an unbounded claimed ε) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
