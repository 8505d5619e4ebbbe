"""Provenance records: what the runner trained, how privately, and what it released.

A `ProvenanceRecord` says which dataset (by id and commitment) a job trained on, with which
spec, DP parameters and accountant, how much privacy it spent, in which environment
(libraries, device, sandbox), and what came out. It holds no time or duration: how long a
training took depends on the private rows, and only DP releases may. Every number that the chain also
knows is written exactly as the chain stores it (fixed-point integers), so the record and
the ledger compare without rounding, and the canonical JSON holds no floats.

The two weights fields name different things on purpose:

- `weights_hash`: 0x sha256 of the *plaintext* safetensors file. A buyer checks it after
  decrypting; it is the `weightsHash` the runner passes to `ComputeJobs.complete`.
- `weights_cid`: the CIDv1 of the *encrypted* blob in storage, where the buyer fetches it.

Hashing and signing:

- `record_hash(record)` = keccak256 of the record's canonical JSON
  (`exchange.storage.canonical_json`). It is the `provenanceHash` on chain.
- The runner signs EIP-712 typed data. Domain: name "Cove Provenance", version "1", the
  record's chain id, and the ComputeJobs contract as verifying contract. Message:

      Provenance(uint256 jobId, uint256 datasetId, bytes32 datasetCommitment,
                 bytes32 specHash, bytes32 weightsHash, string weightsCid,
                 uint64 epsilon, uint64 delta, string sandbox, bytes32 recordHash)

  The named fields are what a wallet shows a person; `recordHash` binds every other field,
  so changing anything in the record breaks the signature.

`check(...)` runs the checks a buyer or auditor makes and returns each one, passed or
failed, with a sentence saying why.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any, Literal

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_keys.exceptions import ValidationError as KeyValidationError
from eth_utils import is_address, keccak, to_checksum_address
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from exchange.errors import InputError, ProvenanceError
from exchange.storage.canonical import canonical_json
from exchange.storage.cid import Cid
from exchange.units import DELTA_SCALE, EPSILON_SCALE, RDP_SATURATED, epsilon_from_fixed

RECORD_VERSION = 2
DOMAIN_NAME = "Cove Provenance"
DOMAIN_VERSION = "1"

# Fixed-point scales, as the chain stores these values (see exchange.ml.accounting).
NOISE_SCALE = 10**6  # noise multiplier, millionths
SAMPLE_RATE_SCALE = 10**9  # Poisson sample rate, billionths
CLIP_SCALE = 10**6  # clipping norm, millionths
ORDER_SCALE = 10**3  # Rényi orders, thousandths (1.5 -> 1500)
CURVE_SCALE = 10**9  # RDP values, billionths, rounded up
UINT64_MAX = 2**64 - 1

PROVENANCE_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Provenance": [
        {"name": "jobId", "type": "uint256"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "datasetCommitment", "type": "bytes32"},
        {"name": "specHash", "type": "bytes32"},
        {"name": "weightsHash", "type": "bytes32"},
        {"name": "weightsCid", "type": "string"},
        {"name": "epsilon", "type": "uint64"},
        {"name": "delta", "type": "uint64"},
        {"name": "sandbox", "type": "string"},
        {"name": "recordHash", "type": "bytes32"},
    ],
}

_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_HEX_SIGNATURE = re.compile(r"^0x[0-9a-f]{130}$")


def _hex32(value: Any) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    text = text.lower() if text.lower().startswith("0x") else "0x" + text.lower()
    if not _HEX32.match(text):
        raise ValueError("must be 32 bytes as 0x-prefixed hex")
    return text


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError("must be an Ethereum address")
    return to_checksum_address(value)


def _cid(value: Any) -> str:
    try:
        return str(Cid.parse(value))
    except InputError as err:
        raise ValueError(str(err)) from None


Hash32 = Annotated[str, BeforeValidator(_hex32)]
Address = Annotated[str, BeforeValidator(_address)]
CidText = Annotated[str, BeforeValidator(_cid)]
Uint64 = Annotated[int, Field(ge=0, le=UINT64_MAX)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class DpRecord(_Frozen):
    """The DP-SGD parameters trained with, fixed point as on chain (ComputeJobs.DpParams)."""

    noise_multiplier: Uint64 = Field(gt=0, description="σ in millionths")
    sample_rate: Uint64 = Field(gt=0, le=SAMPLE_RATE_SCALE, description="q in billionths")
    steps: Uint64 = Field(gt=0)
    clip_norm: Uint64 = Field(gt=0, description="C in millionths")
    epochs: Uint64 = Field(gt=0)


class FederatedPartRecord(_Frozen):
    """A federated job's part: the rounds this runner trained, as the chain can check them.

    `round_models[r]` is the digest of the model round r+1 started from (the federation's
    initial digest, then each round's committed digest: `FederatedRounds.roundDigest`);
    `updates[r]` the digest of what this runner sent in round r+1, one leaf of that round's
    `updatesRoot`. Both are `exchange.federated.arrays.model_digest`s."""

    federated_rounds: Address = Field(description="the FederatedRounds contract")
    federation_id: int = Field(gt=0)
    rounds: int = Field(gt=0)
    round_models: tuple[Hash32, ...]
    updates: tuple[Hash32, ...]

    @model_validator(mode="after")
    def _one_each_round(self) -> FederatedPartRecord:
        if not len(self.round_models) == len(self.updates) == self.rounds:
            raise ValueError("a federated part records one model and one update for each round")
        return self


class ProvenanceRecord(_Frozen):
    """One job's provenance. Field units are the chain's; see the module docstring."""

    version: Literal[2] = RECORD_VERSION
    chain_id: int = Field(gt=0)
    compute_jobs: Address = Field(description="the ComputeJobs contract (EIP-712 verifier)")
    job_id: int = Field(ge=0)
    dataset_id: int = Field(ge=0)
    dataset_commitment: Hash32 = Field(description="0x sha256 commitment to the private data")
    spec_hash: Hash32
    runner: Address = Field(description="the runner that trained and signs")
    dp: DpRecord
    accountant: Literal["rdp"] = "rdp"
    rdp_orders: tuple[Uint64, ...] = Field(min_length=1, description="α in thousandths")
    rdp_curve: tuple[Uint64, ...] = Field(min_length=1, description="RDP(α) in billionths")
    epsilon: Uint64 = Field(description="ε this job spent at δ, in millionths (rounded up)")
    delta: Uint64 = Field(gt=0, lt=DELTA_SCALE, description="δ in 1e-18 units")
    library_versions: dict[str, str]
    device: str = Field(min_length=1, description="e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'")
    sandbox: Literal["bwrap", "unshare", "none"] = Field(
        description="how training was confined: namespaces by bwrap or unshare, always with the "
        "seccomp filter; 'none' means it ran unsandboxed"
    )
    public_rows: int = Field(gt=0, description="the dataset's public (DP) row count that set q")
    weights_hash: Hash32 = Field(description="0x sha256 of the PLAINTEXT safetensors file")
    weights_cid: CidText = Field(description="CIDv1 of the ENCRYPTED weights blob")
    # A federated job's part (its weights are the last round's local model); absent otherwise,
    # so a single-dataset record's canonical JSON and hash are what they always were.
    federation: FederatedPartRecord | None = None

    @model_serializer(mode="wrap")
    def _without_empty_federation(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("federation", 0) is None:
            del data["federation"]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ProvenanceRecord:
        if len(self.rdp_orders) != len(self.rdp_curve):
            raise ValueError("rdp_orders and rdp_curve must have one value per order")
        if any(a <= ORDER_SCALE for a in self.rdp_orders):
            raise ValueError("every Rényi order must be above 1")
        return self

    def canonical_bytes(self) -> bytes:
        """The record as canonical JSON: the bytes that are hashed and stored."""
        return canonical_json(self.model_dump(mode="json"))


class SignedProvenance(_Frozen):
    """A record and the runner's EIP-712 signature over it (0x, 65 bytes)."""

    record: ProvenanceRecord
    signature: str

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedProvenance:
        """Parse stored JSON; ProvenanceError if it is not a signed provenance record."""
        try:
            return cls.model_validate(json.loads(data))
        except (ValueError, ValidationError):
            raise ProvenanceError(
                "The data is not a well-formed signed provenance record."
            ) from None


class Check(_Frozen):
    """One verification step: its name, whether it passed, and a sentence saying why."""

    name: str
    passed: bool
    reason: str


def record_hash(record: ProvenanceRecord) -> str:
    """keccak256 of the record's canonical JSON, 0x hex: the on-chain provenance hash."""
    return "0x" + keccak(record.canonical_bytes()).hex()


def sha256_hex(data: bytes) -> str:
    """0x sha256 of `data`, the form `weights_hash` takes."""
    return "0x" + hashlib.sha256(data).hexdigest()


def typed_data(record: ProvenanceRecord) -> dict[str, Any]:
    """The EIP-712 typed data the runner signs for `record` (see the module docstring)."""
    return {
        "types": PROVENANCE_TYPES,
        "primaryType": "Provenance",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": record.chain_id,
            "verifyingContract": record.compute_jobs,
        },
        "message": {
            "jobId": record.job_id,
            "datasetId": record.dataset_id,
            "datasetCommitment": record.dataset_commitment,
            "specHash": record.spec_hash,
            "weightsHash": record.weights_hash,
            "weightsCid": record.weights_cid,
            "epsilon": record.epsilon,
            "delta": record.delta,
            "sandbox": record.sandbox,
            "recordHash": record_hash(record),
        },
    }


