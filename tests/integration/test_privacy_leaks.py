"""The leaks an outside audit found around the weights (issue 9), each as an attack that must fail.

Every test pairs the attack with a control that shows the attack works where the leak is
open, so a pass means the leak is closed and not that the attack was too weak to notice:

1. a dictionary attack on the commitment (control: the unkeyed hash it replaced, and the
   owner, who holds the key);
2. an extreme row, and a one-row dataset, against the public metadata (control: the draft
   schema read off the rows, which the owner alone sees);
3. the row count (control: its noise, seen over many releases);
4. δ ≥ 1/n, refused by the CLI with nothing written (and by the hub: contracts/test/Policy.t.sol).

Failures as a channel are tested where the runner runs: a job that read private rows keeps
its ε whatever happens (tests/e2e/test_runner_restart.py, contracts/test/ComputeJobsLedger.t.sol),
resources are judged from public quantities before any row is read
(tests/unit/test_runner_state.py), and training drops no row
(tests/unit/test_training.py::test_bce_with_missing_targets_and_nullable_features).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from exchange.datasets.commitment import CommitmentKey, canonical_bytes, commit
from exchange.datasets.dp_count import COUNT_NOISE_SCALE, DEFAULT_COUNT_NOISE, noisy_count
from exchange.datasets.metadata import prepare_metadata
from exchange.datasets.reader import load_table
from exchange.datasets.schema import draft_schema
from tests.cli.test_bad_input import dataset_count, fails, home_files, publish_args
from tests.conftest import PATIENTS_SCHEMA, make_table

NOISE_MICRO = int(DEFAULT_COUNT_NOISE * COUNT_NOISE_SCALE)
CREATED_AT = "2026-01-01T00:00:00Z"


# ---------------------------------------------------------------------------------------
# 1. The commitment hides the cells


def _candidates(table: pd.DataFrame, row: int) -> dict[tuple[str, bool], pd.DataFrame]:
    """Every way to fill the hidden (diagnosis, smoker) cells of `row`, all else known."""
    tables = {}
    for diagnosis, smoker in itertools.product(["benign", "malignant"], [False, True]):
        guess = table.copy()
        guess.loc[row, "diagnosis"] = diagnosis
        guess.loc[row, "smoker"] = smoker
        tables[(diagnosis, smoker)] = guess
    return tables


def test_a_dictionary_attack_on_the_commitment_fails(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    make_table(rows=60, seed=3).to_csv(path, index=False)
    key = CommitmentKey.at(tmp_path / "commitment.key")
    metadata, _ = prepare_metadata(path, "Patients", PATIENTS_SCHEMA, key, NOISE_MICRO)
    table = load_table(path)
    published = metadata.commitment.digest
    hidden = (str(table.loc[17, "diagnosis"]), bool(table.loc[17, "smoker"]))
    candidates = _candidates(table, 17)

    # The attacker knows every other cell and hashes each candidate, keyed or not.
    unkeyed = {guess: "0x" + hashlib.sha256(canonical_bytes(t)).hexdigest() for guess, t in candidates.items()}
    guessed_key = CommitmentKey(bytes(32))
    keyed_wrong = {guess: commit(t, guessed_key).digest for guess, t in candidates.items()}
    assert published not in unkeyed.values() and published not in keyed_wrong.values()

    # Controls: the same attack recovers the cells from the unkeyed hash Cove used to
    # publish, and from the commitment for whoever holds the owner's key.
    old_commitment = "0x" + hashlib.sha256(canonical_bytes(table)).hexdigest()
    assert [g for g, d in unkeyed.items() if d == old_commitment] == [hidden]
    assert [g for g, t in candidates.items() if commit(t, key).digest == published] == [hidden]


def test_each_owner_keys_their_commitments_apart(tmp_path: Path) -> None:
    """Two owners with the same table publish unrelated commitments: no one can link them."""
    table = make_table(rows=30, seed=4)
    first, second = CommitmentKey.at(tmp_path / "a.key"), CommitmentKey.at(tmp_path / "b.key")
    assert commit(table, first) != commit(table, second)
    assert commit(table, first) == commit(table.copy(), first)  # control: a key binds its own table


# ---------------------------------------------------------------------------------------
# 2. The metadata publishes nothing about a row beyond the DP count


def _published(table: pd.DataFrame, directory: Path, key: CommitmentKey) -> dict[str, Any]:
    """The public metadata document of `table`, as JSON."""
    directory.mkdir()
    path = directory / "patients.csv"
    table.to_csv(path, index=False)
    metadata, _ = prepare_metadata(path, "Patients", PATIENTS_SCHEMA, key, NOISE_MICRO, created_at=CREATED_AT)
    return json.loads(metadata.to_json_bytes())


def _beyond_noise(document: dict[str, Any]) -> dict[str, Any]:
    """Everything but the DP row count and the hiding commitment."""
    return {field: value for field, value in document.items() if field not in ("rows", "commitment")}


EXTREME_PATIENT = {"age": 97, "bmi": 58.9, "smoker": True, "diagnosis": "malignant"}


def test_an_extreme_row_changes_no_published_field_beyond_noise(tmp_path: Path) -> None:
    table = make_table(rows=200, seed=5)
    with_extreme = pd.concat([table, pd.DataFrame([EXTREME_PATIENT])], ignore_index=True)
    key = CommitmentKey.at(tmp_path / "commitment.key")
    without = _published(table, tmp_path / "without", key)
    with_row = _published(with_extreme, tmp_path / "with", key)
    assert _beyond_noise(with_row) == _beyond_noise(without)
    assert with_row["schema"] == json.loads(PATIENTS_SCHEMA.model_dump_json())  # as declared

    # Control: a schema read off the rows (the owner's local draft) moves with the extreme row.
    assert draft_schema(with_extreme) != draft_schema(table)
    assert draft_schema(with_extreme).column("age").maximum == 100  # 97 rounded out


def test_a_one_row_dataset_publishes_nothing_about_its_row(tmp_path: Path) -> None:
    key = CommitmentKey.at(tmp_path / "commitment.key")
    alice = pd.DataFrame([{"age": 34, "bmi": 21.4, "smoker": False, "diagnosis": "benign"}])
    bob = pd.DataFrame([EXTREME_PATIENT])
    published_alice = _published(alice, tmp_path / "alice", key)
    published_bob = _published(bob, tmp_path / "bob", key)
    assert _beyond_noise(published_alice) == _beyond_noise(published_bob)
    mock = pd.DataFrame(published_alice["mock"])
    for patient in (alice, bob):
        assert not (mock[["age", "bmi"]] == patient.iloc[0][["age", "bmi"]].to_numpy()).all(axis=1).any()

    # Control: the draft of a one-row table is that row.
    draft = draft_schema(bob)
    assert draft.column("diagnosis").categories == ["malignant"]
    assert draft.column("smoker").nullable is False and draft.column("age").minimum <= 97 <= draft.column("age").maximum


# ---------------------------------------------------------------------------------------
# 3. The row count is a DP release


def test_the_row_count_is_released_with_noise() -> None:
    """Over many releases of the count of 1,000 rows and of 1,001, the two are hard to tell
    apart: both spread with σ ≈ 20 around the truth, and each value is common to both."""
    draws = {rows: [noisy_count(rows, NOISE_MICRO) for _ in range(400)] for rows in (1000, 1001)}
    for rows, counts in draws.items():
        assert abs(statistics.mean(counts) - rows) < 4 * DEFAULT_COUNT_NOISE / 20  # 4 standard errors
        assert 0.8 * DEFAULT_COUNT_NOISE < statistics.stdev(counts) < 1.2 * DEFAULT_COUNT_NOISE
    # Control: an exact count would be 1000 in every release and tell the two apart at once.
    assert len(set(draws[1000])) > 40
    assert len(set(draws[1000]) & set(draws[1001])) > 30


def test_a_tiny_count_stays_positive() -> None:
    # Clamping at 1 is post-processing of the noisy value: it costs nothing and leaks nothing.
    assert min(noisy_count(1, NOISE_MICRO) for _ in range(200)) == 1


# ---------------------------------------------------------------------------------------
# 4. δ below 1/n


@pytest.mark.parametrize("delta", ["0.5", "0.05"])
def test_delta_at_or_above_one_over_n_is_refused(cove, client_for, cove_home: Path, dataset_csv: Path,  # type: ignore[no-untyped-def]
                                                 delta: str) -> None:  # fmt: skip
    client = client_for(0)
    before = home_files(cove_home)
    fails(cove(*publish_args(dataset_csv, "--delta", delta)), "δ must be below 1/n for the public row count", code=2)
    assert dataset_count(client) == 0 and home_files(cove_home) == before
    # Control: a δ below 1/n for these ~120 rows is published.
    assert cove(*publish_args(dataset_csv, "--delta", "1e-4")).exit_code == 0
    assert dataset_count(client) == 1
