"""The notebook SDK end to end on a fresh local chain: the owner publishes a DataFrame and
starts its runner (a process of its own, with its endpoint); a data scientist with a home of
their own buys, builds and tries a spec, trains; the buyer gets a verified model that beats
chance on rows of their own, and the budget moves by exactly the job's ε. Then the refusals,
each one readable sentence: a wrong column, no credits, no money, an exhausted budget, a
failed job.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from exchange import Cove, Spec  # noqa: E402
from conftest import PATIENTS_SCHEMA  # noqa: E402
from exchange.chain.anvil import rpc_answers  # noqa: E402
from exchange.errors import CoveError, InputError, PrivacyError, SpecError  # noqa: E402
from exchange.sdk import Dataset, Job, JobFailed, ipython  # noqa: E402

pytestmark = pytest.mark.chain

FEATURES = ["age", "bmi", "smoker"]


def signal_table(rows: int, seed: int) -> pd.DataFrame:
    """Patients whose diagnosis depends on the features (as in test_compute_jobs): smokers,
    older and heavier patients are more often malignant; the best accuracy is about 0.9."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 80, rows)
    bmi = rng.normal(25, 4, rows).round(2)
    smoker = rng.integers(0, 2, rows).astype(bool)
    score = 5.0 * (smoker - 0.5) + 0.06 * (age - 50) + 0.15 * (bmi - 25)
    malignant = rng.random(rows) < 1 / (1 + np.exp(-score))
    return pd.DataFrame(
        {"age": age, "bmi": bmi, "smoker": smoker, "diagnosis": np.where(malignant, "malignant", "benign")}
    )


def readable(error: CoveError) -> str:
    """The sentence as a notebook shows it: one line, no traceback, no web3 internals."""
    line = ipython.one_line(error)
    assert "\n" not in str(error) and line.startswith("CoveError: ")
    assert error.__cause__ is None
    assert "Traceback" not in line and "web3" not in line.lower()
    return str(error)


