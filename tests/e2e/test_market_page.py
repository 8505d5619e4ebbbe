"""The market page in a real browser: Debian's Chromium, headless, driven by Playwright.

Four parties on four "machines": a hospital publishes two datasets from its CLI and changes
one's policy; its runner trains a job and serves the owner's endpoint; a data scientist
buys and trains from the SDK; a viewer who knows only the RPC URL and the hub runs
`cove ui` in a process and home of its own. The browser then checks each view's figures
against what the chain says, on the viewer's page and on the owner's endpoint, and saves a
screenshot of each view (under $COVE_TEST_ARTIFACTS, else test-artifacts/, at the root).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from exchange import Cove, Spec
from exchange.chain.anvil import free_loopback_port
from exchange.paths import HomeLayout
from exchange.ui.format import number
from conftest import make_table, write_schema
from parties import RUNNER, Machines, RunnerProcess, cove_cli, machines_on_a_chain

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("COVE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "market-page"


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    yield from machines_on_a_chain(tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's, installed by scripts/setup.sh
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


class UiProcess:
    """`cove ui --port 0 --json` in its own process and home: the URL is its first line."""

    def __init__(self, home: Path, rpc: str, hub: str, timeout: float = 60):
        command = [sys.executable, "-m", "exchange.cli", "ui", "--port", "0", "--json", "--home", str(home),
                   "--rpc", rpc, "--hub", hub]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "cove ui printed nothing"
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        assert line, self.process.stderr.read()  # type: ignore[union-attr]
        self.url = json.loads(line)["url"]

    def stop(self) -> int:
        self.process.send_signal(2)  # Ctrl-C: the server stops cleanly
        return self.process.wait(30)


def shoot(page: Page, name: str, section: str | None = None) -> Path:
    """A screenshot of the whole page, or of one section of it (what the README shows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if section is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.locator(section).screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def test_the_market_page_shows_the_chains_figures_in_a_real_browser(
    machines: Machines, tmp_path: Path, browser: Browser
) -> None:
    rpc = machines.rpc
    hospital = machines.home("hospital")
    hub = cove_cli(hospital, "deploy", rpc=rpc)["cove"]
    premises = tmp_path / "hospital-premises"
    premises.mkdir()
    patients, registry = premises / "patients.csv", premises / "registry.csv"
    make_table(rows=600, seed=7).to_csv(patients, index=False)
    make_table(rows=300, seed=8).to_csv(registry, index=False)
    schema = write_schema(premises / "patients.schema.json")
    key = premises / "commitment.key"
    runner = RunnerProcess(machines.home("runner"), rpc, hub, free_loopback_port(), patients, key)
    ui: UiProcess | None = None
    try:
        scientist = Cove(rpc=rpc, hub=hub, account="dev1", home=machines.home("scientist"))
        runner.wait_until_announced(scientist)
        first = cove_cli(hospital, "publish", str(patients), "--name", "Patients", "--schema", str(schema),
                         "--price", "2", "--budget", "6", "--per-job-cap", "3", "--runner", RUNNER,
                         "--tag", "health", "--tag", "cohort", rpc=rpc, hub=hub)  # fmt: skip
        shutil.copy2(HomeLayout(hospital).commitment_key, key)
        second = cove_cli(hospital, "publish", str(registry), "--name", "Registry", "--schema", str(schema),
                          "--budget", "2", "--per-job-cap", "1", "--free-cap", "3", "--runner", RUNNER,
                          "--tag", "registry", rpc=rpc, hub=hub)  # fmt: skip
        patients_id, registry_id = first["dataset_id"], second["dataset_id"]
        cove_cli(hospital, "policy", "set", str(patients_id), "--budget", "8", rpc=rpc, hub=hub)

        dataset = scientist.dataset(patients_id)
        scientist.faucet(100)
        dataset.buy(1)
        spec = Spec.mlp(["age", "bmi", "smoker"], "diagnosis", hidden=(8,), epsilon=1.0, epochs=2,
                        batch_size=100, dataset=dataset)  # fmt: skip
        job = dataset.train(spec).wait(timeout=300, progress=False)
        assert job.status == "completed"
        spent = dataset.refresh().epsilon_spent  # the chain's ledger, read by the SDK

        ui = UiProcess(machines.home("viewer"), rpc, hub)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        # The listing, its search and its tags.
        page.goto(ui.url + "/")
        assert page.locator("html").get_attribute("lang") == "en" and page.locator("h1").count() == 1
        assert texts(page, "#datasets tbody tr td:nth-child(2)") == ["Patients", "Registry"]
        assert page.inner_text("#result-count") == "2 of 2 datasets."
        assert "served by cove ui on this machine" in page.inner_text("header")
        shoot(page, "datasets")
        page.fill("#q", "regis")
        page.click("form.search button")
        assert texts(page, "#datasets tbody tr td:nth-child(2)") == ["Registry"]
        page.goto(ui.url + "/")
        page.click("nav.tags a.tag:has-text('health')")
        assert texts(page, "#datasets tbody tr td:nth-child(2)") == ["Patients"]
        assert "tagged health" in page.inner_text("#result-count")
        page.goto(ui.url + "/?q=no-such-thing")
        assert "No dataset matches" in page.inner_text("main")

        # A dataset: facts, policy as it now stands, schema, mock, ledger, history, jobs.
        page.goto(f"{ui.url}/datasets/{patients_id}")
        assert page.inner_text("h1") == f"#{patients_id} Patients"
        assert page.inner_text("[data-field=rows]") == str(first["rows"])
        assert page.inner_text("[data-field=budget]") == "ε 8" and page.inner_text("[data-field=delta]") == "1e-5"
        assert page.inner_text("[data-field=price]") == "2 tUSD"
        assert texts(page, "#schema-table tbody td:first-child") == ["age", "bmi", "smoker", "diagnosis"]
        assert page.locator("#mock-table tbody tr").count() == 10
        assert page.inner_text("[data-field=spent]") == number(spent)
        assert page.inner_text("[data-field=remaining]") == number(8 - spent)
        charges = page.locator("svg.ledger-chart circle.charge")
        assert charges.count() == 2  # the row count's release, then the job
        assert float(charges.nth(1).get_attribute("data-epsilon") or "nan") == pytest.approx(spent, abs=1e-6)
        assert float(page.locator("svg.ledger-chart line.budget").get_attribute("data-epsilon") or "nan") == 8
        assert texts(page, "#history-table tbody td:first-child") == ["1", "2 (current)"]
        assert texts(page, "#history-table tbody td:nth-child(4)") == ["6", "8"]
        assert texts(page, "section[aria-labelledby=jobs] tbody tr td:nth-child(3)") == ["completed"]
        shoot(page, "dataset")
        shoot(page, "dataset-ledger", "section[aria-labelledby=ledger]")

        # The job: what it charged and its provenance, every public check passed, labelled.
        page.click(f"a[href='/jobs/{job.id}'] >> nth=0")
        assert page.inner_text("#job-status") == "completed"
        assert page.inner_text("[data-field=epsilon]") == number(job.epsilon)
        checks = page.locator("#checks-table tbody tr.passed")
        names = texts(page, "#checks-table tbody tr.passed td:first-child")
        assert {"signature", "record_hash", "spec_hash", "ledger_epsilon", "ledger_curve", "dataset_commitment"} <= set(names)
        assert page.locator("#checks-table tbody tr.failed").count() == 0 and checks.count() == len(names)
        assert set(texts(page, "#checks-table tbody tr.passed td:nth-child(4)")) == {"cove ui (this machine)"}
        assert page.inner_text("#verdict") == f"All {len(names)} public checks passed."
        assert "buyer only" in page.inner_text("tr[data-check=weights_hash]")
        shoot(page, "job")
        shoot(page, "job-checks", "section[aria-labelledby=provenance]")
        page.goto(ui.url + "/jobs")
        assert texts(page, "table.jobs tbody tr td:first-child") == [f"#{job.id}"]

        # What is not there is one sentence, with a 404.
        missing = page.goto(f"{ui.url}/datasets/{registry_id + 5}")
        assert missing is not None and missing.status == 404
        assert page.inner_text("#error-message") == f"There is no dataset #{registry_id + 5} on this hub."

        # The owner's endpoint serves the same page to a browser, its checks labelled as its own;
        # a script asking "/" still gets what the node is, as JSON.
        page.goto(runner.url + "/")
        assert texts(page, "#datasets tbody tr td:nth-child(2)") == ["Patients", "Registry"]
        assert "served by the dataset owner's endpoint" in page.inner_text("header")
        shoot(page, "endpoint-datasets")
        page.goto(f"{runner.url}/jobs/{job.id}")
        assert set(texts(page, "#checks-table tbody tr.passed td:nth-child(4)")) == {"the owner's endpoint"}
        assert f"cove verify {job.id}" in page.inner_text("#checked-by")
        about = requests.get(runner.url + "/", timeout=10).json()
        assert about["service"] == "cove-node" and about["runner"] == RUNNER
        page.close()
        scientist.close()
    finally:
        if ui is not None:
            assert ui.stop() == 0  # Ctrl-C stops the page cleanly
        runner.stop()
    # The viewer needed no key: its home holds none.
    keystores = HomeLayout(machines.home("viewer")).keystores
    assert not keystores.exists() or not any(keystores.iterdir())