def _signable(record: ProvenanceRecord) -> SignableMessage:
    return encode_typed_data(full_message=typed_data(record))


def sign(record: ProvenanceRecord, account: LocalAccount) -> SignedProvenance:
    """The record signed by `account`, which must be the runner it names."""
    if to_checksum_address(account.address) != record.runner:
        raise ProvenanceError(
            f"The record names runner {record.runner}, so account {account.address} cannot sign it."
        )
    signed = account.sign_message(_signable(record))
    return SignedProvenance(record=record, signature="0x" + bytes(signed.signature).hex())


def verify_signature(signed: SignedProvenance) -> str:
    """The checksummed address that signed `signed.record`; ProvenanceError if malformed.

    Any well-formed signature recovers *some* address: compare it with the runner you
    expect (as `check` does) before trusting the record.
    """
    if not _HEX_SIGNATURE.match(signed.signature.lower()):
        raise ProvenanceError("The provenance signature is not 65 bytes of 0x hex.")
    try:
        return to_checksum_address(
            Account.recover_message(_signable(signed.record), signature=signed.signature)
        )
    except (BadSignature, KeyValidationError, ValueError, TypeError):
        raise ProvenanceError(
            "The provenance signature is malformed and recovers no signer."
        ) from None


def epsilon_of_curve(orders: Sequence[int], curve: Sequence[int], delta: int) -> int:
    """ε (millionths, rounded up) of a fixed-point RDP curve at δ (1e-18 units).

    The conversion the ledger and Opacus use (Balle et al. 2020):
    ε = max(0, min over α of RDP(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)), over the orders
    the ledger holds a finite value for (entries below RDP_SATURATED).
    """
    d = delta / DELTA_SCALE
    best = math.inf
    for order, value in zip(orders, curve, strict=True):
        if value >= RDP_SATURATED:
            continue
        alpha, rdp = order / ORDER_SCALE, value / CURVE_SCALE
        bound = rdp + math.log((alpha - 1) / alpha) - (math.log(d) + math.log(alpha)) / (alpha - 1)
        best = min(best, bound)
    if math.isinf(best):  # no finite order: what the chain's epsilonOf answers
        return 2**256 - 1
    return int((Decimal(max(0.0, best)) * EPSILON_SCALE).to_integral_value(rounding=ROUND_CEILING))


