"""Shared fixtures: a real anvil chain per test, a Cove home directory, the CLI in-process."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from exchange.accounts import dev_account
from exchange.chain.anvil import ChainInfo, LocalChain
from exchange.chain.deployment import Deployment, deploy
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.paths import HomeLayout


@pytest.fixture
def cove_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cove-home"
    monkeypatch.setenv("COVE_HOME", str(home))
    for variable in ("COVE_RPC_URL", "COVE_ACCOUNT", "COVE_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def chain(cove_home: Path) -> Iterator[ChainInfo]:
    """A fresh anvil on a free loopback port, stopped after the test."""
    local = LocalChain(HomeLayout(cove_home).chain)
    info, _ = local.up()
    yield info
    local.down()


@pytest.fixture
def deployment(chain: ChainInfo, cove_home: Path) -> Deployment:
    session = ChainSession(connect(chain.rpc_url), dev_account(0))
    return deploy(HomeLayout(cove_home).deployments, session)


@pytest.fixture
def client_for(chain: ChainInfo, deployment: Deployment, cove_home: Path):  # type: ignore[no-untyped-def]
    """`client_for(i)`: a CoveClient signing as dev account i."""
    return lambda index: CoveClient.open(chain.rpc_url, dev_account(index), cove_home)


def make_table(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 80, rows),
            "bmi": rng.normal(25, 4, rows).round(2),
            "smoker": rng.integers(0, 2, rows).astype(bool),
            "diagnosis": rng.choice(["benign", "malignant"], rows),
        }
    )


# The declared public schema of `make_table`'s columns: plausible clinical ranges chosen
# without looking at the rows, as an owner declares them.
PATIENTS_SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", kind="integer", nullable=False, minimum=18, maximum=100),
        ColumnSchema(name="bmi", kind="float", nullable=False, minimum=10.0, maximum=60.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=False),
        ColumnSchema(name="diagnosis", kind="categorical", nullable=False, categories=["benign", "malignant"]),
    ]
)


def write_schema(path: Path, schema: DatasetSchema = PATIENTS_SCHEMA) -> Path:
    path.write_text(schema.model_dump_json(exclude_none=True, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def dataset_csv(tmp_path: Path) -> Path:
    path = tmp_path / "patients.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture
def schema_json(tmp_path: Path) -> Path:
    """PATIENTS_SCHEMA as a file, for `cove publish --schema`."""
    return write_schema(tmp_path / "patients.schema.json")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cove(*args: str) -> CliResult:
    """Runs the `cove` entry point in this process, as a shell would."""
    from exchange.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["cove", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cove(cove_home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI, with a wide terminal so Rich does not wrap sentences."""
    monkeypatch.setenv("COLUMNS", "250")
    return run_cove
