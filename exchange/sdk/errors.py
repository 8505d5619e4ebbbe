"""Errors the SDK adds to Cove's hierarchy (exchange.errors): each is one readable sentence."""

from __future__ import annotations

from exchange.errors import CoveError


class JobFailed(CoveError):
    """The runner failed the job (nothing was released; the credit and the ε came back)."""

    def __init__(self, message: str, job_id: int, reason: str | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.reason = reason


class JobRefunded(CoveError):
    """The buyer took the job back after its deadline."""


class JobTimeout(CoveError):
    """A job did not finish within the time waited for it."""


class VerificationFailed(CoveError):
    """A job's results failed a provenance check; the model was not loaded."""
