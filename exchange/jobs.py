"""Compute jobs from the buyer's side: request, follow, fetch, verify.

A request is priced before it is sent: the SDK computes the job's DP parameters and
RDP curve exactly as the runner will, checks them against the policy (per-job cap,
remaining budget, epochs, model family) and refuses with one sentence, so a transaction
is only sent when the chain will accept it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from eth_abi import encode
from eth_utils import keccak
from web3.logs import DISCARD

from exchange.catalog import DatasetView, dataset_view
from exchange.client import CoveClient
from exchange.errors import (
    BudgetExceeded, EpsilonAboveCap, InputError, PrivacyError, ProvenanceError, SpecError, TransactionReverted,
)
from exchange.index import checksummed
from exchange.merkle import MerkleTree, address_leaf, bytes32_leaf
from exchange.ml.accounting import (
    NOISE_SCALE, ORDERS, SAMPLE_RATE_SCALE, DpParams, compose, epsilon_fixed, fixed_curve, rdp_curve,
)  # fmt: skip
from exchange.policy import model_family_hash
from exchange.provenance import Check, SignedProvenance, check
from exchange.storage import Cid
from exchange.units import CREDIT, EPSILON_SCALE, epsilon_from_fixed, number_text

if TYPE_CHECKING:
    # Imported where used: the spec imports pandas (through the schema), crypto eciespy;
    # listing jobs needs neither.
    from exchange.ml.spec import ModelSpec

JOB_STATUSES = ("none", "requested", "accepted", "completed", "failed", "refunded")
DEFAULT_DEADLINE_S = 24 * 3600
MAX_SPEC_WIRE_BYTES = 16_384  # ComputeJobs.MAX_SPEC_BYTES: the compressed spec a request may carry


@dataclass(frozen=True)
class JobTicket:
    """A request that the chain accepted."""

    job_id: int
    dataset_id: int
    spec_hash: str
    epsilon: float  # what this job spends, at the policy's δ
    composed_epsilon: float  # the dataset's ε after this job
    delta: float  # the policy's δ
    tx_hash: str
    gas_used: int


@dataclass(frozen=True)
class JobInfo:
    job_id: int
    dataset_id: int
    consumer: str
    status: str
    deadline: int
    runner: str | None
    weights_digest: bytes
    weights_hash: bytes
    provenance_hash: bytes


@dataclass(frozen=True)
class JobResult:
    """A completed job's outputs, decrypted and checked."""

    job: JobInfo
    weights: bytes  # the plaintext safetensors file
    provenance: SignedProvenance
    spec: ModelSpec
    checks: list[Check]

    @property
    def verified(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True)
class JobQuote:
    """What a job would cost, priced exactly as the chain and the runner will charge it."""

    view: DatasetView
    params: DpParams
    curve: tuple[int, ...]  # fixed point, as the request carries it
    epsilon: int  # the job's own ε, millionths
    composed: int  # the dataset's ε after this job, millionths


def check_spec_policy(spec: ModelSpec, policy: Any, dataset_id: int) -> None:
    """The policy's refusals of a spec (δ, epochs, model family), in the chain's words.

    `policy` is anything with PolicyTerms' fields (`delta`, `max_epochs`, `model_families`).
    """
    if spec.dp.delta != float(policy.delta):
        raise SpecError(f"The spec's δ ({spec.dp.delta}) must be the dataset's δ ({float(policy.delta)}).")
    if spec.total_epochs > policy.max_epochs:
        rounds = f" ({spec.epochs} in each of {spec.rounds} rounds)" if spec.federation else ""
        raise SpecError(
            f"The spec trains {spec.total_epochs} epochs{rounds}; dataset #{dataset_id} allows at most {policy.max_epochs}."
        )
    families = getattr(policy, "model_families", ())
    if families and spec.family not in families:
        raise SpecError(f"Dataset #{dataset_id} allows the model families {', '.join(families)}, not {spec.family!r}.")


