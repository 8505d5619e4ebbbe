"""The README's demo: publish, buy, train with DP in the sandbox, fetch, verify, evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain


def test_demo_trains_a_verified_private_model(tmp_path: Path) -> None:
    # `cove demo --json`, as a script runs it: the story is not told, the outcome is one JSON object.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    done = subprocess.run([sys.executable, "-m", "exchange.cli", "demo", "--home", str(tmp_path / "demo-home"), "--json"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["verified"] is True
    assert outcome["epsilon"] <= 2.0
    # The ledger holds the row count's release and the job, composed under RDP: more than the
    # job alone, far less than the two added up.
    assert 0.1 < outcome["publication_epsilon"] < 0.3
    assert outcome["epsilon"] < outcome["dataset_epsilon_spent"] < outcome["epsilon"] + outcome["publication_epsilon"] / 2
    # A DP model that learned something: clearly above always answering the majority class.
    assert outcome["accuracy"] > outcome["majority_baseline"] + 0.1
    assert outcome["publish_gas"] <= 450_000 and outcome["request_gas"] <= 200_000
    assert outcome["governed_budget"] == 8.0  # the consortium voted the budget up
