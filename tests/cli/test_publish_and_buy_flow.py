"""The whole owner→buyer flow through the CLI against a real anvil."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.accounts import dev_account

pytestmark = pytest.mark.chain


def test_publish_list_show_buy_balance(cove, dataset_csv: Path, schema_json: Path) -> None:  # type: ignore[no-untyped-def]
    assert cove("chain", "up").exit_code == 0
    try:
        deployed = cove("deploy", "--json")
        assert deployed.exit_code == 0, deployed.stderr
        token = deployed.json()["payment_token"]

        published = cove(
            "publish", str(dataset_csv), "--name", "Patients", "--schema", str(schema_json), "--description", "synthetic cohort",
            "--tag", "health", "--price", "2.5", "--budget", "8", "--per-job-cap", "2", "--json",
        )  # fmt: skip
        assert published.exit_code == 0, published.stderr
        dataset_id = published.json()["dataset_id"]
        assert dataset_id == 1

        listing = cove("datasets", "--json")
        assert listing.exit_code == 0, listing.stderr
        [row] = listing.json()
        assert (row["id"], row["name"], row["price"], row["currency"]) == (1, "Patients", 2.5, "tUSD")
        # The public row count is the true 120 plus discrete Gaussian noise of σ 20.
        assert row["rows"] == published.json()["rows"] and abs(row["rows"] - 120) <= 6 * 20

        shown = cove("dataset", "show", "1", "--json").json()
        assert shown["owner"] == dev_account(0).address
        assert shown["metadata"]["privacy_unit"] == "row"
        assert shown["metadata"]["row_count"] == {"mechanism": "discrete-gaussian", "sensitivity": 1, "sigma": 20.0}
        assert shown["metadata"]["schema_origin"] == "declared"
        mock = shown["metadata"]["mock"]
        assert len(mock) == 20 and set(mock[0]) == {"age", "bmi", "smoker", "diagnosis"}

        table = cove("dataset", "show", "1")
        assert "Mock sample" in table.stdout and "Schema" in table.stdout and "diagnosis" in table.stdout

        policy = cove("policy", "show", "1", "--json").json()
        assert (policy["version"], policy["price"], policy["budget"], policy["per_job_cap"]) == (1, "2.5", "8", "2")
        assert policy["payment_token"] == token

        buyer = ("--account", "dev1")
        assert cove("faucet", "100", *buyer).exit_code == 0
        bought = cove("buy", "1", "--credits", "2", *buyer, "--json")
        assert bought.exit_code == 0, bought.stderr
        assert bought.json()["cost"] == "5"

        balance = cove("balance", *buyer, "--json").json()
        assert balance["payment_balance"] == "95"
        assert balance["credits"] == [{"dataset_id": 1, "credits": "2"}]
        owner_balance = cove("balance", dev_account(0).address, "--json").json()
        assert owner_balance["payment_balance"] == "5"
    finally:
        assert cove("chain", "down").exit_code == 0


def test_chain_state_survives_down_and_up(cove, dataset_csv: Path, schema_json: Path) -> None:  # type: ignore[no-untyped-def]
    cove("chain", "up")
    try:
        assert cove("deploy").exit_code == 0
        assert cove("publish", str(dataset_csv), "--name", "P", "--schema", str(schema_json), "--budget", "1",
                    "--per-job-cap", "1", "--free-cap", "3").exit_code == 0  # fmt: skip
    finally:
        cove("chain", "down")
    cove("chain", "up")
    try:
        listing = cove("datasets", "--json")
        assert listing.exit_code == 0, listing.stderr
        assert [d["name"] for d in listing.json()] == ["P"]
        assert cove("chain", "status", "--json").json()["cove"] is not None
    finally:
        cove("chain", "down")
