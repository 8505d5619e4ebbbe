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


class SpecError(InputError):
    """A model spec is malformed, or does not fit the dataset it is meant to train on."""


class WeightsError(InputError):
    """Exported weights do not match the model their spec describes."""


class PrivacyError(CoveError):
    """A request or a model would break the privacy promise (see DESIGN.md section 6)."""


class ModuleRefused(PrivacyError):
    """A torch module holds state that could carry private rows out (buffers, frozen weights)."""


class TrainingError(CoveError):
    """Private training failed. The message names the stage only, never the data."""


class SandboxError(CoveError):
    """Sandboxed work could not run or did not finish.

    The message is generic on purpose (stage and reason: timeout, memory, CPU, crash...):
    the child's own output could quote private data, so it stays in the owner's local log
    at `log_path`. `reason` is a short machine-readable word.
    """

    def __init__(self, message: str, reason: str = "unavailable", log_path: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.log_path = log_path


class DecryptionError(CoveError):
    """Encrypted data could not be decrypted: the wrong key, or the data was altered."""


class ProvenanceError(CoveError):
    """A provenance record is malformed or cannot be signed or verified."""


class EndpointUnreachable(StorageError):
    """An HTTP endpoint or gateway did not answer usably: refused, timed out, or HTTP 5xx."""


class EndpointRefused(StorageError):
    """An HTTP endpoint or gateway refused the request itself (an HTTP 4xx other than 404)."""


class ContentMismatch(ContentIntegrityError):
    """Bytes received for a CID do not hash to it, or cannot form it; they were refused."""


class MalformedContent(ContentIntegrityError):
    """A block or CAR stream is not well-formed: bad protobuf, truncated CAR, missing block."""


class ContentTooLarge(StorageError):
    """Content is larger than the limit the reader was given; it was not read further."""


class ContentUnavailable(StorageError):
    """Content is neither in the local cache nor obtainable from any endpoint or gateway tried."""


class NodeError(ChainError):
    """The chain's JSON-RPC node answered with an error that is not a revert.

    `reason` is a short machine-readable word (evm-too-old, unsupported-method,
    insufficient-funds, nonce, fee, gas, rate-limited, unauthorized, too-many-logs, other);
    `code` is the node's JSON-RPC error code or HTTP status, when it gave one.
    """

    def __init__(self, message: str, reason: str = "other", code: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.code = code


class NodeIncompatible(NodeError):
    """The node lacks what Cove needs: an EVM as recent as Cancun, or a JSON-RPC method."""


class TransactionRefused(NodeError):
    """The node would not accept a transaction: funds, nonce, fees or gas limit."""


class RpcRateLimited(NodeError):
    """The RPC provider is rate-limiting requests (HTTP 429 or its JSON-RPC equivalent)."""


class RpcUnauthorized(NodeError):
    """The RPC provider refused access (HTTP 401/403): a missing or wrong API key."""


class LogQueryLimited(NodeError):
    """The node refused a log query as too wide or too large, even for a single block."""