def check_job_cap(spec: ModelSpec, own: int, per_job_cap: Decimal) -> None:
    """Refuses a job whose own ε (millionths) is above the policy's per-job cap, with advice that
    fits the spec: a spec that names its ε is told which ε fits, one that names its noise how to
    spend less."""
    if own <= int(per_job_cap * EPSILON_SCALE):
        return
    target = spec.dp.target_epsilon
    spent = epsilon_text(epsilon_from_fixed(own), target)
    if target is None:
        advice = "raise noise_multiplier, train fewer epochs or use a smaller expected_batch_size"
    elif Decimal(repr(float(target))) > per_job_cap:
        advice = f"lower target_epsilon to at most {number_text(per_job_cap)}"
    else:  # the target is the cap, and the chain's fixed-point accounting lands just above it
        advice = f"lower target_epsilon a little below {number_text(per_job_cap)}"
    raise EpsilonAboveCap(f"This job would spend ε {spent}, above the per-job cap of ε {number_text(per_job_cap)}; {advice}.")


# How far the ε the accountant reaches may lie from a target and still read as that target:
# the noise search stops on the chain's grid of σ, and ε is kept in millionths.
_TARGET_RELATIVE = Decimal("1e-5")
_TARGET_ABSOLUTE = Decimal("1e-6")


def epsilon_text(epsilon: Decimal, written: float | None = None) -> str:
    """ε as the user wrote it when rounding is the only difference (a target of 5 the accountant
    reaches as 4.999992 reads 5), else exactly, without trailing zeros."""
    if written is not None:
        target = Decimal(repr(float(written)))
        if abs(epsilon - target) <= max(target * _TARGET_RELATIVE, _TARGET_ABSOLUTE):
            return number_text(target)
    return number_text(epsilon)


def price_job(client: CoveClient, dataset_id: int, spec: ModelSpec) -> JobQuote:
    """The job's DP parameters, curve, ε and composed ε, or the refusal the chain would give."""
    view = dataset_view(client, dataset_id)
    spec.check_against(view.metadata.schema_)
    policy = view.policy
    check_spec_policy(spec, policy, dataset_id)
    params = DpParams.for_spec(spec, view.rows)
    curve = params.curve_fixed()
    own = epsilon_fixed(curve, params.delta)
    check_job_cap(spec, own, policy.per_job_cap)
    ledger = client.session.call(client.jobs.functions.curveOf(dataset_id))
    composed = epsilon_fixed(compose([tuple(ledger), curve]), params.delta)
    budget = int(policy.budget * EPSILON_SCALE)
    if composed > budget:
        spent = client.session.call(client.jobs.functions.composedEpsilon(dataset_id))
        raise BudgetExceeded(
            f"Dataset #{dataset_id} has not enough privacy budget left: it has spent ε {epsilon_from_fixed(spent)} "
            f"of ε {number_text(policy.budget)}, and this job would bring it to ε {epsilon_from_fixed(composed)}; "
            "ask for less ε (a lower target_epsilon, more noise or fewer epochs), or for a higher budget from "
            "the dataset's policy controller."
        )
    return JobQuote(view, params, curve, own, composed)


