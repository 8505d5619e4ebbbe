"""The README's demo: publish, buy, train with DP in the sandbox, fetch, verify, evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from exchange.demo import run_demo

pytestmark = pytest.mark.chain


def test_demo_trains_a_verified_private_model(tmp_path: Path) -> None:
    outcome = run_demo(tmp_path / "demo-home", Console(file=open(tmp_path / "demo.log", "w")))  # noqa: SIM115
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
