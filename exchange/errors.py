"""One exception hierarchy for Cove.

Every error a user can cause carries one sentence that says what is wrong and what to
do about it. The CLI prints that sentence and exits non-zero; it never shows a traceback
for a CoveError. Messages never quote private data (row values), only names and positions.
"""

from __future__ import annotations


class CoveError(Exception):
    """Base of all errors Cove raises on purpose. `str(err)` is the user-facing sentence."""

    exit_code: int = 1


class InputError(CoveError):
    """Something the user handed in (a file, a value, an option) is not acceptable."""

    exit_code = 2


class DatasetError(InputError):
    """The dataset file cannot be read or does not meet Cove's requirements."""


class PolicyError(InputError):
    """An access policy value is invalid."""


class StorageError(CoveError):
    """The content-addressed store failed."""


class ContentNotFound(StorageError):
    """No content is stored under the requested CID."""


class ContentIntegrityError(StorageError):
    """Stored content does not hash to the CID it is stored under."""


class AccountError(CoveError):
    """A keystore or account problem (unknown account, wrong password, ...)."""


class ChainError(CoveError):
    """The chain could not be reached or refused what was asked."""


class RpcUnreachable(ChainError):
    """No JSON-RPC endpoint answers at the configured URL."""


class NotDeployed(ChainError):
    """Cove's contracts are not deployed on the connected chain."""


class TransactionReverted(ChainError):
    """A transaction (or its simulation) reverted.

    `error_name` and `error_args` hold the decoded custom error when one was recognised.
    """

    def __init__(self, message: str, error_name: str | None = None, error_args: tuple = ()):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args
