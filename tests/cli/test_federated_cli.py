"""`cove train` over several datasets: its argument errors, and refusals that come before any
credit is spent or any Flower service starts (one sentence, exit 2). The federated run itself
needs the owners' runners and is tested end to end in tests/e2e."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import PATIENTS_SCHEMA, CliResult, make_table

from exchange.cli import jobs_cmd
from exchange.federated import request as federated
from exchange.market import buy_credits
from exchange.ml import spec as ml_spec
from exchange.policy import parse_terms
from exchange.publish import publish_dataset

SPEC: dict[str, Any] = {
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 20,
    "epochs": 1, "dp": {"noise_multiplier": 1.5, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


def one_sentence(result: CliResult, *fragments: str, code: int = 2) -> str:
    """A refusal: exit `code`, one line on stderr (a sentence, or with --json an error
    object holding one), no traceback, naming every fragment."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    if lines[0].startswith("{"):
        sentence = json.loads(lines[0])["error"]["message"]
    else:
        assert lines[0].startswith("Error: "), result.stderr
        sentence = lines[0].removeprefix("Error: ")
    assert sentence.endswith("."), sentence
    for fragment in fragments:
        assert fragment in sentence, sentence
    return sentence


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def datasets(*ids: int) -> list[str]:
    return [arg for dataset_id in ids for arg in ("--dataset", str(dataset_id))]


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (datasets(1, 2, 3), "Training over 3 datasets needs --rounds (1 to 100): how many federated rounds to run."),
        ([*datasets(1, 2, 1), "--rounds", "2"], "Dataset #1 is given twice; give each --dataset once."),
        ([*datasets(1, 1)], "Dataset #1 is given twice; give each --dataset once."),
        ([*datasets(1, 2), "--rounds", "0"], "--rounds must be between 1 and 100, not 0."),
        ([*datasets(1, 2), "--rounds", "101"], "--rounds must be between 1 and 100, not 101."),
        ([*datasets(1), "--rounds", "3"],
         "--rounds trains one model over several datasets; give two or more --dataset, or leave --rounds out."),
        ([*datasets(*range(1, 18)), "--rounds", "2"], "A federation trains on at most 16 datasets, not 17."),
    ],
)  # fmt: skip
def test_argument_errors_are_one_sentence_before_anything_is_read(cove, tmp_path: Path, args: list[str],
                                                                  sentence: str) -> None:  # fmt: skip
    # No chain runs and the spec file does not exist: the arguments are refused first.
    done = cove("train", *args, "--spec", str(tmp_path / "missing.json"))
    assert one_sentence(done) == sentence


def test_the_cli_limits_are_the_libraries() -> None:
    # jobs_cmd keeps its own copies so that `cove --help` does not import the spec module.
    assert jobs_cmd.MAX_ROUNDS == ml_spec.MAX_ROUNDS
    assert jobs_cmd.MAX_FEDERATION == federated.MAX_DATASETS


def _publish(client, folder: Path, seed: int) -> int:  # type: ignore[no-untyped-def]
    path = folder / f"site-{seed}.csv"
    make_table(rows=120, seed=seed).to_csv(path, index=False)
    terms = parse_terms(budget="20", per_job_cap="10", free_cap=5)
    return publish_dataset(client, path, name=f"site {seed}", terms=terms, schema=PATIENTS_SCHEMA).dataset_id


@pytest.mark.chain
def test_refusals_come_before_any_credit_is_spent_or_any_superlink_starts(cove, client_for, spec_file: Path,
                                                                         tmp_path: Path, cove_home: Path) -> None:  # fmt: skip
    sites = [_publish(client_for(owner), tmp_path, seed) for owner, seed in ((0, 1), (2, 2), (4, 3))]
    buyer = client_for(1)
    for dataset_id in sites[:2]:
        buy_credits(buyer, dataset_id, 1)

    def jobs() -> int:
        return int(buyer.session.call(buyer.jobs.functions.jobCount()))

    done = cove("train", *datasets(*sites), "--spec", str(spec_file), "--rounds", "2", "-a", "dev1")
    one_sentence(done, f"holds no credit of dataset #{sites[2]}", f"`cove buy {sites[2]}`")
    # Beyond the default 20 epochs of dataset #1's policy, said of it.
    done = cove("train", *datasets(*sites[:2]), "--spec", str(spec_file), "--rounds", "21", "-a", "dev1", "--json")
    one_sentence(done, f"dataset #{sites[0]} allows at most 20", "21 epochs (1 in each of 21 rounds)")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(SPEC | {"target": "outcome"}))
    done = cove("train", *datasets(*sites[:2]), "--spec", str(bad), "--rounds", "2", "-a", "dev1")
    one_sentence(done, f"For dataset #{sites[0]}: the spec's target column 'outcome' is not in the dataset")

    assert jobs() == 0
    assert not (cove_home / "federations" / "superlink.log").exists()
    token = buyer.datatoken(buyer.session.call(buyer.cove.functions.datasetOf(sites[0]))[2])
    assert buyer.session.call(token.functions.balanceOf(buyer.session.sender)) > 0