def test_a_notebook_story_from_publish_to_a_verified_model() -> None:
    with Cove.local() as owner:
        home, rpc_url = owner.home, owner.rpc_url
        assert owner.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # dev0
        frame = signal_table(600, seed=11)
        published = owner.publish(frame, "Patients", schema=PATIENTS_SCHEMA, budget=2, per_job_cap=2, price=2.5,
                                  description="600 patients", tags=["health"])  # fmt: skip
        assert isinstance(published, Dataset) and published.name == "Patients"
        assert abs(published.rows - 600) <= 6 * 20  # the count plus discrete Gaussian noise of σ 20
        private = sorted(p.name for p in (home / "private").iterdir())
        assert len(private) == 2 and "commitment.key" in private  # the table and the commitment key
        assert all((home / "private" / name).stat().st_mode & 0o077 == 0 for name in private)  # the owner's eyes only
        assert owner.datasets()["name"].tolist() == ["Patients"]
        runner = owner.start_runner()
        assert owner.start_runner() is runner and runner.running
        assert owner.client.endpoint_of(owner.address) == runner.url  # announced on-chain

        # The data scientist: another machine, sharing only the RPC URL and the hub.
        scientist = owner.elsewhere("dev1")
        assert scientist.address != owner.address and scientist.home != owner.home
        assert (scientist.rpc_url, scientist.hub) == (owner.rpc_url, owner.hub)
        dataset = scientist.dataset(published.id)
        schema = dataset.schema
        assert schema["column"].tolist() == ["age", "bmi", "smoker", "diagnosis"]
        assert schema.set_index("column").loc["diagnosis", "categories"] == ["benign", "malignant"]
        assert list(dataset.mock().columns) == schema["column"].tolist() and len(dataset.mock()) == 20
        # Publishing spent a little of the budget: the row count's release.
        publication = dataset.epsilon_spent
        assert 0.1 < publication < 0.3 and dataset.budget_remaining == pytest.approx(2.0 - publication)
        assert dataset.price == 2.5 and dataset.credits == 0
        assert "<table" in dataset._repr_html_() and "Patients" in dataset._repr_html_()
        assert "budget ε 2" in dataset.policy.summary()

        # Not enough money, then enough.
        with pytest.raises(InputError) as broke:
            dataset.buy(1)
        assert "cost 2.5 tUSD" in readable(broke.value)
        assert scientist.faucet(100) == 100.0
        dataset.buy(3)
        assert dataset.credits == 3

        # A wrong column is refused before anything is sent, with the runner's own sentence.
        with pytest.raises(SpecError) as wrong:
            Spec.mlp(["age", "weight"], "diagnosis", dataset=dataset)
        assert readable(wrong.value).startswith("The spec uses a feature column 'weight' that the dataset does not have")

        spec = Spec.mlp(FEATURES, "diagnosis", hidden=(16,), epsilon=1.0, epochs=3, batch_size=100,
                        learning_rate=0.05, dataset=dataset)  # fmt: skip
        assert spec.task == "classification" and spec.dp.delta == 1e-5
        assert dataset.spec_mlp(FEATURES, "diagnosis", hidden=(16,), epsilon=1.0, epochs=3, batch_size=100,
                                learning_rate=0.05) == spec  # fmt: skip
        tried = dataset.try_spec(spec)
        assert tried["ran"] is True and tried["rows"] == 20
        cost = dataset.cost(spec)
        assert cost["epsilon"] == pytest.approx(1.0, abs=1e-6)
        assert 0 < cost["tight_epsilon"] < cost["epsilon"] and cost["tight_composed_epsilon"] < cost["composed_epsilon"]
        assert cost["tight_note"].startswith("not enforced")

        # A job the runner fails: the owner tightens the policy before the runner sees it.
        owner.stop_runner()
        doomed = dataset.train(spec)
        assert isinstance(doomed, Job) and doomed.status == "requested" and dataset.credits == 2
        published.set_policy(max_epochs=2)
        runner = owner.start_runner()
        with pytest.raises(JobFailed) as failed:
            doomed.wait(timeout=120, progress=False)
        message = readable(failed.value)
        assert message.startswith(f"Job #{doomed.id} failed") and "at most 2 epochs" in message
        assert failed.value.reason == doomed.fail_reason and doomed.status == "failed"
        assert dataset.credits == 3 and dataset.epsilon_spent == publication  # refunded, ε released (nothing read)
        with pytest.raises(SpecError, match="allows at most 2"):
            dataset.train(spec)  # the new policy is checked before sending
        published.set_policy(max_epochs=20)

        # The job that trains.
        job = dataset.train(spec).wait(timeout=300, progress=False)
        assert job.status == "completed" and dataset.credits == 2
        model = job.model()
        assert job.model() is model  # kept
        checks = job.verify()
        assert checks.passed and len(checks) >= 8 and "<table" in checks._repr_html_()
        assert job.provenance.epsilon == pytest.approx(job.epsilon) and job.provenance.job_id == job.id
        assert "<table" in job.provenance._repr_html_() and "<table" in job._repr_html_()
        held_out = signal_table(400, seed=99)
        scores = job.evaluate(held_out)
        assert scores["rows"] == 400 and scores["accuracy"] > scores["majority"] + 0.1, scores
        assert job.epsilon == pytest.approx(1.0, abs=1e-6)
        # RDP composition: the count and the job together cost far less than their sum.
        assert job.epsilon < dataset.epsilon_spent < job.epsilon + publication / 2
        assert dataset.budget_remaining == pytest.approx(2.0 - dataset.epsilon_spent, abs=1e-6)

        # The budget: the row count, then the completed job; the failed job is not charged.
        history = dataset.budget_history()
        assert history["job"].tolist() == [pd.NA, job.id] and history["status"].tolist() == ["published", "completed"]
        assert history["composed_epsilon"].tolist() == pytest.approx([publication, dataset.epsilon_spent], abs=1e-6)
        ax = dataset.plot_budget()
        steps = [ln for ln in ax.get_lines() if ln.get_label().startswith("ε spent")][0]
        assert list(steps.get_ydata()) == pytest.approx([0.0, publication, dataset.epsilon_spent, dataset.epsilon_spent], abs=1e-6)
        jobs = scientist.jobs()
        assert jobs["status"].tolist() == ["failed", "completed"]
        assert "at most 2 epochs" in jobs["reason"].iloc[0] and jobs["epsilon"].iloc[1] == pytest.approx(1.0)
        assert len(owner.jobs()) == 0 and len(owner.jobs(everyone=True)) == 2 and len(published.jobs()) == 2

        # A second job would compose past the budget: refused before any transaction.
        greedy = Spec.mlp(FEATURES, "diagnosis", hidden=(16,), epsilon=2.0, epochs=3, batch_size=100, dataset=dataset)
        with pytest.raises(PrivacyError) as exhausted:
            dataset.train(greedy)
        assert "not enough privacy budget left" in readable(exhausted.value)
        assert dataset.credits == 2

        # No credits at all (this one from the owner's own home: `use`).
        stranger = owner.use("dev2").dataset(published.id)
        with pytest.raises(InputError) as no_credit:
            stranger.train(spec)
        assert "holds no credit of dataset" in readable(no_credit.value) and "dataset.buy()" in str(no_credit.value)

        # Another Cove on the same chain, through the home's record of it.
        again = Cove.connect(home=home, account="dev1")
        assert again.dataset(published.id).credits == 2 and again.job(job.id).status == "completed"
        again.close()  # connected, not started: the chain stays up
        assert owner.dataset(published.id).rows == published.rows

    assert not rpc_answers(rpc_url)  # the chain stopped with the Cove that started it
    assert not home.exists() and not scientist.home.exists()  # the temporary homes went with it
    assert runner.running is False


def test_local_refuses_a_home_that_holds_a_chain(tmp_path: Path) -> None:
    with Cove.local(tmp_path / "home") as cove:
        assert cove.home == tmp_path / "home"
        with pytest.raises(CoveError, match="already holds Cove state"):
            Cove.local(tmp_path / "home")
    assert (tmp_path / "home").exists()  # a home that was given is the user's: kept
    with pytest.raises(CoveError, match="No chain to talk to"):
        Cove(home=tmp_path / "home")


def test_a_process_that_forgets_to_close_still_stops_its_chain() -> None:
    code = (
        "from exchange import Cove\n"
        "cove = Cove.local()\n"
        "cove.start_runner(allow_unsandboxed=True)\n"
        "print(cove.rpc_url, cove.home)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    rpc_url, home = done.stdout.split()
    assert rpc_answers(rpc_url) is False
    assert not Path(home).exists()
