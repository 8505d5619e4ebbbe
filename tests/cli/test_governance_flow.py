"""A consortium governs a dataset's policy through the CLI, on a real anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_table, write_schema
from exchange.accounts import dev_account

pytestmark = pytest.mark.chain

SPEC = {
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01, "expected_batch_size": 64,
    "epochs": 2, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


def test_three_member_consortium_raises_a_budget_by_vote(cove, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "registry.csv"
    make_table(rows=600).to_csv(data, index=False)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    members = [f"--member={dev_account(i).address}={votes}" for i, votes in ((1, 40), (2, 35), (3, 25))]

    assert cove("chain", "up").exit_code == 0
    try:
        assert cove("deploy").exit_code == 0
        assert cove("gov", "deploy", "--name", "hospitals", *members, "--voting-delay", "60",
                    "--voting-period", "3600", "--timelock-delay", "600").exit_code == 0  # fmt: skip
        # Voting power counts from one second after it was delegated (at mint): let it pass.
        assert cove("chain", "mine", "--seconds", "1").exit_code == 0
        schema = str(write_schema(tmp_path / "registry.schema.json"))
        published = cove("publish", str(data), "--name", "Registry", "--schema", schema, "--budget", "2.1",
                         "--per-job-cap", "2", "--free-cap", "5", "--governed-by", "hospitals")  # fmt: skip
        assert published.exit_code == 0, published.stderr
        buyer = ("--account", "dev4")
        assert cove("buy", "1", "-n", "3", *buyer).exit_code == 0

        # The owner alone can no longer change the policy.
        direct = cove("policy", "set", "1", "--budget", "8")
        assert direct.exit_code != 0 and "Only the policy controller" in direct.stderr

        # Budget 2.1: the row count's release (ε 0.18 alone, 0.01 more once composed) and one job
        # of ε 2 fit; a second job would compose to 2.7.
        assert cove("train", "--dataset", "1", "--spec", str(spec), *buyer).exit_code == 0
        refused = cove("train", "--dataset", "1", "--spec", str(spec), *buyer)
        assert refused.exit_code != 0 and "not enough privacy budget" in refused.stderr

        # An invalid policy is refused when proposed, with the policy setter's sentence.
        bad = cove("gov", "propose", "--dataset", "1", "--set", "per_job_cap=3", "--description", "x", "-a", "dev1")
        assert bad.exit_code != 0 and "must be positive and at most the budget" in bad.stderr

        outsider = cove("gov", "propose", "--dataset", "1", "--set", "budget=8", "--description", "x", "-a", "dev5")
        assert outsider.exit_code != 0 and "has 0 votes but proposing needs 1" in outsider.stderr

        proposed = cove("gov", "propose", "--dataset", "1", "--set", "budget=8",
                        "--description", "Raise the privacy budget to 8", "-a", "dev1", "--json")  # fmt: skip
        assert proposed.exit_code == 0, proposed.stderr
        pid = proposed.json()["proposal_id"]
        early = cove("gov", "vote", pid, "for", "-a", "dev1")
        assert early.exit_code != 0 and "pending" in early.stderr

        assert cove("chain", "mine", "--seconds", "61").exit_code == 0
        assert cove("gov", "vote", pid, "for", "-a", "dev1").exit_code == 0
        assert cove("gov", "vote", pid, "for", "-a", "dev2", "--reason", "more research").exit_code == 0
        assert cove("gov", "vote", pid, "against", "-a", "dev3").exit_code == 0
        twice = cove("gov", "vote", pid, "for", "-a", "dev2")
        assert twice.exit_code != 0 and "already voted" in twice.stderr
        too_soon = cove("gov", "queue", pid)
        assert too_soon.exit_code != 0 and "active" in too_soon.stderr

        assert cove("chain", "mine", "--seconds", "3601").exit_code == 0
        [proposal] = cove("gov", "proposals", "--json").json()
        assert proposal["state"] == "succeeded"
        assert (proposal["votes_for"], proposal["votes_against"]) == ("75", "25")
        assert cove("gov", "queue", pid).exit_code == 0
        not_yet = cove("gov", "execute", pid)
        assert not_yet.exit_code != 0 and "timelock delay" in not_yet.stderr
        assert cove("chain", "mine", "--seconds", "601").exit_code == 0
        assert cove("gov", "execute", pid).exit_code == 0

        # Delegating now moves voting power for later proposals only.
        assert cove("gov", "delegate", dev_account(1).address, "-a", "dev3").exit_code == 0

        policy = cove("policy", "show", "1", "--json").json()
        assert (policy["version"], policy["budget"]) == (2, "8")
        # The next request is checked against the new budget.
        accepted = cove("train", "--dataset", "1", "--spec", str(spec), *buyer, "--json")
        assert accepted.exit_code == 0, accepted.stderr
        assert 2 < accepted.json()["composed_epsilon"] <= 8
    finally:
        cove("chain", "down")
