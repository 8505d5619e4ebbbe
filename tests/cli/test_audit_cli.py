"""`cove audit` through the `cove` entry point, in-process: its table, its JSON, its errors.

No chain: the audit runs on the owner's machine and talks to nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import CliResult

from compute_to_data.audit import GUESS_PLANS, RUNNER_TRAINING

ROWS = 200


@pytest.fixture
def owner_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({f"f{i}": rng.normal(size=ROWS).round(3) for i in range(8)})
    table["sick"] = rng.random(ROWS) < 0.4
    data = tmp_path / "private.csv"
    table.to_csv(data, index=False)
    spec: dict[str, Any] = {
        "task": "classification", "features": [f"f{i}" for i in range(8)], "target": "sick",
        "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.02, "expected_batch_size": 50,
        "epochs": 3, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }  # fmt: skip
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return data, spec_file


def one_sentence(result: CliResult, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), result.stderr
    return lines[0].removeprefix("Error: ")


def test_audit_json_reports_the_claim_the_bound_and_the_attack(cove, owner_files: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    data, spec_file = owner_files
    before = sorted(p.name for p in data.parent.iterdir())
    result = cove("audit", "--data", str(data), "--spec", str(spec_file), "--canaries", "100", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["training"] == RUNNER_TRAINING
    assert report["canaries"] == 100 and 0 < report["included"] < 100
    assert report["confidence"] == 0.95 and report["delta"] == 1e-5
    assert report["claimed_epsilon"] == pytest.approx(2.0, abs=1e-3)
    assert 0 <= report["epsilon_lower_bound"] < report["claimed_epsilon"] and report["violated"] is False
    assert 0 <= report["auc"] <= 1
    assert report["guesses"] == report["guesses_in"] + report["guesses_out"] and 0 <= report["correct"] <= report["guesses"]
    assert report["table_rows"] == ROWS and report["public_rows"] == ROWS + 50
    assert report["rows_trained"] == ROWS + report["included"]
    assert {"noise_multiplier", "sample_rate", "steps", "epochs", "max_grad_norm", "seconds"} <= set(report)
    assert len(report["plans"]) == len(GUESS_PLANS)
    assert sorted(p.name for p in data.parent.iterdir()) == before  # nothing written


def test_audit_prints_a_table_by_default(cove, owner_files: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    data, spec_file = owner_files
    result = cove("audit", "--data", str(data), "--spec", str(spec_file), "--canaries", "60", "--confidence", "0.9")
    assert result.exit_code == 0, result.stderr
    for label in ("claimed ε (δ = 1e-5)", "empirical ε lower bound (90% confidence)", "attack AUC",
                  "canaries", "guesses made", "correct guesses", "DP parameters", RUNNER_TRAINING):  # fmt: skip
        assert label in result.stdout, label
    assert "Consistent with the claimed ε" in result.stdout
    assert result.stderr == ""


def test_audit_help_names_its_options(cove) -> None:  # type: ignore[no-untyped-def]
    result = cove("audit", "--help")
    assert result.exit_code == 0
    for option in ("--data", "--spec", "--schema", "--canaries", "--confidence", "--rows", "--json"):
        assert option in result.stdout
    assert "--no-noise" not in result.stdout


def test_a_missing_data_file_is_one_sentence(cove, owner_files: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, spec_file = owner_files
    sentence = one_sentence(cove("audit", "--data", str(tmp_path / "nope.csv"), "--spec", str(spec_file)))
    assert "does not exist" in sentence and "nope.csv" in sentence


def test_a_missing_spec_and_bad_numbers_are_one_sentence(cove, owner_files: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, spec_file = owner_files
    assert "spec file" in one_sentence(cove("audit", "--data", str(data), "--spec", str(tmp_path / "none.json")))
    assert "confidence" in one_sentence(cove("audit", "--data", str(data), "--spec", str(spec_file), "--confidence", "1.5"))
    assert "canaries" in one_sentence(cove("audit", "--data", str(data), "--spec", str(spec_file), "--canaries", "3"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(spec_file.read_text()), "target": "nope"}))
    assert "nope" in one_sentence(cove("audit", "--data", str(data), "--spec", str(bad)))


def test_an_error_never_quotes_a_cell(cove, owner_files: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, spec_file = owner_files
    secret = "SECRET-VALUE-4711"
    table = pd.read_csv(data)
    table["f0"] = table["f0"].astype(object)
    table.loc[3, "f0"] = secret  # a numeric column with one text cell: the reader refuses it
    broken = tmp_path / "broken.csv"
    table.to_csv(broken, index=False)
    result = cove("audit", "--data", str(broken), "--spec", str(spec_file))
    one_sentence(result)
    assert secret not in result.stdout + result.stderr
