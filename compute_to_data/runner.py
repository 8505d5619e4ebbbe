"""The owner's compute-to-data runner: claims jobs, trains in the sandbox, publishes results.

For every `JobRequested` on a dataset it serves (read from the event index; the request
carries the spec itself, so nothing but the chain is needed), the runner:
1. records the job (SQLite) and claims it on-chain with `accept` (the chain decides which
   of several workers runs it);
2. checks, with public inputs only, the spec and its DP parameters against the *current*
   policy and recomputes the RDP curve (a request whose curve was not honestly computed is
   failed, never trained);
3. trains in the sandbox, encrypts the weights to the buyer's key and signs provenance;
4. sends `complete`, and only once it has landed puts the results in its content store,
   from which its endpoint serves them (the chain now names them).
A job it refuses before reading any private row (a public check, or resource needs estimated
from public parameters that exceed its limits) is failed on-chain with its privacy
reservation released. Once the sandbox may have read private rows, a failure (a crash, a
timeout, memory) may depend on them, so it is failed with the charge kept: the buyer gets
the credit back, the dataset's ledger keeps the ε. Reasons are public and never quote
private data.

Kill it at any moment: on restart a job that was claimed but whose training had not started
is failed with its charge released; one whose training had started is failed with its
charge kept; a trained job whose `complete` did not land is completed from the results kept
on disk, or discarded if the buyer has taken the job back meanwhile.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compute_to_data.data_files import DataFiles
from compute_to_data.federated.participant import Participation
from compute_to_data.job_pool import JobPool, cores, default_workers
from compute_to_data.job_training import TrainingOrder, TrainingOutput
from compute_to_data.progress import read_progress
from compute_to_data.resources import estimated_memory_bytes
from compute_to_data.sandbox import SandboxPolicy
from compute_to_data.state import JobRecord, RunnerState, Stage
from compute_to_data.training import library_versions
from compute_to_data.warm_sandbox import WarmSandbox
from exchange.catalog import dataset_view
from exchange.client import CoveClient
from exchange.crypto import encrypt_to
from exchange.datasets import CommitmentKey
from exchange.errors import CoveError, SandboxError, TransactionReverted
from exchange.federated.server import FederationInfo, read_federation
from exchange.jobs import RequestedJob, charged_curve, curve_hash_of, job_info, requested_job
from exchange.ml.accounting import ORDERS_FIXED, DpParams, DpParamsOnchain, epsilon_fixed
from exchange.ml.spec import ModelSpec
from exchange.ml.weights import export_weights, load_weights
from exchange.owned import OwnedDatasets
from exchange.policy import model_family_hash
from exchange.provenance import FederatedPartRecord, ProvenanceRecord, record_hash, sha256_hex, sign
from exchange.storage import Cid, build_dag
from exchange.units import DELTA_SCALE

log = logging.getLogger("cove.runner")
# What a training device may be called in provenance: "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)".
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?( \([\w .()-]{1,80}\))?)$")

GIB = 1024**3


class JobRefused(Exception):
    """A job that must not be trained (or whose training failed); the message is the public
    reason given on-chain. `rows_read`: whether private rows may have been read by then."""

    def __init__(self, reason: str, rows_read: bool = False):
        super().__init__(reason)
        self.rows_read = rows_read


@dataclass(frozen=True)
class RunnerLimits:
    cpu_seconds: int = 3600
    memory_bytes: int = 6 * GIB
    wall_seconds: float = 1800
    device: str | None = None  # None: CUDA when available, else CPU
    allow_unsandboxed: bool = False
    workers: int | None = None  # jobs trained at once; None: what cores and memory allow
    # A federated job fails when no round comes for this long: above the aggregator's default
    # train timeout (600 s), so that a runner done early outwaits the slowest one's training.
    federated_idle_seconds: float = 900


@dataclass(frozen=True)
class QueuedJob:
    """A job of this runner's queue as the owner sees it (public figures only)."""

    job_id: int
    dataset_id: int
    stage: str  # "waiting" for a worker, or "training"
    steps_done: int | None = None
    steps: int | None = None
    elapsed: float | None = None  # seconds since training started


@dataclass(frozen=True)
class _Training:
    job: RequestedJob
    order: TrainingOrder
    spec: ModelSpec
    log_path: Path


