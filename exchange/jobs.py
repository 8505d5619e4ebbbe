"""Compute jobs from the buyer's side: request, follow, fetch, verify.

A request is priced before it is sent: the SDK computes the job's DP parameters and
RDP curve exactly as the runner will, checks them against the policy (per-job cap,
remaining budget, epochs, model family) and refuses with one sentence, so a transaction
is only sent when the chain will accept it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD

from exchange.catalog import DatasetView, dataset_view
from exchange.client import CoveClient
from exchange.crypto import decrypt_with, public_key_of
from exchange.errors import InputError, PrivacyError, ProvenanceError, SpecError
from exchange.merkle import MerkleTree, address_leaf, bytes32_leaf
from exchange.ml.accounting import DpParams, compose, epsilon_fixed
from exchange.ml.spec import ModelSpec
from exchange.policy import model_family_hash
from exchange.provenance import Check, SignedProvenance, check
from exchange.publish import single_block_digest
from exchange.storage import Cid, get_by_digest
from exchange.units import CREDIT, epsilon_from_fixed

JOB_STATUSES = ("none", "requested", "accepted", "completed", "failed", "refunded")
DEFAULT_DEADLINE_S = 24 * 3600


@dataclass(frozen=True)
class JobTicket:
    """A request that the chain accepted."""

    job_id: int
    dataset_id: int
    spec_hash: str
    epsilon: float  # what this job spends, at the policy's δ
    composed_epsilon: float  # the dataset's ε after this job
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
    if spec.epochs > policy.max_epochs:
        raise SpecError(f"The spec trains {spec.epochs} epochs; dataset #{dataset_id} allows at most {policy.max_epochs}.")
    families = getattr(policy, "model_families", ())
    if families and spec.family not in families:
        raise SpecError(f"Dataset #{dataset_id} allows the model families {', '.join(families)}, not {spec.family!r}.")


def price_job(client: CoveClient, dataset_id: int, spec: ModelSpec) -> JobQuote:
    """The job's DP parameters, curve, ε and composed ε, or the refusal the chain would give."""
    view = dataset_view(client, dataset_id)
    if view.metadata is None:
        raise InputError(f"The metadata of dataset #{dataset_id} is not in reach; its schema is needed for a spec.")
    spec.check_against(view.metadata.schema_)
    policy = view.policy
    check_spec_policy(spec, policy, dataset_id)
    params = DpParams.for_spec(spec, view.rows)
    curve = params.curve_fixed()
    own = epsilon_fixed(curve, params.delta)
    cap = int(policy.per_job_cap * 10**6)
    if own > cap:
        raise PrivacyError(
            f"This job would spend ε {epsilon_from_fixed(own)}, above the per-job cap of ε {policy.per_job_cap}; "
            "add noise, train fewer epochs or use a smaller batch."
        )
    ledger = client.session.call(client.jobs.functions.curveOf(dataset_id))
    composed = epsilon_fixed(compose([tuple(ledger), curve]), params.delta)
    budget = int(policy.budget * 10**6)
    if composed > budget:
        spent = client.session.call(client.jobs.functions.composedEpsilon(dataset_id))
        raise PrivacyError(
            f"Dataset #{dataset_id} has not enough privacy budget left: it has spent ε {epsilon_from_fixed(spent)} "
            f"of ε {policy.budget}, and this job would bring it to ε {epsilon_from_fixed(composed)}."
        )
    return JobQuote(view, params, curve, own, composed)


def request_job(
    client: CoveClient, dataset_id: int, spec: ModelSpec, *, deadline_seconds: int = DEFAULT_DEADLINE_S
) -> JobTicket:
    """Spends one credit of `dataset_id` on training `spec`; the runner takes it from there."""
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

    spec_bytes = spec.to_json()
    spec_digest = single_block_digest(spec_bytes, "model spec")
    now = int(client.session.w3.eth.get_block("latest")["timestamp"])
    request = (
        dataset_id,
        bytes.fromhex(spec.spec_hash()[2:]),
        spec_digest,
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
    client.store.put(spec_bytes)  # the runner reads the spec from the store
    receipt = client.session.transact(function)
    event = client.jobs.events.JobRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return JobTicket(
        job_id=int(event["jobId"]),
        dataset_id=dataset_id,
        spec_hash=spec.spec_hash(),
        epsilon=float(epsilon_from_fixed(quote.epsilon)),
        composed_epsilon=float(epsilon_from_fixed(quote.composed)),
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def job_info(client: CoveClient, job_id: int) -> JobInfo:
    if job_id < 1:
        raise InputError(f"There is no job #{job_id}; list them with `cove jobs`.")
    job = client.session.call(client.jobs.functions.jobOf(job_id))
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
    """Every job (or `consumer`'s), oldest first."""
    count = int(client.session.call(client.jobs.functions.jobCount()))
    jobs = [job_info(client, job_id) for job_id in range(1, count + 1)]
    return [j for j in jobs if consumer is None or j.consumer.lower() == consumer.lower()]


def job_event(client: CoveClient, name: str, job_id: int) -> dict[str, Any] | None:
    """The args of job `job_id`'s event `name` (JobRequested, JobCompleted, ...), if emitted."""
    event = getattr(client.jobs.events, name)
    logs = event.get_logs(from_block=client.deployment.block, argument_filters={"jobId": job_id})
    return dict(logs[-1]["args"]) if logs else None


def wait_for(client: CoveClient, job_id: int, timeout: float = 600, poll: float = 0.5) -> JobInfo:
    """Polls until the job is completed, failed or refunded (or `timeout` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        info = job_info(client, job_id)
        if info.status in ("completed", "failed", "refunded") or time.monotonic() > deadline:
            return info
        time.sleep(poll)


def fetch_result(client: CoveClient, job_id: int) -> JobResult:
    """Downloads, decrypts and checks a completed job's weights and provenance."""
    info = job_info(client, job_id)
    if info.status != "completed":
        raise InputError(f"Job #{job_id} is {info.status}, not completed; see `cove jobs`.")
    if info.consumer.lower() != client.session.sender.lower():
        raise InputError(f"Job #{job_id} belongs to {info.consumer}; only its buyer can decrypt the weights.")
    requested = job_event(client, "JobRequested", job_id)
    completed = job_event(client, "JobCompleted", job_id)
    if requested is None or completed is None:
        raise ProvenanceError(f"The events of job #{job_id} are missing from the chain's logs.")
    provenance = SignedProvenance.from_bytes(client.store.get(Cid.from_raw_digest(bytes(completed["provenanceDigest"]))))
    spec = ModelSpec.parse(client.store.get(Cid.from_raw_digest(bytes(requested["specDigest"]))))
    weights = decrypt_with(client.session.account, get_by_digest(client.store, info.weights_digest))
    return JobResult(info, weights, provenance, spec, verify(client, info, requested, provenance, weights))


def verify(
    client: CoveClient, info: JobInfo, requested: dict[str, Any], signed: SignedProvenance, weights: bytes
) -> list[Check]:
    """Every check a buyer can make: signature, hashes on chain, spec, ε, commitment, CIDs."""
    record = signed.record
    curve = [int(v) for v in requested["rdpCurve"]]
    ledger_epsilon = int(client.session.call(client.jobs.functions.epsilonOf(curve, record.delta)))
    checks = check(
        signed,
        expected_runner=info.runner or "0x" + "00" * 20,
        onchain_provenance_hash=info.provenance_hash,
        weights_plaintext=weights,
        spec_hash=bytes(requested["specHash"]),
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