def _passed(name: str, ok: bool, good: str, bad: str) -> Check:
    return Check(name=name, passed=ok, reason=good if ok else bad)


def _signature_check(signed: SignedProvenance, expected_runner: str) -> Check:
    try:
        signer = verify_signature(signed)
    except ProvenanceError as err:
        return Check(name="signature", passed=False, reason=str(err))
    runner = to_checksum_address(expected_runner)
    if signer != runner:
        return Check(
            name="signature", passed=False,
            reason=f"The record was signed by {signer}, not by the dataset's runner {runner}.",
        )
    if signed.record.runner != runner:
        return Check(name="signature", passed=False,
                     reason=f"The record names runner {signed.record.runner}, not {runner}.")
    return Check(name="signature", passed=True,
                 reason=f"The signature recovers to the dataset's runner {runner}.")


def _epsilon_checks(
    record: ProvenanceRecord, ledger_epsilon: int | None, ledger_curve: Sequence[int] | None
) -> list[Check]:
    recomputed = epsilon_of_curve(record.rdp_orders, record.rdp_curve, record.delta)
    # One millionth of slack: the runner may round δ or ε through floats differently.
    checks = [_passed(
        "epsilon", abs(recomputed - record.epsilon) <= 1,
        f"ε {epsilon_from_fixed(record.epsilon)} follows from the recorded RDP curve at δ.",
        f"The record claims ε {epsilon_from_fixed(record.epsilon)} but its RDP curve gives "
        f"ε {epsilon_from_fixed(recomputed)} at its δ.",
    )]
    if ledger_epsilon is not None:
        checks.append(_passed(
            "ledger_epsilon", ledger_epsilon == record.epsilon,
            "ε matches the privacy ledger on chain.",
            f"The record claims ε {epsilon_from_fixed(record.epsilon)} but the ledger charged "
            f"ε {epsilon_from_fixed(ledger_epsilon)}.",
        ))
    if ledger_curve is not None:
        checks.append(_passed(
            "ledger_curve", tuple(ledger_curve) == record.rdp_curve,
            "The RDP curve matches the one charged on chain.",
            "The record's RDP curve differs from the one charged on chain.",
        ))
    return checks