class Runner:
    """One runner worker for the datasets whose registered runner is this account."""

    def __init__(
        self,
        client: CoveClient,
        limits: RunnerLimits | None = None,
        data: DataFiles | None = None,
        state: RunnerState | None = None,
        report: Callable[[str], None] | None = None,
        commitment_key_file: Path | None = None,
    ):
        self.client = client
        self.limits = limits or RunnerLimits()
        self.address = client.session.sender
        # The owner's key: the sandbox checks the file against the hiding commitment with it.
        # Read when first needed, so a runner may start before the owner's first publication
        # writes it (by default this home's; on another machine, a copy of the owner's file).
        self.commitment_key_file = commitment_key_file or client.home.commitment_key
        self._commitment_key: CommitmentKey | None = None
        # Matched again at every poll, so datasets published while the runner runs are served too.
        self.data = data or DataFiles()
        if self.data.owned is None:
            self.data.owned = OwnedDatasets(client.home.owned)
        self.data.chain_id, self.data.hub = client.session.chain_id, client.cove.address
        self.data_files: dict[int, Path] = {}
        name = f"{client.session.chain_id}-{client.jobs.address.lower()}-{self.address.lower()}"
        self.state = state or RunnerState(client.home.runner / f"{name}.sqlite")
        self.outputs = client.home.runner / f"{name}-outputs"
        self.report = report or (lambda message: log.info(message))
        self.workers = self.limits.workers or default_workers(self.limits.memory_bytes)
        # Each worker's warm sandbox is started at its first job and kept: each job is a fresh
        # fork of that worker's pre-imported zygote, as isolated as a new sandbox (see
        # compute_to_data.warm_sandbox).
        self._pool: JobPool[tuple[TrainingOutput, str]] = JobPool(self.workers, self._new_sandbox)
        self._training: dict[int, _Training] = {}
        self._parts: dict[int, FederatedPartRecord] = {}  # federated parts trained, for their provenance

    @property
    def commitment_key(self) -> CommitmentKey | None:
        """The owner's commitment key, once its file is there (InputError if it is damaged)."""
        if self._commitment_key is None and self.commitment_key_file.exists():
            self._commitment_key = CommitmentKey.load(self.commitment_key_file)
        return self._commitment_key

    # ------------------------------------------------------------------ the loop

    def run(
        self, interval: float = 1.0, stop: Callable[[], bool] = lambda: False,
        on_poll: Callable[[list[QueuedJob]], None] | None = None,
    ) -> None:  # fmt: skip
        """Polls the chain until `stop()` says so; `on_poll` gets the queue after each poll.

        Jobs train in the background: a poll starts what free workers can take and
        publishes what has finished, and the wait between polls ends early when a job does."""
        try:
            self.recover()
            while not stop():
                self.poll(wait=False)
                if on_poll is not None:
                    on_poll(self.queue())
                self._pool.wait(interval)  # a job that finishes ends the wait: collected at once
        finally:
            self.close()

    def close(self) -> None:
        """Stops the workers' sandboxes; a job still training fails, and `recover` settles it."""
        self._pool.close()

    def queue(self) -> list[QueuedJob]:
        """The jobs training now (with their step counts), then those waiting for a worker."""
        now = time.monotonic()
        entries = []
        for slot in self._pool.running():
            training = self._training[slot.job_id]
            progress = read_progress(training.log_path)
            entries.append(QueuedJob(
                slot.job_id, training.job.dataset_id, "training", progress[0] if progress else 0,
                training.order.dp.steps, now - slot.started,
            ))  # fmt: skip
        waiting = [r for r in self.state.in_stage(Stage.SEEN) if r.job_id not in self._training]
        return entries + [QueuedJob(record.job_id, record.dataset_id, "waiting") for record in waiting]

    def recover(self) -> None:
        """Settles jobs a previous run left half-way (see the module doc)."""
        for record in self.state.in_stage(Stage.SEEN, Stage.ACCEPTED, Stage.TRAINING, Stage.TRAINED):
            info = job_info(self.client, record.job_id)
            ours = info.runner is not None and info.runner.lower() == self.address.lower()
            if record.stage is Stage.TRAINED:
                self._finish(record, info.status)
            elif info.status == "accepted" and ours and record.stage is Stage.TRAINING:
                self._fail(record.job_id, "The runner restarted while training; the privacy charge stays, as "
                           "private rows had been read.", rows_read=True)  # fmt: skip
            elif info.status == "accepted" and ours:
                if record.stage is Stage.SEEN:
                    self.state.advance(record.job_id, Stage.ACCEPTED)
                self._fail(record.job_id, "The runner restarted before training started; nothing was read or released.")
            elif info.status != "requested":
                self.state.advance(record.job_id, Stage.FAILED, reason=f"closed on-chain as {info.status}")

    def poll(self, wait: bool = True) -> list[int]:
        """Handles new requests and open jobs; returns the ids it finished (failed or completed).

        Starts as many jobs as there are free workers. With `wait`, it returns only once
        every job it knows of is finished (the rest wait for a worker meanwhile)."""
        for job in self._new_requests():
            if self.state.see(job.job_id, job.dataset_id):
                ahead = len(self.queue()) - 1
                where = f"; {ahead} ahead of it" if ahead > 0 else ""
                self.report(f"job #{job.job_id} requested on dataset #{job.dataset_id}{where}")
        finished = self._collect()
        while True:
            finished += self._start_waiting()
            if not wait or not self._training:
                return finished
            self._pool.wait()
            finished += self._collect()

    # ------------------------------------------------------------------ one job

    def _start_waiting(self) -> list[int]:
        """Claims, checks and hands to a free worker the jobs waiting; returns those refused."""
        refused = []
        for record in self.state.in_stage(Stage.SEEN):
            if self._pool.free == 0:
                break
            if self._start(record.job_id):
                refused.append(record.job_id)
        return refused

    def _start(self, job_id: int) -> bool:
        """True when the job is finished already: refused before training."""
        job = requested_job(self.client, job_id)
        if self._awaits_federation(job):
            return False
        if not self._claim(job_id):
            return False
        try:
            order, spec = self._check(job)
            federation = self._check_federation(job, spec)
        except JobRefused as refusal:
            self._fail(job_id, str(refusal), rows_read=refusal.rows_read)
            return True
        self.state.advance(job_id, Stage.TRAINING)  # from here on, private rows may be read
        self._training[job_id] = _Training(job, order, spec, self._log_path(job_id))
        if federation is None:
            self.report(f"job #{job_id}: training in the sandbox ({order.dp.steps} steps)")
            self._pool.submit(job_id, lambda sandbox: self._train(job, order, sandbox))
        else:
            self.report(f"job #{job_id}: joining federation #{federation.federation_id} ({spec.rounds} rounds)")
            self._pool.submit(job_id, lambda sandbox: self._participate(job, order, spec, federation, sandbox))
        return False

    def _collect(self) -> list[int]:
        """Publishes (or fails) the jobs whose training has ended."""
        finished = []
        for slot in self._pool.finished():
            training = self._training.pop(slot.job_id)
            try:
                output, mechanism = slot.outcome()
                weights, run = releasable(training.spec, training.order, output)
            except JobRefused as refusal:
                self._fail(slot.job_id, str(refusal), rows_read=refusal.rows_read)
            else:
                self._publish(training.job, training.spec, training.order, weights, run, mechanism)
            finished.append(slot.job_id)
        return finished

    def _claim(self, job_id: int) -> bool:
        """`accept` on-chain; False when another worker won it or it is no longer open."""
        try:
            self.client.session.transact(self.client.jobs.functions.accept(job_id))
        except TransactionReverted as refused:
            self.state.advance(job_id, Stage.FAILED, reason=f"not ours to run: {refused}")
            self.report(f"job #{job_id}: not claimed ({refused})")
            return False
        self.state.advance(job_id, Stage.ACCEPTED)
        self.report(f"job #{job_id}: accepted")
        return True

    def _check(self, job: RequestedJob) -> tuple[TrainingOrder, ModelSpec]:
        """Every check that needs no private data, against the policy as it is now."""
        dataset_id = job.dataset_id
        try:
            view = dataset_view(self.client, dataset_id)
        except CoveError:
            raise JobRefused("The runner cannot read the dataset's metadata.") from None
        policy = view.policy
        try:
            spec = ModelSpec.from_wire(job.spec)
        except CoveError as error:
            raise JobRefused(f"The request's spec is unusable: {error}") from None
        if spec.spec_hash() != "0x" + job.spec_hash.hex():
            raise JobRefused("The request's spec does not hash to its spec hash.")
        try:
            spec.check_against(view.metadata.schema_)
        except CoveError as error:
            raise JobRefused(f"The spec does not fit the dataset: {error}") from None
        if policy.model_families and model_family_hash(spec.family) not in {
            model_family_hash(f) for f in policy.model_families
        }:
            raise JobRefused(f"The current policy no longer allows the model family {spec.family!r}.")
        if job.model_family != model_family_hash(spec.family):
            raise JobRefused("The request's model family is not the spec's.")
        if spec.total_epochs > policy.max_epochs:
            raise JobRefused(
                f"The current policy allows at most {policy.max_epochs} epochs; the spec asks {spec.total_epochs}."
            )
        delta = int(policy.delta * DELTA_SCALE)
        try:
            params = DpParams.for_spec(spec, view.rows)
        except CoveError as error:
            raise JobRefused(str(error)) from None
        requested = DpParamsOnchain(**dict(zip(
            ("noise_multiplier", "sample_rate", "steps", "clip_norm", "epochs"), job.dp, strict=True
        )))  # fmt: skip
        if params.to_onchain() != requested or params.delta_fixed != delta:
            raise JobRefused("The request's DP parameters are not the ones its spec gives on this dataset.")
        curve = params.curve_fixed()
        if curve_hash_of(curve) != job.curve_hash:
            raise JobRefused("The request's RDP curve does not match its DP parameters.")
        if epsilon_fixed(curve, params.delta) > int(policy.per_job_cap * 10**6):
            raise JobRefused(f"The job's ε is above the current per-job cap of ε {policy.per_job_cap}.")
        if dataset_id not in self.data_files or self.commitment_key is None:
            raise JobRefused("This runner holds no private file (or no commitment key) for the dataset.")
        needs = estimated_memory_bytes(spec, view.metadata.schema_, view.rows)
        if self.limits.memory_bytes is not None and needs > self.limits.memory_bytes:
            raise JobRefused(
                f"The job needs an estimated {needs / GIB:.1f} GiB (from its public parameters), above the "
                f"runner's {self.limits.memory_bytes / GIB:.1f} GiB; nothing was read."
            )
        order = TrainingOrder(
            spec=spec.to_json().decode(), dataset_schema=view.metadata.schema_, public_rows=view.rows,
            commitment=view.commitment, commitment_key=self.commitment_key.secret.hex(), dp=requested,
            delta=delta, device=self.limits.device, threads=max(1, cores() // self.workers),
        )  # fmt: skip
        return order, spec

    # ------------------------------------------------------------------ federated jobs

    def _awaits_federation(self, job: RequestedJob) -> bool:
        """A federated job is claimed only once its buyer has opened the federation on-chain."""
        try:
            spec = ModelSpec.from_wire(job.spec)
        except CoveError:
            return False  # claimed and refused as any unusable spec is
        if spec.federation is None:
            return False
        fed_id = self.client.session.call(self._federated_rounds.functions.federationOfJob(job.job_id))
        return int(fed_id) == 0 and self.client.chain_time() <= job.deadline

    @property
    def _federated_rounds(self) -> Any:
        return self.client.session.contract("FederatedRounds", self.client.deployment.federated_rounds)

    def _check_federation(self, job: RequestedJob, spec: ModelSpec) -> FederationInfo | None:
        """The job's federation, checked against its spec; None for a single-dataset job."""
        if spec.federation is None:
            return None
        fed_id = int(self.client.session.call(self._federated_rounds.functions.federationOfJob(job.job_id)))
        if fed_id == 0:
            raise JobRefused("The federated job's buyer never opened its federation on-chain.")
        federation = read_federation(self.client, fed_id)
        if federation.rounds != spec.rounds:
            raise JobRefused(f"Federation #{fed_id} runs {federation.rounds} rounds; the job's spec asks {spec.rounds}.")
        if federation.committed:
            raise JobRefused(f"Federation #{fed_id} has committed {federation.committed} rounds without this runner.")
        return federation

    def _participate(
        self, job: RequestedJob, order: TrainingOrder, spec: ModelSpec, federation: FederationInfo, sandbox: WarmSandbox,
    ) -> tuple[TrainingOutput, str]:  # fmt: skip
        """Runs in a worker: this dataset's part of the federation, every round in the sandbox."""
        assert spec.federation is not None
        policy = self._policy(job)
        home = self.client.home.runner / f"federation-{federation.federation_id}-job-{job.job_id}"
        part = Participation(
            self.client, federation.federation_id, spec.rounds, spec.federation.superlink, order, sandbox, policy,
            home, idle_timeout=self.limits.federated_idle_seconds,
            deadline=time.monotonic() + max(0, job.deadline - self.client.chain_time()),
        )  # fmt: skip
        try:
            result = part.run()
            self._parts[job.job_id] = result.record
        except CoveError as error:
            raise JobRefused(
                f"The federated job did not finish: {error} No model was released"
                + ("; the privacy charge stays, as private rows had been read." if part.rows_read else "."),
                rows_read=part.rows_read,
            ) from None
        return result.output, result.mechanism

    def _policy(self, job: RequestedJob) -> SandboxPolicy:
        return SandboxPolicy(
            dataset=self.data_files[job.dataset_id],
            cpu_seconds=self.limits.cpu_seconds,
            memory_bytes=self.limits.memory_bytes,
            wall_seconds=self.limits.wall_seconds,
            log_path=self._log_path(job.job_id),
        )

    def _log_path(self, job_id: int) -> Path:
        return self.client.home.runner / f"job-{job_id}.log"

    def _new_sandbox(self) -> WarmSandbox:
        return WarmSandbox(
            "compute_to_data.job_training", "train_job", allow_unsandboxed=self.limits.allow_unsandboxed,
            log_path=self.client.home.runner / "sandbox-zygote.log",
        )  # fmt: skip

    def _train(self, job: RequestedJob, order: TrainingOrder, sandbox: WarmSandbox) -> tuple[TrainingOutput, str]:
        """Runs in a worker: the sandboxed training alone, nothing that touches the chain."""
        policy = self._policy(job)
        try:
            result = sandbox.run(order.model_dump_json().encode(), policy, stage="training")
        except SandboxError as error:
            raise JobRefused(
                f"Training did not finish ({error.reason}); no model was released, and the privacy charge stays "
                "since private rows had been read.", rows_read=True,
            ) from None
        return TrainingOutput.model_validate_json(result.output), result.mechanism

    def _publish(
        self, job: RequestedJob, spec: ModelSpec, order: TrainingOrder,
        weights: bytes, run: dict[str, Any], mechanism: str,
    ) -> None:  # fmt: skip
        """Encrypts, signs and keeps the results on disk, then completes the job."""
        job_id = job.job_id
        encrypted = encrypt_to(job.encryption_key, weights)
        weights_cid, _ = build_dag(encrypted)
        record = ProvenanceRecord(
            chain_id=self.client.session.chain_id,
            compute_jobs=self.client.jobs.address,
            job_id=job_id,
            dataset_id=job.dataset_id,
            dataset_commitment=order.commitment,
            spec_hash=spec.spec_hash(),
            runner=self.address,
            sandbox=mechanism,
            weights_hash=sha256_hex(weights),
            weights_cid=str(weights_cid),
            accountant="rdp",
            federation=self._parts.pop(job_id, None),
            **run,
        )
        signed = sign(record, self.client.session.account)
        folder = self.outputs / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights.enc").write_bytes(encrypted)
        (folder / "provenance.json").write_bytes(signed.canonical_bytes())
        completion = {
            "weights_digest": "0x" + weights_cid.digest.hex(),
            "weights_hash": record.weights_hash,
            "provenance_hash": record_hash(record),
            "provenance_digest": "0x" + Cid.of_block(0x55, signed.canonical_bytes()).digest.hex(),
        }
        self.state.advance(job_id, Stage.TRAINED, weights_cid=str(weights_cid), outputs=json.dumps(completion))
        self._finish(self.state.get(job_id), "accepted")  # type: ignore[arg-type]

    def _finish(self, record: JobRecord, status: str) -> None:
        """Sends `complete` (unless it landed); the results are in the store by then.

        They go into the store first, so that a buyer who sees `complete` land finds them at
        once: the endpoint serves only what the chain names, so nothing is served before.
        If the buyer took the job back meanwhile, they are removed again, never published."""
        folder = self.outputs / str(record.job_id)
        stored = [self.client.store.put((folder / name).read_bytes()) for name in ("weights.enc", "provenance.json")]
        if status == "accepted":
            outputs = json.loads(record.outputs or "{}")
            function = self.client.jobs.functions.complete(
                record.job_id, *(bytes.fromhex(outputs[k][2:]) for k in
                                 ("weights_digest", "weights_hash", "provenance_hash", "provenance_digest"))
            )  # fmt: skip
            try:
                self.client.session.transact(function)
            except TransactionReverted:
                status = self._status(record.job_id)
        if status == "accepted" or status == "completed":
            self.state.advance(record.job_id, Stage.COMPLETED)
            self.report(f"job #{record.job_id}: completed")
        else:  # taken back by the buyer meanwhile: the results must never be published
            for cid in stored:
                self.client.store.path_for(cid).unlink(missing_ok=True)
            self.state.advance(record.job_id, Stage.FAILED, reason=f"closed on-chain as {status}")
        shutil.rmtree(folder, ignore_errors=True)

    def _fail(self, job_id: int, reason: str, *, rows_read: bool = False) -> None:
        curve = charged_curve(self.client, requested_job(self.client, job_id))
        if curve is None:  # a request sent through a contract with a dishonest curve: the buyer's to refund
            self.state.advance(job_id, Stage.FAILED, reason=f"{reason} (its curve is unknown: left to the buyer's refund)")
            self.report(f"job #{job_id}: not trained, left to the buyer: {reason}")
            return
        try:
            self.client.session.transact(self.client.jobs.functions.fail(job_id, reason, list(curve), rows_read))
        except TransactionReverted as error:
            reason = f"{reason} (fail refused: {error})"
        self.state.advance(job_id, Stage.FAILED, reason=reason)
        self.report(f"job #{job_id}: failed and refunded: {reason}")

    # ------------------------------------------------------------------ chain reads

    def _new_requests(self) -> list[RequestedJob]:
        """Jobs requested (and not yet claimed by anyone) on datasets this runner serves."""
        index = self.client.index
        index.sync()
        self.data.key = self.commitment_key
        self.data_files = self.data.match(index.datasets_served_by(self.address))
        if not self.data_files:
            return []
        rows = index.jobs(dataset_ids=sorted(self.data_files))
        return [RequestedJob.from_index(row) for row in rows if row["status"] == "requested"]

    def _status(self, job_id: int) -> str:
        return job_info(self.client, job_id).status


def releasable(spec: ModelSpec, order: TrainingOrder, output: TrainingOutput) -> tuple[bytes, dict[str, Any]]:
    """What may leave, rebuilt on this side of the sandbox from the child's output.

    The weights are reloaded into the spec's model and exported again, so nothing but
    its parameters (no extra tensors, no safetensors metadata) can ride along. The DP
    figures come from the job's own public parameters, and the child's must agree; the
    library versions are this process's. Only the device is taken from the child, checked
    for form. The child has read private rows by then, so a refusal keeps the charge.
    """
    try:
        model = load_weights(spec, order.dataset_schema, base64.b64decode(output.weights, validate=True))
    except (CoveError, ValueError):
        raise JobRefused("The sandbox returned something other than the model's parameters; nothing was released.",
                         rows_read=True) from None  # fmt: skip
    params = DpParams.from_onchain(order.dp, order.delta)
    run = _figures(params)
    # The child reports the run it did: the whole job, or a federated job's last round.
    expected = run if spec.federation is None else _figures(params.per_round(spec.rounds))
    reported = output.run
    device = str(reported.get("device", ""))
    if any(reported.get(k) != v for k, v in expected.items()) or not _DEVICE.match(device):
        raise JobRefused("The sandbox's report of the run is not the job's; nothing was released.", rows_read=True)
    release = {**run, "device": device, "library_versions": library_versions(), "public_rows": order.public_rows}
    return export_weights(model), release


def _figures(params: DpParams) -> dict[str, Any]:
    """A run's DP figures as provenance records them (the chain's units)."""
    curve = params.curve_fixed()
    return {
        "dp": params.to_onchain().model_dump(),
        "rdp_orders": list(ORDERS_FIXED),
        "rdp_curve": list(curve),
        "epsilon": epsilon_fixed(curve, params.delta),
        "delta": params.delta_fixed,
    }
