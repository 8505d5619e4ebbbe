"""What starting `cove` imports: no command that does not train loads torch, Opacus, scipy or
pandas (seconds of CPU each), `--help` loads not even web3 or an HTTP client, and a chain
command loads nothing past web3's own imports. These assert module names, not times: the
start-up figures are in benchmarks/client.py's report, not a timed test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from exchange.cli import dataset_cmd
from exchange.datasets.dp_count import DEFAULT_COUNT_NOISE
from exchange.ml.accounting import ORDERS, load_opacus_rdp_file, rdp_curve

TRAINING = {"torch", "opacus", "scipy", "pandas", "numpy", "dp_accounting", "pyarrow"}
CHAIN = {"web3", "eth_account", "py_ecc", "aiohttp"}
# urllib.request brings http.client, ssl and email: a tenth of `cove --help`; only probing a chain needs it.
HTTP = {"urllib.request", "http.client", "ssl"}

# Runs `cove ARGS` in a fresh interpreter and prints the top-level packages it imported.
_RUN = """
import json, sys
from exchange.cli.app import main
sys.argv = ["cove", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def modules_of(*args: str) -> set[str]:
    """Every module `cove ARGS` imported, by full name."""
    done = subprocess.run([sys.executable, "-c", _RUN, json.dumps(list(args))],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("MODULES "), done.stdout[-500:] + done.stderr[-2000:]
    return set(json.loads(line.removeprefix("MODULES ")))


def imported_by(*args: str) -> set[str]:
    """The top-level packages `cove ARGS` imported."""
    return {name.split(".")[0] for name in modules_of(*args)}


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{n.split('.')[0] for n in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["datasets", "--help"], ["jobs", "--help"], ["train", "--help"], ["fetch", "--help"],
        ["verify", "--help"], ["buy", "--help"], ["balance", "--help"], ["publish", "--help"],
        ["dataset", "show", "--help"], ["policy", "set", "--help"], ["gov", "propose", "--help"],
        ["schema", "draft", "--help"], ["account", "list", "--help"], ["network", "add", "--help"],
        ["chain", "status", "--help"], ["version"],
    ],
)  # fmt: skip
def test_help_imports_neither_training_nor_chain_libraries(args: list[str]) -> None:
    loaded = imported_by(*args)
    assert "typer" in loaded  # the probe ran the command
    assert loaded & (TRAINING | CHAIN) == set()


@pytest.mark.parametrize("args", [["--help"], ["schema", "draft", "--help"]])
def test_help_imports_no_http_client(args: list[str]) -> None:
    loaded = modules_of(*args)
    assert "typer" in loaded
    assert loaded & HTTP == set()


def test_chain_commands_import_nothing_past_web3() -> None:
    """py_ecc (0.6 s of BLS curve set-up) and aiohttp come with web3 itself: its package
    imports eth_account, whose keyfile module imports py_ecc.bls, and web3.utils aiohttp.
    Cove's chain modules add nothing to them but their own code and the standard library."""
    chain = imported_after("import exchange.cli.app, exchange.client, exchange.catalog, exchange.market, exchange.jobs")
    web3_and_cli = imported_after("import web3, exchange.cli.app")
    assert chain - web3_and_cli - set(sys.stdlib_module_names) == set()


def test_the_command_list_names_every_command_without_loading_them() -> None:
    done = subprocess.run([sys.executable, "-m", "exchange.cli", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0
    for command in ("datasets", "jobs", "train", "fetch", "publish", "buy", "gov", "runner"):
        assert command in done.stdout


def test_the_listing_and_job_modules_import_no_training_library() -> None:
    loaded = imported_after("import exchange.catalog, exchange.jobs, exchange.index, exchange.client, exchange.market")
    assert "web3" in loaded  # they talk to the chain
    assert loaded & TRAINING == set()


def test_pricing_a_curve_loads_opacus_analysis_without_torch() -> None:
    loaded = imported_after("from exchange.ml.accounting import rdp_curve\nrdp_curve(1.1, 0.01, 100)")
    assert "scipy" in loaded  # Opacus' analysis needs scipy.special, and it did run
    assert {"torch", "opacus"} & loaded == set()


@pytest.mark.parametrize(("noise", "q", "steps"), [(0.5, 0.3, 7), (1.1, 0.01, 1000), (4.0, 1.0, 1), (0.8, 0.004, 25_000)])
def test_the_file_loaded_analysis_is_opacus_own_bit_for_bit(noise: float, q: float, steps: int) -> None:
    from opacus.accountants.analysis.rdp import compute_rdp

    standalone = load_opacus_rdp_file()
    assert standalone is not compute_rdp  # a separate load of the file, not the imported module
    mine = tuple(float(v) for v in standalone(q=q, noise_multiplier=noise, steps=steps, orders=list(ORDERS)))
    theirs = tuple(float(v) for v in compute_rdp(q=q, noise_multiplier=noise, steps=steps, orders=list(ORDERS)))
    assert mine == theirs == rdp_curve(noise, q, steps)  # exact: runners compare curve hashes


def test_publish_default_noise_is_the_datasets_default() -> None:
    assert dataset_cmd.DEFAULT_COUNT_NOISE == DEFAULT_COUNT_NOISE


def test_publish_names_resolve_to_the_real_functions() -> None:
    from exchange.datasets import DatasetSchema
    from exchange.publish import publish_dataset

    assert dataset_cmd.publish_dataset.resolve() is publish_dataset
    assert dataset_cmd.DatasetSchema.load == DatasetSchema.load