def check(
    signed: SignedProvenance,
    *,
    expected_runner: str,
    onchain_provenance_hash: bytes | str,
    weights_plaintext: bytes | None,
    spec_hash: bytes | str,
    ledger_epsilon: int | None = None,
    ledger_curve: Sequence[int] | None = None,
    job_id: int | None = None,
) -> list[Check]:
    """The buyer's and auditor's checks of a signed record, each passed or failed.

    `expected_runner` is the dataset's registered runner, `onchain_provenance_hash` the
    job's provenance hash on chain, `weights_plaintext` the decrypted safetensors bytes (None
    for anyone but the buyer, who alone can decrypt them: that check is then left out),
    `spec_hash` the spec the buyer asked for. `ledger_epsilon` (millionths),
    `ledger_curve` (the job's on-chain RDP curve) and `job_id` add checks when given.
    Pure: reads nothing, raises nothing for a bad record; trust it only if all passed.
    """
    record = signed.record
    digest = record_hash(record)
    checks = [
        _signature_check(signed, expected_runner),
        _passed("record_hash", digest == _safe_hex32(onchain_provenance_hash),
                "The record hashes to the provenance hash on chain.",
                f"The record hashes to {digest}, not to the provenance hash on chain."),
        _passed("spec_hash", _safe_hex32(spec_hash) == record.spec_hash,
                "The record names the spec that was requested.",
                f"The record names spec {record.spec_hash}, not the one requested."),
        *_epsilon_checks(record, ledger_epsilon, ledger_curve),
    ]
    if weights_plaintext is not None:
        checks.insert(2, _passed("weights_hash", sha256_hex(weights_plaintext) == record.weights_hash,
                                 "The decrypted weights hash to the record's weights hash.",
                                 "The decrypted weights do not hash to the record's weights hash."))
    if job_id is not None:
        checks.append(_passed("job_id", job_id == record.job_id,
                              f"The record is for job {job_id}.",
                              f"The record is for job {record.job_id}, not job {job_id}."))
    return checks


def _safe_hex32(value: bytes | str) -> str | None:
    try:
        return _hex32(value)
    except ValueError:
        return None


def all_passed(checks: Sequence[Check]) -> bool:
    return all(c.passed for c in checks)
