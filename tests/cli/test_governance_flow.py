"""A consortium governs a dataset's policy through the CLI, on a real anvil."""

from __future__ import annotations

import json
import re
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
        assert refused.exit_code == 2 and "not enough privacy budget" in refused.stderr  # a smaller job would fit
        assert "a higher budget from the dataset's policy controller" in refused.stderr

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


def _options(command: str) -> list[str]:
    return re.findall(r"(?<![\w-])--[a-z][a-z-]*", command)


def test_gov_deploy_suggests_options_that_exist(cove) -> None:  # type: ignore[no-untyped-def]
    assert cove("chain", "up").exit_code == 0
    try:
        assert cove("deploy").exit_code == 0
        deployed = cove("gov", "deploy", "--name", "hospitals", f"--member={dev_account(1).address}=1")
        assert deployed.exit_code == 0, deployed.stderr
        suggested = re.findall(r"`(cove [^`]+)`", deployed.stdout)
        publish = [c for c in suggested if c.startswith("cove publish")]
        assert publish, deployed.stdout
        for command in suggested:
            words = command.split()
            # `cove publish …` or `cove gov vote …`: the command's help lists every option suggested.
            path = words[1:2] if words[1] == "publish" else words[1:3]
            help_text = cove(*path, "--help").stdout
            for option in _options(command):
                assert option in help_text, f"{command!r} suggests {option}, which `cove {' '.join(path)}` lacks"
        assert "--governed-by hospitals" in publish[0] and "--controller" not in deployed.stdout
    finally:
        cove("chain", "down")


def _one_error(result, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_proposals_are_named_by_short_numbers(cove, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "registry.csv"
    make_table(rows=300).to_csv(data, index=False)
    members = [f"--member={dev_account(i).address}={votes}" for i, votes in ((1, 60), (2, 40))]
    assert cove("chain", "up").exit_code == 0
    try:
        token = cove("deploy", "--json").json()["payment_token"]
        assert cove("gov", "deploy", "--name", "hospitals", *members, "--voting-delay", "10",
                    "--voting-period", "100", "--timelock-delay", "10").exit_code == 0  # fmt: skip
        assert cove("chain", "mine", "--seconds", "1").exit_code == 0
        schema = str(write_schema(tmp_path / "registry.schema.json"))
        # The README's free governed dataset.
        published = cove("publish", str(data), "--name", "Registry", "--schema", schema, "--budget", "4",
                         "--per-job-cap", "2", "--free-cap", "5", "--governed-by", "hospitals")  # fmt: skip
        assert published.exit_code == 0, published.stderr

        # A price on a dataset without a payment token: the sentence says which --set to add.
        _one_error(cove("gov", "propose", "--dataset", "1", "--set", "budget=8", "--set", "price=5",
                        "--description", "Raise the budget", "-a", "dev1"),
                   "A priced dataset needs a payment token: add --set token=0x…", token)  # fmt: skip
        _one_error(cove("gov", "propose", "--dataset", "1", "--set", "model_families=transformer",
                        "--description", "x", "-a", "dev1"), "known model families are: mlp")  # fmt: skip
        priced = cove("gov", "propose", "--dataset", "1", "--set", "price=5", "--set", f"token={token}",
                      "--description", "Charge 5 per credit", "-a", "dev1", "--json")  # fmt: skip
        assert priced.exit_code == 0, priced.stderr
        assert priced.json()["number"] == 1 and len(priced.json()["proposal_id"]) > 70
        raised = cove("gov", "propose", "--dataset", "1", "--set", "budget=8", "--description", "Raise the budget", "-a", "dev1")
        assert raised.exit_code == 0, raised.stderr
        assert "proposal #2 created" in raised.stdout and "cove gov vote 2 for" in raised.stdout

        listed = cove("gov", "proposals", "--json").json()
        assert [p["number"] for p in listed] == [1, 2]
        assert [p["description"] for p in listed] == ["Charge 5 per credit", "Raise the budget"]
        full_id = listed[0]["proposal_id"]
        table = cove("gov", "proposals").stdout
        assert re.search(r"┃ #\s+┃ state", table) and re.search(r"│ 2\s+│ pending", table), table
        assert full_id[:12] not in table  # no truncated ids to copy

        assert cove("chain", "mine", "--seconds", "11").exit_code == 0
        voted = cove("gov", "vote", "2", "for", "-a", "dev1", "--json")
        assert voted.exit_code == 0, voted.stderr
        assert voted.json()["number"] == 2 and voted.json()["proposal_id"] == listed[1]["proposal_id"]
        assert cove("gov", "vote", "#2", "against", "-a", "dev2").exit_code == 0
        assert cove("gov", "vote", full_id, "against", "-a", "dev1").exit_code == 0  # the full id works too
        # Control: a number no proposal has, or no number at all, is refused before any transaction.
        _one_error(cove("gov", "vote", "3", "for", "-a", "dev2"), "There is no proposal #3 in hospitals",
                   "#1 to #2", "cove gov proposals")  # fmt: skip
        _one_error(cove("gov", "queue", "0"), "There is no proposal #0")
        _one_error(cove("gov", "execute", "abc"), "'abc' is not a proposal number or id")
        _one_error(cove("gov", "vote", "1" * 77, "for", "-a", "dev2"), f"There is no proposal {'1' * 77}")

        assert cove("chain", "mine", "--seconds", "101").exit_code == 0
        states = {p["number"]: p["state"] for p in cove("gov", "proposals", "--json").json()}
        assert states == {1: "defeated", 2: "succeeded"}
        queued = cove("gov", "queue", "2", "--json")
        assert queued.exit_code == 0, queued.stderr
        assert queued.json() == {"number": 2, "proposal_id": listed[1]["proposal_id"], "state": "queued"}
        assert cove("chain", "mine", "--seconds", "11").exit_code == 0
        executed = cove("gov", "execute", "2")
        assert executed.exit_code == 0, executed.stderr
        assert "proposal #2 executed" in executed.stdout
        policy = cove("policy", "show", "1", "--json").json()
        assert (policy["version"], policy["budget"], policy["price"]) == (2, "8", "0")
    finally:
        cove("chain", "down")
