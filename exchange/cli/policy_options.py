"""Policy options shared by `cove publish` and `cove policy set`, turned into PolicyTerms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.errors import PolicyError

Price = Annotated[str | None, typer.Option("--price", help="Price of one credit in the payment token (0 = free).")]
Token = Annotated[str | None, typer.Option("--token", help="Payment token address (default: the local test token).")]
Budget = Annotated[str | None, typer.Option("--budget", help="Total privacy budget ε of the dataset.")]
PerJobCap = Annotated[str | None, typer.Option("--per-job-cap", help="Largest ε one job may spend.")]
Delta = Annotated[str | None, typer.Option("--delta", help="δ of every (ε, δ) guarantee (default: 1e-5).")]
MaxEpochs = Annotated[int | None, typer.Option("--max-epochs", help="Most epochs one job may train (default: 20).")]
FreeCap = Annotated[int | None, typer.Option("--free-cap", help="Free credits per address (free datasets).")]
Expiry = Annotated[str | None, typer.Option("--expiry", help="Stop selling after this ISO date/time (UTC), or 'never'.")]
Allow = Annotated[list[str] | None, typer.Option("--allow", help="Allowlisted buyer address (repeatable).")]
AllowFile = Annotated[Path | None, typer.Option("--allowlist-file", help="File with one allowlisted address per line.")]
Family = Annotated[list[str] | None, typer.Option("--model-family", help="Allowed model family, e.g. mlp (repeatable).")]
ComputeOnly = Annotated[bool | None, typer.Option("--compute-only/--download", help="Credits buy compute only, or download too.")]


def read_allowlist_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise PolicyError(f"Cannot read the allowlist file {path}; check the path (UTF-8 text, one address per line).") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def policy_fields(
    *,
    price: str | None,
    token: str | None,
    budget: str | None,
    per_job_cap: str | None,
    delta: str | None,
    max_epochs: int | None,
    free_cap: int | None,
    expiry: str | None,
    allow: list[str] | None,
    allowlist_file: Path | None,
    families: list[str] | None,
    compute_only: bool | None,
) -> dict[str, Any]:
    """The policy fields given on the command line (absent options are left out)."""
    given: dict[str, Any] = {
        "price": price, "payment_token": token, "budget": budget, "per_job_cap": per_job_cap,
        "delta": delta, "max_epochs": max_epochs, "free_cap": free_cap, "compute_only": compute_only,
    }  # fmt: skip
    fields = {k: v for k, v in given.items() if v is not None}
    if expiry is not None:
        from exchange.policy import parse_expiry  # eth_abi and pydantic models: only when needed

        fields["expiry"] = parse_expiry(expiry)
    if allow or allowlist_file:
        fields["allowlist"] = list(allow or []) + (read_allowlist_file(allowlist_file) if allowlist_file else [])
    if families:
        fields["model_families"] = families
    return fields
