"""The committed contract artifacts must match the Solidity sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from exchange.chain.artifacts import ARTIFACTS_DIR, error_specs, load_artifact
from exchange.paths import PROJECT_ROOT

MANIFEST = json.loads((ARTIFACTS_DIR / "manifest.json").read_text())


def test_manifest_lists_every_contract_source() -> None:
    ours = {str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "contracts" / "src").rglob("*.sol")}
    listed = {path for path in MANIFEST["sources"] if path.startswith("contracts/")}
    assert listed == ours, "contracts changed: run `npm run compile` and commit exchange/artifacts"


@pytest.mark.parametrize("path", sorted(MANIFEST["sources"]))
def test_source_hashes_match(path: str) -> None:
    file = PROJECT_ROOT / path if path.startswith("contracts/") else PROJECT_ROOT / "node_modules" / path
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert digest == MANIFEST["sources"][path], f"{path} changed: run `npm run compile` and commit exchange/artifacts"


@pytest.mark.node
def test_fresh_compile_reproduces_artifacts() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is required (the test command installs the npm packages)")
    result = subprocess.run(
        ["node", "contracts/scripts/compile.mjs", "--check"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_artifacts_have_bytecode_and_errors() -> None:
    for name in ("Cove", "Datatoken", "TestPaymentToken"):
        artifact = load_artifact(name)
        assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 1000
    names = {spec.name for spec in error_specs().values()}
    assert {"CommitmentAlreadyPublished", "NotAllowlisted", "ERC20InsufficientBalance"} <= names
