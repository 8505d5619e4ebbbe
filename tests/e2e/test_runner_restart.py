"""A runner killed at any stage and restarted neither loses, repeats nor wrongly charges a job.

(a) killed while training (a real `cove runner start` process, SIGKILLed while its sandbox
    trains; and the same in-process, interrupted inside `_train`): on restart the job is
    failed on-chain and the credit refunded, but the ledger keeps the charge (private rows
    were read: a failure is a release), and it is never trained again; killed after claiming
    but before training started, the charge is released;
(b) killed after training but before `complete` was sent: the restart completes it from
    the outputs kept on disk and the buyer's fetch verifies;
(c) as (b), but the buyer took the job back after its deadline meanwhile: the restart
    never publishes the weights, and the ledger keeps the charge;
(d) killed right after reading new requests: the restart still serves them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from compute_to_data.runner import Runner, RunnerLimits
from compute_to_data.state import Stage
from exchange.client import CoveClient
from exchange.errors import TransactionReverted
from exchange.jobs import fetch_result, job_events, job_info, request_job, requested_job
from exchange.market import buy_credits
from exchange.ml.accounting import compose
from exchange.ml.spec import ModelSpec
from exchange.paths import HomeLayout
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.storage import Cid
from exchange.units import CREDIT
from conftest import PATIENTS_SCHEMA

pytestmark = pytest.mark.chain

LIMITS = RunnerLimits(device="cpu", allow_unsandboxed=True, wall_seconds=300)
SPEC = ModelSpec.parse({
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 100,
    "epochs": 2, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
})  # fmt: skip


class Killed(BaseException):
    """The runner process dying at this point (not an Exception: nothing may catch it)."""


def table(rows: int = 600, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    smoker = rng.integers(0, 2, rows).astype(bool)
    return pd.DataFrame({
        "age": rng.integers(20, 80, rows),
        "bmi": rng.normal(25, 4, rows).round(2),
        "smoker": smoker,
        "diagnosis": np.where(smoker ^ (rng.random(rows) < 0.1), "malignant", "benign"),
    })  # fmt: skip


def setup_job(client_for, folder: Path, *, deadline_seconds: int = 24 * 3600):  # type: ignore[no-untyped-def]
    """Dev0 publishes and serves a dataset; dev1 requests one job. Returns (owner, buyer, job id, ledger before)."""
    owner, buyer = client_for(0), client_for(1)
    path = folder / "patients.csv"
    table().to_csv(path, index=False)
    terms = parse_terms(budget="20", per_job_cap="4", free_cap=5)
    dataset_id = publish_dataset(owner, path, name="patients", terms=terms, schema=PATIENTS_SCHEMA).dataset_id
    buy_credits(buyer, dataset_id, 1)
    before = ledger(owner)
    job_id = request_job(buyer, dataset_id, SPEC, deadline_seconds=deadline_seconds).job_id
    assert credits(buyer) == 0
    return owner, buyer, job_id, before


def credits(client: CoveClient, dataset_id: int = 1) -> int:
    token = client.datatoken(client.session.call(client.cove.functions.datasetOf(dataset_id))[2])
    return client.session.call(token.functions.balanceOf(client.session.sender)) // CREDIT


def ledger(client: CoveClient, dataset_id: int = 1) -> tuple[int, ...]:
    return tuple(client.session.call(client.jobs.functions.curveOf(dataset_id)))


def job_curve(client: CoveClient, job_id: int) -> tuple[int, ...]:
    return requested_job(client, job_id).honest_curve  # what the honest SDK charged


def count_trainings(runner: Runner) -> list[int]:
    trained: list[int] = []
    train = runner._train

    def counted(job: Any, *rest: Any) -> Any:
        trained.append(job.job_id)
        return train(job, *rest)

    runner._train = counted  # type: ignore[method-assign]
    return trained


def children_of(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def assert_failed(owner: CoveClient, buyer: CoveClient, job_id: int, ledger_after: tuple[int, ...], reason: str) -> None:
    """The job failed on-chain with `reason`, its credit refunded, the ledger at `ledger_after`."""
    assert job_info(buyer, job_id).status == "failed"
    assert job_events(buyer, job_id)["reason"] == reason
    assert job_events(buyer, job_id)["completion"] is None
    assert credits(buyer) == 1  # refunded
    assert ledger(owner) == ledger_after


READ_ROWS = "The runner restarted while training; the privacy charge stays, as private rows had been read."
READ_NOTHING = "The runner restarted before training started; nothing was read or released."


# --------------------------------------------------------------------------- (a)


def test_a_runner_process_killed_while_training_fails_the_job_on_restart(
    client_for, cove_home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, job_id, before = setup_job(client_for, tmp_path)
    sandbox_log = HomeLayout(cove_home).runner / f"job-{job_id}.log"
    output = tmp_path / "runner.out"
    command = [sys.executable, "-c", "from exchange.cli.app import main; main()", "runner", "start",
               "--interval", "0.2", "--device", "cpu", "--allow-unsandboxed", "-a", "dev0"]  # fmt: skip
    sandbox: list[int] = []
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        # Wait until the job is claimed and its sandbox starts (the log is opened just before
        # it); training then takes seconds, most of them importing torch in the sandbox.
        deadline = time.monotonic() + 120
        while not sandbox_log.exists():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        settle = time.monotonic() + 2
        while not (sandbox := children_of(process.pid)) and time.monotonic() < settle:
            time.sleep(0.02)  # best effort: only to clean the sandbox up after the kill
        assert job_info(owner, job_id).status == "accepted"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        for child in sandbox:  # the sandbox runs in its own session: end it too
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    assert process.returncode == -signal.SIGKILL
    assert job_info(owner, job_id).status == "accepted"  # claimed, never completed

    restarted = Runner(owner, LIMITS)  # the same state file as the killed process
    assert restarted.state.get(job_id).stage is Stage.TRAINING  # type: ignore[union-attr]
    trained = count_trainings(restarted)
    restarted.recover()
    assert restarted.state.get(job_id).stage is Stage.FAILED  # type: ignore[union-attr]
    assert_failed(owner, buyer, job_id, compose([before, job_curve(buyer, job_id)]), READ_ROWS)
    assert restarted.poll() == [] and trained == []  # never trained twice
    assert not (restarted.outputs / str(job_id)).exists()


@pytest.mark.parametrize(
    ("step", "stage", "rows_read"), [("_train", Stage.TRAINING, True), ("_check", Stage.ACCEPTED, False)]
)
def test_a_runner_interrupted_after_claiming_fails_the_job_on_restart(
    client_for, tmp_path: Path, step: str, stage: Stage, rows_read: bool
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, job_id, before = setup_job(client_for, tmp_path)
    runner = Runner(owner, LIMITS)

    def interrupted(*_: Any) -> Any:
        assert runner.state.get(job_id).stage is stage  # type: ignore[union-attr]
        raise Killed

    setattr(runner, step, interrupted)
    with pytest.raises(Killed):
        runner.poll()
    assert job_info(owner, job_id).status == "accepted"

    restarted = Runner(owner, LIMITS)
    trained = count_trainings(restarted)
    restarted.recover()
    # Inside training the rows were read: the charge stays. Before it, it is released.
    kept = compose([before, job_curve(buyer, job_id)]) if rows_read else before
    assert_failed(owner, buyer, job_id, kept, READ_ROWS if rows_read else READ_NOTHING)
    restarted.recover()  # settling again changes nothing
    assert restarted.poll() == [] and trained == []
    assert restarted.state.get(job_id).stage is Stage.FAILED  # type: ignore[union-attr]


# --------------------------------------------------------------------------- (b)


def crash_before_complete(runner: Runner) -> None:
    """Makes `runner` die right after recording Stage.TRAINED, before `complete` is sent."""

    def crash(record: Any, status: str) -> None:
        raise Killed

    runner._finish = crash  # type: ignore[method-assign]
    with pytest.raises(Killed):
        runner.poll()


def test_a_trained_job_whose_complete_did_not_land_is_completed_on_restart(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, job_id, _ = setup_job(client_for, tmp_path)
    crash_before_complete(Runner(owner, LIMITS))

    restarted = Runner(owner, LIMITS)
    record = restarted.state.get(job_id)
    assert record is not None and record.stage is Stage.TRAINED
    assert job_info(owner, job_id).status == "accepted"
    assert not owner.store.has(record.weights_cid)  # nothing published before `complete` lands
    assert (restarted.outputs / str(job_id) / "weights.enc").is_file()

    trained = count_trainings(restarted)
    restarted.recover()
    assert job_info(buyer, job_id).status == "completed"
    assert restarted.state.get(job_id).stage is Stage.COMPLETED  # type: ignore[union-attr]
    assert owner.store.has(record.weights_cid)
    assert not (restarted.outputs / str(job_id)).exists()
    assert restarted.poll() == [] and trained == []
    result = fetch_result(buyer, job_id)
    assert result.verified, [c for c in result.checks if not c.passed]
    assert result.provenance.record.weights_cid == record.weights_cid


def test_a_trained_job_refunded_meanwhile_is_never_published(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, job_id, before = setup_job(client_for, tmp_path, deadline_seconds=600)
    crash_before_complete(Runner(owner, LIMITS))
    curve = job_curve(buyer, job_id)
    charged = compose([before, curve])
    assert ledger(owner) == charged

    # The buyer takes the job back once its deadline has passed.
    refund = buyer.jobs.functions.refund(job_id, list(curve))
    with pytest.raises(TransactionReverted, match="can be taken back only after its deadline"):
        buyer.session.transact(refund)
    w3 = buyer.session.w3
    w3.provider.make_request("evm_increaseTime", [601])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    buyer.session.transact(refund)
    assert job_info(buyer, job_id).status == "refunded"
    assert credits(buyer) == 1

    restarted = Runner(owner, LIMITS)
    record = restarted.state.get(job_id)
    assert record is not None and record.stage is Stage.TRAINED
    provenance = Cid.from_raw_digest(bytes.fromhex(json.loads(record.outputs)["provenance_digest"][2:]))  # type: ignore[arg-type]
    trained = count_trainings(restarted)
    restarted.recover()

    after = restarted.state.get(job_id)
    assert after is not None and after.stage is Stage.FAILED and after.reason == "closed on-chain as refunded"
    assert not owner.store.has(record.weights_cid)  # the weights never leave
    assert not owner.store.has(provenance)
    assert not (restarted.outputs / str(job_id)).exists()  # and are not kept either
    assert job_info(buyer, job_id).status == "refunded"
    assert job_events(buyer, job_id)["completion"] is None
    # Refunded after accept: only the runner can say nothing was released, so it stays charged.
    assert ledger(owner) == charged
    assert credits(buyer) == 1
    assert restarted.poll() == [] and trained == []


# --------------------------------------------------------------------------- (d)


def test_a_runner_killed_right_after_reading_new_requests_still_serves_them(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, job_id, _ = setup_job(client_for, tmp_path)
    runner = Runner(owner, LIMITS)

    def killed(job: int, dataset: int) -> bool:
        raise Killed

    runner.state.see = killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        runner.poll()

    restarted = Runner(owner, LIMITS)
    trained = count_trainings(restarted)
    restarted.recover()
    assert restarted.poll() == [job_id] and trained == [job_id]
    assert job_info(buyer, job_id).status == "completed"
    assert fetch_result(buyer, job_id).verified