def request_job(
    client: CoveClient, dataset_id: int, spec: ModelSpec, *, deadline_seconds: int = DEFAULT_DEADLINE_S,
    federation_part: bool = False,
) -> JobTicket:
    """Spends one credit of `dataset_id` on training `spec`; the runner takes it from there.

    A spec with a `federation` section is requested only as a part of a federation
    (`exchange.federated.request`, which passes `federation_part`): alone, its runner would
    wait for a federation that never opens."""
    if (spec.federation is not None) != federation_part:
        raise SpecError(
            "This spec has a federation section: train it over several datasets (`cove train --dataset A "
            "--dataset B --rounds R`), or remove the section." if spec.federation is not None
            else "A federation's job needs a spec with a federation section."
        )
    buyer = client.session.sender
    quote = price_job(client, dataset_id, spec)
    terms = quote.view.policy
    credits = client.session.call(client.datatoken(quote.view.datatoken).functions.balanceOf(buyer))
    if credits < CREDIT:
        raise InputError(f"{buyer} holds no credit of dataset #{dataset_id}; buy one with `cove buy {dataset_id}`.")

    allow_proof: list[bytes] = []
    if terms.allowlist:
        proof = MerkleTree([address_leaf(a) for a in terms.allowlist]).proof(address_leaf(buyer))
        if proof is None:
            raise InputError(f"{buyer} is not on the allowlist of dataset #{dataset_id}; ask its owner to add you.")
        allow_proof = proof
    family = model_family_hash(spec.family)
    family_proof: list[bytes] = []
    if terms.model_families:
        tree = MerkleTree([bytes32_leaf(model_family_hash(f)) for f in terms.model_families])
        family_proof = tree.proof(bytes32_leaf(family)) or []

    from exchange.crypto import public_key_of

    wire = spec.to_wire()
    if len(wire) > MAX_SPEC_WIRE_BYTES:
        raise SpecError(
            f"The spec is {len(wire)} bytes compressed, above the {MAX_SPEC_WIRE_BYTES} a request may carry; "
            "use fewer or shorter feature names."
        )
    now = client.chain_time()
    request = (
        dataset_id,
        bytes.fromhex(spec.spec_hash()[2:]),
        wire,
        quote.params.to_onchain().as_tuple(),
        list(quote.curve),
        family,
        family_proof,
        allow_proof,
        now + deadline_seconds,
        public_key_of(client.session.account),
    )
    function = client.jobs.functions.request(request)
    client.session.simulate(function)
    receipt = client.session.transact(function)
    event = client.jobs.events.JobRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return JobTicket(
        job_id=int(event["jobId"]),
        dataset_id=dataset_id,
        spec_hash=spec.spec_hash(),
        epsilon=float(epsilon_from_fixed(quote.epsilon)),
        composed_epsilon=float(epsilon_from_fixed(quote.composed)),
        delta=quote.params.delta,
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def job_info(client: CoveClient, job_id: int) -> JobInfo:
    no_such_job = InputError(f"There is no job #{job_id}; list them with `cove jobs`.")  # a user's typo
    if job_id < 1:
        raise no_such_job
    try:
        job = client.session.call(client.jobs.functions.jobOf(job_id))
    except TransactionReverted as revert:
        if revert.error_name == "JobNotFound":
            raise no_such_job from None
        raise
    consumer, dataset_id, _, _, status, deadline, runner, weights_digest, weights_hash, provenance_hash = job
    return JobInfo(
        job_id=job_id,
        dataset_id=int(dataset_id),
        consumer=consumer,
        status=JOB_STATUSES[int(status)],
        deadline=int(deadline),
        runner=None if int(runner, 16) == 0 else runner,
        weights_digest=bytes(weights_digest),
        weights_hash=bytes(weights_hash),
        provenance_hash=bytes(provenance_hash),
    )


def list_jobs(client: CoveClient, consumer: str | None = None) -> list[JobInfo]:
    """Every job (or `consumer`'s), oldest first, from the event index (synced first) in one
    query: the status from the JobAccepted/Completed/Failed/Refunded events it indexed, no
    call per job; a buyer's jobs by the consumer column, JobRequested's indexed topic."""
    client.index.sync()
    return [info_from_index(row) for row in client.index.job_listing(consumer)]


_ZERO_DIGEST = b"\0" * 32


def info_from_index(row: dict[str, Any]) -> JobInfo:
    """A JobInfo from an index row (`EventIndex.job_listing` or `jobs`): what `job_info`
    reads from the chain, as the job's events tell it."""
    completion = row["completion"] or {}

    def digest(key: str) -> bytes:
        return bytes.fromhex(completion[key][2:]) if key in completion else _ZERO_DIGEST

    return JobInfo(
        job_id=int(row["id"]),
        dataset_id=int(row["dataset_id"]),
        consumer=checksummed(row["consumer"]),
        status=row["status"],
        deadline=int(row["deadline"]),
        runner=checksummed(row["runner"]) if row["runner"] else None,
        weights_digest=digest("weightsDigest"),
        weights_hash=digest("weightsHash"),
        provenance_hash=digest("provenanceHash"),
    )


@dataclass(frozen=True)
class RequestedJob:
    """A job as its JobRequested event states it (from the event index), in typed form."""

    job_id: int
    dataset_id: int
    consumer: str
    spec_hash: bytes
    spec: bytes  # the spec on the wire: zlib-compressed canonical JSON (ModelSpec.from_wire)
    dp: tuple[int, int, int, int, int]  # noise multiplier, sample rate, steps, clip norm, epochs
    curve_hash: bytes  # keccak256(abi.encode(rdpCurve)) of the curve the ledger was charged
    model_family: bytes
    deadline: int
    encryption_key: bytes
    tx: str  # the request's transaction (its calldata holds the curve itself)

    @property
    def honest_curve(self) -> tuple[int, ...]:
        """The curve the job's DP parameters give (PrivacyError for unusable parameters)."""
        return _honest_curve(self.dp[0], self.dp[1], self.dp[2])

    @property
    def curve_key(self) -> str:
        """What the curve is a function of (noise, sample rate, steps, on-chain units): its cache key."""
        return f"{self.dp[0]},{self.dp[1]},{self.dp[2]}"

    @property
    def curve_is_honest(self) -> bool:
        """Whether the ledger was charged the curve the DP parameters give."""
        try:
            return curve_hash_of(self.honest_curve) == self.curve_hash
        except PrivacyError:
            return False

    @classmethod
    def from_index(cls, row: dict[str, Any]) -> RequestedJob:
        request = row["request"]
        dp = request["dp"]
        return cls(
            job_id=int(row["id"]),
            dataset_id=int(row["dataset_id"]),
            consumer=checksummed(row["consumer"]),
            spec_hash=_bytes(request["specHash"]),
            spec=_bytes(request["spec"]),
            dp=(int(dp["noiseMultiplier"]), int(dp["sampleRate"]), int(dp["steps"]), int(dp["clipNorm"]), int(dp["epochs"])),
            curve_hash=_bytes(request["curveHash"]),
            model_family=_bytes(request["modelFamily"]),
            deadline=int(request["deadline"]),
            encryption_key=_bytes(request["encryptionKey"]),
            tx=str(row["tx"]),
        )


@lru_cache(maxsize=4096)
def _honest_curve(noise: int, sample_rate: int, steps: int) -> tuple[int, ...]:
    # A pure function of on-chain integers, and ~10 ms each: tables of jobs repeat parameters.
    return fixed_curve(rdp_curve(noise / NOISE_SCALE, sample_rate / SAMPLE_RATE_SCALE, steps))


def honest_curves(client: CoveClient, jobs: Iterable[RequestedJob]) -> dict[int, tuple[int, ...] | None]:
    """Each job's honest curve by job id (None for unusable parameters), through the index's
    curve cache: a table of 10,000 jobs costs one query, not 10,000 curve computations."""
    jobs = list(jobs)
    cached = client.index.curves(job.curve_key for job in jobs)
    computed: dict[str, tuple[int, ...]] = {}
    curves: dict[int, tuple[int, ...] | None] = {}
    for job in jobs:
        curve = cached.get(job.curve_key) or computed.get(job.curve_key)
        if curve is None:
            try:
                curve = computed[job.curve_key] = job.honest_curve
            except PrivacyError:
                curve = None
        curves[job.job_id] = curve
    if computed:
        client.index.remember_curves(computed)
    return curves


def curve_hash_of(curve: Sequence[int]) -> bytes:
    """keccak256(abi.encode(uint64[24])): how ComputeJobs names a job's curve."""
    return keccak(encode([f"uint64[{len(ORDERS)}]"], [list(curve)]))


def charged_curve(client: CoveClient, job: RequestedJob) -> tuple[int, ...] | None:
    """The curve the ledger was charged for `job`: the honest one when its hash matches, else
    the one its request's calldata carries (None when the request came through a contract,
    so that the calldata is not the `request` call itself)."""
    if job.curve_is_honest:
        return job.honest_curve
    transaction = client.session.w3.eth.get_transaction(job.tx)
    if str(transaction.get("to", "")).lower() != client.jobs.address.lower():
        return None
    try:
        function, arguments = client.jobs.decode_function_input(transaction["input"])
    except ValueError:
        return None
    if function.fn_name != "request":
        return None
    curve = tuple(int(v) for v in arguments["r"]["rdpCurve"])
    return curve if curve_hash_of(curve) == job.curve_hash else None


def _bytes(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def requested_job(client: CoveClient, job_id: int) -> RequestedJob:
    """Job `job_id`'s request, from the index (synced first)."""
    return RequestedJob.from_index(job_events(client, job_id))


def job_events(client: CoveClient, job_id: int) -> dict[str, Any]:
    """Job `job_id` as its events tell it (from the index): `request` (JobRequested's
    arguments, decoded from JSON), `completion` (JobCompleted's, or None), `status`, `reason`."""
    client.index.sync()
    row = client.index.job(job_id)
    if row is None:
        raise InputError(f"There is no job #{job_id}; list them with `cove jobs`.")
    return row


def wait_for(client: CoveClient, job_id: int, timeout: float = 600, poll: float = 0.5) -> JobInfo:
    """Polls until the job is completed, failed or refunded (or `timeout` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        info = job_info(client, job_id)
        if info.status in ("completed", "failed", "refunded") or time.monotonic() > deadline:
            return info
        time.sleep(poll)


def fetch_result(client: CoveClient, job_id: int) -> JobResult:
    """Downloads (from the job's runner's endpoint, or a gateway), decrypts and checks a
    completed job's weights and provenance record."""
    info = job_info(client, job_id)
    if info.status != "completed":
        raise InputError(f"Job #{job_id} is {info.status}, not completed; see `cove jobs`.")
    if info.consumer.lower() != client.session.sender.lower():
        raise InputError(f"Job #{job_id} belongs to {info.consumer}; only its buyer can decrypt the weights.")
    events = job_events(client, job_id)
    _, provenance = fetch_provenance(client, info, events)
    weights_cid = _weights_cid(provenance, info, job_id)
    encrypted = client.content.get(weights_cid, client.endpoints_of(info.runner), what=f"encrypted weights of job #{job_id}")
    from exchange.crypto import decrypt_with
    from exchange.ml.spec import ModelSpec

    request = RequestedJob.from_index(events)
    weights = decrypt_with(client.session.account, encrypted)
    spec = ModelSpec.from_wire(request.spec)
    return JobResult(info, weights, provenance, spec, verify(client, info, request, provenance, weights))


def fetch_provenance(client: CoveClient, info: JobInfo, events: dict[str, Any]) -> tuple[Cid, SignedProvenance]:
    """A completed job's signed provenance record and its CID, by the digest its completion
    recorded (`events` as `job_events` gives them), from its runner's endpoint or a gateway."""
    completion = events["completion"]
    if completion is None:  # the index lags the chain by the sync that just ran: never
        raise ProvenanceError(f"The completion of job #{info.job_id} is missing from the chain's logs.")
    cid = Cid.from_raw_digest(bytes.fromhex(completion["provenanceDigest"][2:]))
    what = f"provenance record of job #{info.job_id}"
    return cid, SignedProvenance.from_bytes(client.content.get(cid, client.endpoints_of(info.runner), what=what))


def _weights_cid(provenance: SignedProvenance, info: JobInfo, job_id: int) -> Cid:
    """The weights' CID as the record names it, only if the chain's digest agrees (no other
    content is ever fetched on the record's word)."""
    try:
        cid = Cid.parse(provenance.record.weights_cid)
    except InputError:
        raise ProvenanceError(f"The provenance record of job #{job_id} names no valid weights CID.") from None
    if cid.digest != info.weights_digest:
        raise ProvenanceError(f"The provenance record of job #{job_id} names weights other than those completed on-chain.")
    return cid


def verify(
    client: CoveClient, info: JobInfo, requested: RequestedJob, signed: SignedProvenance, weights: bytes | None
) -> list[Check]:
    """Every check a buyer can make: signature, hashes on chain, spec, ε, commitment, CIDs.
    Anyone else passes `weights=None` and gets all of them but the decrypted weights' hash."""
    record = signed.record
    # What the ledger was charged: the curve whose hash the request recorded.
    charged = charged_curve(client, requested)
    curve = list(charged) if charged is not None else [0] * len(ORDERS)
    ledger_epsilon = int(client.session.call(client.jobs.functions.epsilonOf(curve, record.delta)))
    checks = check(
        signed,
        expected_runner=info.runner or "0x" + "00" * 20,
        onchain_provenance_hash=info.provenance_hash,
        weights_plaintext=weights,
        spec_hash=requested.spec_hash,
        ledger_epsilon=ledger_epsilon,
        ledger_curve=curve,
        job_id=info.job_id,
    )
    dataset = client.session.call(client.cove.functions.datasetOf(info.dataset_id))
    commitment = "0x" + bytes(dataset[1]).hex()
    checks.append(Check(
        name="dataset_commitment", passed=record.dataset_commitment == commitment,
        reason="The record names the dataset's on-chain commitment." if record.dataset_commitment == commitment
        else "The record's dataset commitment differs from the one on chain.",
    ))  # fmt: skip
    same_cid = Cid.parse(record.weights_cid).digest == info.weights_digest
    checks.append(Check(
        name="weights_cid", passed=same_cid,
        reason="The record's weights CID is the one completed on chain." if same_cid
        else "The record's weights CID differs from the one completed on chain.",
    ))  # fmt: skip
    return checks
