"""Compute jobs through the `cove` CLI: train, runner, jobs, fetch, verify, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from torch import nn

from conftest import CliResult, write_schema
from exchange.accounts import dev_account
from exchange.ml.weights import load_model_file

pytestmark = pytest.mark.chain

SPEC: dict[str, Any] = {
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 100,
    "epochs": 2, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


def one_sentence(result: CliResult, *fragments: str, code: int = 2) -> None:
    """A refusal: exit `code` (2: bad input), one line on stderr, no traceback, naming every fragment."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def published(deployment, cove, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Dataset #1 published by dev0; dev1 holds two credits. Returns a folder to work in."""
    rng = np.random.default_rng(7)
    smoker = rng.integers(0, 2, 600).astype(bool)
    frame = pd.DataFrame({
        "age": rng.integers(20, 80, 600), "bmi": rng.normal(25, 4, 600).round(2), "smoker": smoker,
        "diagnosis": np.where(smoker ^ (rng.random(600) < 0.1), "malignant", "benign"),
    })  # fmt: skip
    frame.to_csv(tmp_path / "patients.csv", index=False)
    schema = str(write_schema(tmp_path / "patients.schema.json"))
    done = cove("publish", str(tmp_path / "patients.csv"), "--name", "Patients", "--schema", schema, "--budget", "10",
                "--per-job-cap", "4", "--free-cap", "5", "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert done.json()["dataset_id"] == 1
    bought = cove("buy", "1", "--credits", "2", "-a", "dev1")
    assert bought.exit_code == 0, bought.stderr
    return tmp_path


def job_count(cove) -> int:  # type: ignore[no-untyped-def]
    listed = cove("jobs", "--all", "--json")
    assert listed.exit_code == 0, listed.stderr
    return len(listed.json())


def test_train_run_list_fetch_and_verify(cove, published: Path) -> None:  # type: ignore[no-untyped-def]
    spec = published / "spec.json"
    spec.write_text(json.dumps(SPEC))
    asked = cove("train", "--dataset", "1", "--spec", str(spec), "-a", "dev1", "--json")
    assert asked.exit_code == 0, asked.stderr
    ticket = asked.json()
    assert (ticket["job_id"], ticket["dataset_id"], ticket["status"]) == (1, 1, None)
    assert 1.99 < ticket["epsilon"] <= 2.0  # the target ε, reached on the chain's grid
    # The tight accountant's figures, shown beside the ledger's and never enforced: below them.
    tight = ticket["tight"]
    assert tight["note"].startswith("not enforced") and tight["accountant"].startswith("PLD accountant")
    assert 0 < tight["epsilon"] < ticket["epsilon"] and tight["epsilon"] <= tight["composed_epsilon"] < ticket["composed_epsilon"]

    listed = cove("jobs", "-a", "dev1", "--json")
    assert [(j["job_id"], j["status"]) for j in listed.json()] == [(1, "requested")]

    # Not completed yet: nothing to fetch.
    early = published / "early.safetensors"
    one_sentence(cove("fetch", "1", "-a", "dev1", "-o", str(early)), "Job #1 is requested, not completed")
    assert not early.exists()

    served = cove("runner", "start", "--once", "--allow-unsandboxed", "--device", "cpu")
    assert served.exit_code == 0, served.stderr
    assert "job #1: completed" in served.stdout

    [job] = cove("jobs", "-a", "dev1", "--json").json()
    assert (job["job_id"], job["status"], job["consumer"], job["runner"]) == (
        1, "completed", dev_account(1).address, dev_account(0).address,
    )  # fmt: skip
    assert cove("jobs", "-a", "dev2", "--json").json() == []

    model_file = published / "model.safetensors"
    fetched = cove("fetch", "1", "-a", "dev1", "-o", str(model_file))
    assert fetched.exit_code == 0, fetched.stderr
    assert "all checks passed" in fetched.stdout
    model = load_model_file(model_file.read_bytes())
    assert isinstance(model, nn.Sequential)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]

    verified = cove("verify", "1", "-a", "dev1", "--json")
    assert verified.exit_code == 0, verified.stderr
    report = verified.json()
    assert report["verified"] is True and report["job_id"] == 1
    assert all(c["passed"] for c in report["checks"]) and len(report["checks"]) == 10

    # Only the buyer can decrypt and verify.
    one_sentence(cove("verify", "1", "-a", "dev2"), f"Job #1 belongs to {dev_account(1).address}")
    stolen = published / "stolen.safetensors"
    one_sentence(cove("fetch", "1", "-a", "dev2", "-o", str(stolen)), "only its buyer can decrypt")
    assert not stolen.exists()
    one_sentence(cove("fetch", "7", "-a", "dev1"), "There is no job #7", code=2)  # the chain's JobNotFound: a typo


def test_train_shows_what_it_is_doing_on_a_terminal(cove, published: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Connecting, pricing and the tight figure take seconds: a spinner says which is going on."""
    import io

    from rich.console import Console

    from exchange.cli import jobs_cmd

    screen = io.StringIO()
    monkeypatch.setattr(jobs_cmd, "console", Console(file=screen, force_terminal=True, width=200))
    spec = published / "spec.json"
    spec.write_text(json.dumps(SPEC))
    asked = cove("train", "--dataset", "1", "--spec", str(spec), "-a", "dev1")
    assert asked.exit_code == 0, asked.stderr
    shown = screen.getvalue()
    assert "pricing the job's privacy and requesting it..." in shown
    assert "job #1: computing its tight ε (information only)..." in shown
    assert "job #1 requested" in asked.stdout


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ["Cannot read the spec file", "check the path"]),
        ("{not json", ["The model spec is not valid JSON; check its syntax."]),
        (b"\xff\xfe\x00", ["Cannot read the spec file"]),
        ("[1, 2]", ["The model spec must be a JSON object."]),
        (json.dumps({**SPEC, "layers": [{"type": "Conv2d"}]}), ["names a layer type that is not allowed"]),
        (json.dumps({**SPEC, "epochs": 0}), ["The model spec's epochs is invalid"]),
        (json.dumps({**SPEC, "features": ["age", "weight"]}), ["feature column 'weight' that the dataset does not have"]),
        (json.dumps({**SPEC, "epochs": 50}), ["trains 50 epochs; dataset #1 allows at most 20"]),
        (json.dumps({**SPEC, "dp": {**SPEC["dp"], "target_epsilon": 5}}), ["above the per-job cap of ε 4"]),
    ],
    ids=["missing", "not-json", "not-utf8", "not-an-object", "unknown-layer", "zero-epochs", "unknown-column",
         "too-many-epochs", "above-cap"],
)  # fmt: skip
def test_a_bad_spec_file_is_refused_without_a_transaction(  # type: ignore[no-untyped-def]
    cove, published: Path, content: str | bytes | None, fragments: list[str]
) -> None:
    spec = published / "spec.json"
    if isinstance(content, bytes):
        spec.write_bytes(content)
    elif content is not None:
        spec.write_text(content)
    refused = cove("train", "--dataset", "1", "--spec", str(spec), "-a", "dev1", "--json")
    # Each is a user mistake, a job over the per-job cap too: exit 2, and with --json one
    # error object on stderr, nothing on stdout.
    assert refused.exit_code == 2, refused.stderr
    error = json.loads(refused.stderr)["error"]
    assert all(fragment in error["message"] for fragment in fragments), error
    assert refused.stdout == ""
    assert job_count(cove) == 0
    balance = cove("balance", "-a", "dev1", "--json").json()
    assert balance["credits"] == [{"dataset_id": 1, "credits": "2"}]
