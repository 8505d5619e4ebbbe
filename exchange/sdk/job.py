"""`Job`: one compute job from the buyer's side (wait, model, provenance, verify, evaluate)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from exchange.errors import InputError
from exchange.jobs import JobInfo, JobResult, JobTicket, RequestedJob, fetch_result, job_events, job_info
from exchange.ml.accounting import NOISE_SCALE, SAMPLE_RATE_SCALE
from exchange.ml.spec import ModelSpec
from exchange.provenance import Check, SignedProvenance, record_hash
from exchange.sdk import display, ledger
from exchange.sdk.errors import JobFailed, JobRefunded, JobTimeout, VerificationFailed
from exchange.sdk.ipython import _get_ipython
from exchange.units import delta_from_fixed, delta_text

if TYPE_CHECKING:
    from torch import nn

    from exchange.federated.run import FederatedResult

    from exchange.sdk.cove import Cove
    from exchange.sdk.dataset import Dataset

STAGES = ("requested", "accepted", "training", "completed")


class Checks(list[Check]):
    """The provenance checks of a job, each passed or failed with a sentence."""

    @property
    def passed(self) -> bool:
        return bool(self) and all(c.passed for c in self)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self if not c.passed]

    def _title(self) -> str:
        if self.passed:
            return f"all {len(self)} provenance checks passed"
        return f"{len(self.failed)} of {len(self)} provenance checks FAILED"

    def _repr_html_(self) -> str:
        rows = [(c.name, "✓ pass" if c.passed else "✗ FAIL", c.reason) for c in self]
        return display.table(["check", "result", "detail"], rows, caption=self._title())

    def __repr__(self) -> str:
        lines = [self._title()]
        lines += [f"  {'✓' if c.passed else '✗'} {c.name}: {c.reason}" for c in self]
        return "\n".join(lines)


class Provenance:
    """A job's signed provenance record (the record's fields are attributes too)."""

    def __init__(self, signed: SignedProvenance):
        self.signed = signed
        self.record = signed.record
        self.signature = signed.signature

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("signed", "record", "signature"):
            raise AttributeError(name)
        return getattr(self.record, name)

    @property
    def epsilon(self) -> float:
        return self.record.epsilon / 10**6

    @property
    def delta(self) -> float:
        return self.record.delta / 10**18

    @property
    def tight_epsilon(self) -> float | None:
        """The job's ε from the tight (PLD) accountant, recomputed here from the record's DP
        parameters; information only (the ledger charges `epsilon`). None where it gives none."""
        from exchange.ml.tight_accounting import tight_or_reason

        dp = self.record.dp
        job = (dp.noise_multiplier / NOISE_SCALE, dp.sample_rate / SAMPLE_RATE_SCALE, dp.steps)
        tight, _ = tight_or_reason([job], self.delta)
        return None if tight is None else tight.epsilon

    def pairs(self) -> list[tuple[str, Any]]:
        r = self.record
        dp = r.dp
        tight = self.tight_epsilon
        return [
            ("job", r.job_id),
            ("dataset", r.dataset_id),
            ("dataset commitment", r.dataset_commitment),
            ("spec hash", r.spec_hash),
            ("runner (signer)", r.runner),
            ("ε spent", f"{r.epsilon / 10**6:g}"),
            ("tight ε (PLD, not enforced)", "none" if tight is None else f"{tight:.4g}"),
            ("δ", delta_text(delta_from_fixed(r.delta))),
            ("accountant", f"{r.accountant.upper()} over {len(r.rdp_orders)} orders"),
            ("noise multiplier σ", f"{dp.noise_multiplier / 10**6:g}"),
            ("sample rate q", f"{dp.sample_rate / 10**9:g}"),
            ("steps", dp.steps),
            ("epochs", dp.epochs),
            ("clip norm C", f"{dp.clip_norm / 10**6:g}"),
            ("device", r.device),
            ("sandbox", r.sandbox),
            ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(r.library_versions.items()))),
            ("public row count (sets q)", r.public_rows),
            ("weights hash (plaintext)", r.weights_hash),
            ("weights CID (encrypted)", r.weights_cid),
            ("record hash (on chain)", record_hash(r)),
            ("signature", self.signature),
        ]

    def _repr_html_(self) -> str:
        return display.fields(self.pairs(), caption=f"Provenance of job #{self.record.job_id}")

    def __repr__(self) -> str:
        return display.text_fields(self.pairs(), f"Provenance of job #{self.record.job_id}")


class _Progress:
    """The states of a job as they pass: an updating HTML line in Jupyter, lines on stderr elsewhere."""

    def __init__(self, job_id: int, enabled: bool):
        self.job_id = job_id
        self.enabled = enabled
        self.started = time.monotonic()
        self.handle: Any = None
        self.last: tuple[str, int] | None = None
        shell = _get_ipython() if enabled else None
        self.html = shell is not None and getattr(shell, "kernel", None) is not None

    def _html(self, state: str, note: str) -> Any:
        import html

        from IPython.display import HTML

        step = STAGES.index(state) + 1 if state in STAGES else len(STAGES)
        elapsed = time.monotonic() - self.started
        text = html.escape(f"job #{self.job_id}: {state}{' – ' + note if note else ''} ({elapsed:.0f} s)")
        return HTML(f'<div><progress value="{step}" max="{len(STAGES)}" style="width: 10em"></progress> {text}</div>')

    def show(self, state: str, note: str = "") -> None:
        if not self.enabled:
            return
        key = (state, int(time.monotonic() - self.started) // 2)
        if key == self.last:
            return
        changed = self.last is None or self.last[0] != state
        self.last = key
        if self.html:
            from IPython.display import display as ipy_display

            if self.handle is None:
                self.handle = ipy_display(self._html(state, note), display_id=True)
            else:
                self.handle.update(self._html(state, note))
        elif changed:
            elapsed = time.monotonic() - self.started
            print(f"job #{self.job_id}: {state}{' – ' + note if note else ''} ({elapsed:.0f} s)", file=sys.stderr)


class Job:
    """A compute job. Most methods are the buyer's: only the buyer can decrypt the weights."""

    def __init__(self, cove: Cove, job_id: int, *, ticket: JobTicket | None = None):
        self._cove = cove
        self.id = int(job_id)
        self.ticket = ticket
        info = job_info(cove.client, self.id)
        self.dataset_id = info.dataset_id
        self._result: JobResult | None = None
        self._model: nn.Module | None = None
        self._request: dict[str, Any] | None = None
        self._dataset: Dataset | None = None
        self._epsilon: float | None = ticket.epsilon if ticket is not None else None

    # ------------------------------------------------------------------ state

    @property
    def info(self) -> JobInfo:
        return job_info(self._cove.client, self.id)

    @property
    def status(self) -> str:
        """requested, accepted, completed, failed or refunded (as the chain has it now)."""
        return self.info.status

    @property
    def buyer(self) -> str:
        return self.info.consumer

    @property
    def dataset(self) -> Dataset:
        """The dataset it trains on, seen by this job's Cove."""
        if self._dataset is None:
            self._dataset = self._cove.dataset(self.dataset_id)
        return self._dataset

    def _requested(self) -> dict[str, Any]:
        """JobRequested's arguments (from the event index; bytes as 0x hex)."""
        if self._request is None:
            self._request = job_events(self._cove.client, self.id)["request"]
        return self._request

    @property
    def epsilon(self) -> float:
        """The ε this job spends, at the dataset's δ (as the ledger charged it)."""
        if self._epsilon is None:
            from exchange.catalog import policy_of

            terms, _, _ = policy_of(self._cove.client, self.dataset_id)
            self._epsilon = ledger.job_epsilon(RequestedJob.from_index(job_events(self._cove.client, self.id)).honest_curve,
                                               float(terms.delta))  # fmt: skip
        return self._epsilon

    @property
    def spec(self) -> ModelSpec:
        """The spec this job trains, as its request carried it on-chain."""
        return ModelSpec.from_wire(bytes.fromhex(self._requested()["spec"][2:]))

    @property
    def fail_reason(self) -> str | None:
        """The runner's public reason, when it failed the job."""
        return ledger.fail_reason(self._cove.client, self.id)

    # ------------------------------------------------------------------ waiting

    def wait(self, timeout: float = 600, progress: bool = True, poll: float = 0.5) -> Job:
        """Waits until the job is completed; shows requested → accepted → training → completed.

        Returns the job. Raises JobFailed (quoting the runner's reason) if the runner failed
        it, JobRefunded if it was taken back, JobTimeout after `timeout` seconds.
        """
        bar = _Progress(self.id, progress)
        deadline = time.monotonic() + timeout
        seen_accepted = False
        while True:
            status = self.status
            if status == "accepted":
                state = "training" if seen_accepted else "accepted"
                seen_accepted = True
            else:
                state = status
            if status == "completed":
                bar.show("completed")
                return self
            if status == "failed":
                reason = self.fail_reason
                bar.show("failed", reason or "")
                raise JobFailed(self._failed_sentence(reason), self.id, reason)
            if status == "refunded":
                bar.show("refunded")
                raise JobRefunded(
                    f"Job #{self.id} was refunded: its buyer took it back after the deadline, and nothing was released."
                )
            bar.show(state, "waiting for the dataset's runner" if state == "requested" else "")
            if time.monotonic() > deadline:
                hint = (" Is the dataset's runner running? Its owner starts it with `cove runner start` "
                        "or cove.start_runner().") if status == "requested" else ""  # fmt: skip
                raise JobTimeout(f"Job #{self.id} is still {status} after {timeout:g} s.{hint}")
            time.sleep(poll)

    def _failed_sentence(self, reason: str | None) -> str:
        said = f" The runner's reason: {reason}" if reason else ""
        return (f"Job #{self.id} failed: the runner released nothing, and the credit and the ε it had reserved "
                f"were given back.{said}")  # fmt: skip

    # ------------------------------------------------------------------ results

    def result(self) -> JobResult:
        """The fetched, decrypted and checked results (the buyer only); kept once completed."""
        if self._result is None:
            status = self.status
            if status == "failed":
                raise JobFailed(self._failed_sentence(self.fail_reason), self.id, self.fail_reason)
            if status in ("requested", "accepted"):
                raise InputError(f"Job #{self.id} is {status}, not completed yet; call job.wait() first.")
            self._result = fetch_result(self._cove.client, self.id)
        return self._result

    def verify(self) -> Checks:
        """Re-runs every provenance check (signature, on-chain hashes, spec, ε, commitment, CID)."""
        self._result = fetch_result(self._cove.client, self.id) if self.status == "completed" else None
        return Checks(self.result().checks)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.result().provenance)

    def model(self) -> nn.Module:
        """The trained model, ready to use: fetched, decrypted, verified, loaded (and kept).

        Refused (VerificationFailed) if any provenance check failed.
        """
        if self._model is None:
            from exchange.ml.weights import load_weights

            result = self.result()
            if not result.verified:
                failed = ", ".join(c.name for c in result.checks if not c.passed)
                raise VerificationFailed(
                    f"Job #{self.id} failed verification ({failed}); the model was not loaded. See job.verify()."
                )
            self._model = load_weights(result.spec, self.dataset.schema_, result.weights)
        return self._model

    def evaluate(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The model on your own held-out rows: accuracy (classification) or RMSE (regression).

        Classification: {"task", "rows", "accuracy", "majority"} (majority: the share of the
        most common class, what always guessing it scores). Regression: {"task", "rows",
        "rmse", "baseline_rmse"} (baseline: always predicting the rows' mean), in the
        target's own units. Rows whose target is missing are left out.
        """
        import torch

        from exchange.ml.model import decode_regression, encode_features, encode_target

        if not isinstance(frame, pd.DataFrame):
            raise InputError("evaluate() takes a pandas DataFrame of your own held-out rows.")
        model = self.model()
        spec = self.result().spec
        schema = self.dataset.schema_
        missing = [c for c in (*spec.features, spec.target) if c not in frame.columns]
        if missing:
            raise InputError(f"The held-out table lacks the column(s) {', '.join(missing)} that job #{self.id}'s model uses.")
        with torch.no_grad():
            outputs = model(encode_features(spec, schema, frame))
        if spec.task == "classification":
            targets, usable = encode_target(spec, schema, frame)
            if len(targets) == 0:
                raise InputError(f"No held-out row has a known '{spec.target}' to compare with.")
            chosen = outputs[torch.from_numpy(usable)]
            if spec.loss == "bce":
                predicted = (chosen.squeeze(-1) > 0).long()
            else:
                predicted = chosen.argmax(dim=1)
            truth = targets.long()
            counts = np.bincount(truth.numpy())
            return {
                "task": "classification",
                "rows": int(len(truth)),
                "accuracy": float((predicted == truth).float().mean()),
                "majority": float(counts.max() / counts.sum()),
            }
        values = frame[spec.target].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        usable = ~np.isnan(values)
        if not usable.any():
            raise InputError(f"No held-out row has a known '{spec.target}' to compare with.")
        predicted = decode_regression(spec, schema, outputs.squeeze(-1))[usable]
        truth = values[usable]
        return {
            "task": "regression",
            "rows": int(usable.sum()),
            "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
            "baseline_rmse": float(np.sqrt(np.mean((truth - truth.mean()) ** 2))),
        }

    # ------------------------------------------------------------------ display

    def _pairs(self) -> list[tuple[str, Any]]:
        info = self.info
        pairs: list[tuple[str, Any]] = [
            ("job", f"#{self.id}"),
            ("dataset", f"#{self.dataset_id}"),
            ("status", info.status),
            ("buyer", info.consumer),
            ("runner", info.runner),
            ("ε", f"{self.epsilon:g}"),
            ("deadline", f"{datetime.fromtimestamp(info.deadline, UTC):%Y-%m-%d %H:%M} UTC"),
        ]
        if info.status == "failed":
            pairs.append(("runner's reason", self.fail_reason))
        return pairs

    def _repr_html_(self) -> str:
        return display.fields(self._pairs(), caption=f"Job #{self.id}")

    def __repr__(self) -> str:
        return f"<Job #{self.id} on dataset #{self.dataset_id}>"


class Federation:
    """A federated run's outcome, seen by its data scientist: one model trained over several
    owners' datasets in rounds (`Cove.train(spec, datasets=[...], rounds=R)`).

    Every round's model digest was committed on-chain by the aggregator and checked here
    against the model it kept; each dataset's job was charged ε for all its rounds.
    """

    def __init__(self, cove: Cove, result: FederatedResult):
        self._cove = cove
        self.result = result
        self.ticket = result.ticket
        self.id = result.federation_id

    @property
    def job_ids(self) -> tuple[int, ...]:
        return self.result.job_ids

    @property
    def datasets(self) -> tuple[int, ...]:
        return self.result.dataset_ids

    @property
    def rounds(self) -> int:
        return self.ticket.rounds

    @property
    def epsilons(self) -> dict[int, float]:
        """Each dataset's ε for its job (all local steps of all rounds), by dataset id."""
        return self.ticket.epsilons

    @property
    def composed_epsilons(self) -> dict[int, float]:
        """Each dataset's ε spent once its job was charged, by dataset id."""
        return self.ticket.composed_epsilons

    @property
    def round_digests(self) -> tuple[bytes, ...]:
        """Rounds 1..R's model digests, as committed on-chain (and recomputed from the models)."""
        return self.result.round_digests

    @property
    def jobs(self) -> list[Job]:
        return [Job(self._cove, job_id) for job_id in self.job_ids]

    def model(self) -> nn.Module:
        """The last round's model (a torch module of the spec, on the datasets' shared schema)."""
        return self.result.module

    def save(self, path: str | Path | None = None) -> Path:
        """Writes the model file (`exchange.ml.weights.load_model_file` loads it); returns its path."""
        target = Path(path) if path is not None else Path(f"federation-{self.id}.safetensors")
        target.write_bytes(self.result.model_file())
        return target

    def _pairs(self) -> list[tuple[str, Any]]:
        pairs: list[tuple[str, Any]] = [
            ("federation", f"#{self.id}"),
            ("rounds", self.rounds),
            ("aggregator", self.ticket.aggregator),
        ]
        pairs += [(f"dataset #{j.dataset_id}", f"job #{j.job_id}, ε {j.epsilon:g} (dataset's ε spent {j.composed_epsilon:g})")
                  for j in self.ticket.jobs]  # fmt: skip
        pairs += [(f"round {r}", "0x" + d.hex()) for r, d in enumerate(self.round_digests, start=1)]
        return pairs

    def _repr_html_(self) -> str:
        return display.fields(self._pairs(), caption=f"Federation #{self.id}")

    def __repr__(self) -> str:
        datasets = ", ".join(f"#{d}" for d in self.datasets)
        return f"<Federation #{self.id}: {self.rounds} rounds over datasets {datasets}>"
