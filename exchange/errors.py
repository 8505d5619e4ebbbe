"""One exception hierarchy for Cove.

Every error a user can cause carries one sentence that says what is wrong and what to
do about it. The CLI prints that sentence and exits non-zero; it never shows a traceback
for a CoveError. Messages never quote private data (row values), only names and positions.

Each class has a stable `error_code` (the `code` of `--json`'s error object) and an
`exit_code`: 2 for a user mistake (InputError and its kind, AccountError), 1 for a failure
of the chain, the network, storage or Cove itself.
"""

from __future__ import annotations

import re


class CoveError(Exception):
    """Base of all errors Cove raises on purpose. `str(err)` is the user-facing sentence."""

    exit_code: int = 1
    error_code: str = "error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A subclass defined elsewhere without a code of its own gets one from its name
        # (FederationError: "federation"), so that no two classes share a code by accident.
        super().__init_subclass__(**kwargs)
        if "error_code" not in cls.__dict__:
            words = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
            cls.error_code = words.removesuffix("_error") or words


class InputError(CoveError):
    """Something the user handed in (a file, a value, an option) is not acceptable."""

    error_code = "input"
    exit_code = 2


class HomeNotWritable(InputError):
    """Cove's state directory (--home, $COVE_HOME, ~/.cove) cannot be created or written."""

    error_code = "home_not_writable"


class DatasetError(InputError):
    """The dataset file cannot be read or does not meet Cove's requirements."""

    error_code = "dataset"


class PolicyError(InputError):
    """An access policy value is invalid."""

    error_code = "policy"


class StorageError(CoveError):
    """The content-addressed store failed."""

    error_code = "storage"


class ContentNotFound(StorageError):
    """No content is stored under the requested CID."""

    error_code = "not_found"


class ContentIntegrityError(StorageError):
    """Stored content does not hash to the CID it is stored under."""

    error_code = "integrity"


class AccountError(CoveError):
    """A keystore or account problem (unknown account, wrong password, ...)."""

    error_code = "account"
    exit_code = 2  # a name, a key or a password the user gave


class ChainError(CoveError):
    """The chain could not be reached or refused what was asked."""

    error_code = "chain"


class RpcUnreachable(ChainError):
    """No JSON-RPC endpoint answers at the configured URL."""

    error_code = "rpc_unreachable"


class NotDeployed(ChainError):
    """Cove's contracts are not deployed on the connected chain."""

    error_code = "not_deployed"


class TransactionReverted(ChainError):
    """A transaction (or its simulation) reverted.

    `error_name` and `error_args` hold the decoded custom error when one was recognised.
    """

    error_code = "reverted"

    def __init__(self, message: str, error_name: str | None = None, error_args: tuple = ()):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args


class SpecError(InputError):
    """A model spec is malformed, or does not fit the dataset it is meant to train on."""

    error_code = "spec"


class WeightsError(InputError):
    """Exported weights do not match the model their spec describes."""

    error_code = "weights"


class PrivacyError(CoveError):
    """A request or a model would break the privacy promise (see DESIGN.md section 6)."""

    error_code = "privacy"


class BudgetExceeded(PrivacyError, InputError):
    """A job would take the dataset's composed ε above its budget: a smaller job may still fit
    (a user mistake, exit 2, as for the per-job cap)."""

    error_code = "budget_exceeded"


class EpsilonAboveCap(PrivacyError, InputError):
    """A job would spend more ε than the dataset's per-job cap: the request does not fit the
    policy, as a spec that trains too many epochs does not (a user mistake, exit 2)."""

    error_code = "epsilon_above_cap"


class ModuleRefused(PrivacyError):
    """A torch module holds state that could carry private rows out (buffers, frozen weights)."""

    error_code = "module_refused"


class TrainingError(CoveError):
    """Private training failed. The message names the stage only, never the data."""

    error_code = "training"


class SandboxError(CoveError):
    """Sandboxed work could not run or did not finish.

    The message is generic on purpose (stage and reason: timeout, memory, CPU, crash...):
    the child's own output could quote private data, so it stays in the owner's local log
    at `log_path`. `reason` is a short machine-readable word.
    """

    error_code = "sandbox"

    def __init__(self, message: str, reason: str = "unavailable", log_path: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.log_path = log_path


class DecryptionError(CoveError):
    """Encrypted data could not be decrypted: the wrong key, or the data was altered."""

    error_code = "decryption"


class ProvenanceError(CoveError):
    """A provenance record is malformed or cannot be signed or verified."""

    error_code = "provenance"


class EndpointUnreachable(StorageError):
    """An HTTP endpoint or gateway did not answer usably: refused, timed out, or HTTP 5xx."""

    error_code = "endpoint_unreachable"


class EndpointRefused(StorageError):
    """An HTTP endpoint or gateway refused the request itself (an HTTP 4xx other than 404)."""

    error_code = "endpoint_refused"


class ContentMismatch(ContentIntegrityError):
    """Bytes received for a CID do not hash to it, or cannot form it; they were refused."""

    error_code = "content_mismatch"


class MalformedContent(ContentIntegrityError):
    """A block or CAR stream is not well-formed: bad protobuf, truncated CAR, missing block."""

    error_code = "malformed_content"


class ContentTooLarge(StorageError):
    """Content is larger than the limit the reader was given; it was not read further."""

    error_code = "content_too_large"


class ContentUnavailable(StorageError):
    """Content is neither in the local cache nor obtainable from any endpoint or gateway tried."""

    error_code = "content_unavailable"


class NodeError(ChainError):
    """The chain's JSON-RPC node answered with an error that is not a revert.

    `reason` is a short machine-readable word (evm-too-old, unsupported-method,
    insufficient-funds, nonce, fee, gas, rate-limited, unauthorized, too-many-logs, other);
    `code` is the node's JSON-RPC error code or HTTP status, when it gave one.
    """

    error_code = "node"

    def __init__(self, message: str, reason: str = "other", code: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.code = code


class NodeIncompatible(NodeError):
    """The node lacks what Cove needs: an EVM as recent as Cancun, or a JSON-RPC method."""

    error_code = "node_incompatible"


class TransactionRefused(NodeError):
    """The node would not accept a transaction: funds, nonce, fees or gas limit."""

    error_code = "transaction_refused"


class RpcRateLimited(NodeError):
    """The RPC provider is rate-limiting requests (HTTP 429 or its JSON-RPC equivalent)."""

    error_code = "rate_limited"


class RpcUnauthorized(NodeError):
    """The RPC provider refused access (HTTP 401/403): a missing or wrong API key."""

    error_code = "unauthorized"


class LogQueryLimited(NodeError):
    """The node refused a log query as too wide or too large, even for a single block."""

    error_code = "log_query_limited"
