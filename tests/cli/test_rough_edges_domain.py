"""Rough edges a new user met (issue 12): each refusal says what is wrong in the user's terms,
and the case it must still accept passes."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import PATIENTS_SCHEMA, CliResult, make_table, write_schema
from exchange.datasets.commitment import CommitmentKey
from exchange.datasets.metadata import MAX_METADATA_BYTES, check_metadata_size, prepare_metadata
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import InputError, PolicyError, PrivacyError
from exchange.jobs import check_job_cap, epsilon_text
from exchange.ml.spec import ModelSpec
from exchange.policy import PolicyTerms, parse_terms

KEY = CommitmentKey(b"\x07" * 32)
NOISE_MICRO = 20_000_000

SPEC: dict[str, Any] = {
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 64,
    "epochs": 2, "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


def one_sentence(result: CliResult, *fragments: str, code: int | None = 2) -> str:
    """A refusal: exit `code` (None: any failure), one "Error: ..." line on stderr, no traceback,
    naming every fragment."""
    assert result.exit_code != 0 and code in (None, result.exit_code), (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def home_files(home: Path) -> dict[str, str]:
    """Every file Cove keeps but the anvil state and the event cache, with its hash."""
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file() and path.relative_to(home).parts[0] not in ("chain", "index")
    }


@pytest.fixture
def cove(cove, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "2000")  # no error sentence wrapped
    return cove


# --------------------------------------------------------------------------------------
# 1. too many columns for the metadata document


def wide_table(tmp_path: Path, columns: int, rows: int = 30) -> tuple[Path, DatasetSchema]:
    names = [f"feature_{i:04d}" for i in range(columns)]
    path = tmp_path / f"wide-{columns}.csv"
    pd.DataFrame(np.random.default_rng(0).uniform(-1, 1, (rows, columns)).round(3), columns=names).to_csv(path, index=False)
    schema = DatasetSchema(columns=[ColumnSchema(name=n, kind="float", nullable=False, minimum=-1, maximum=1) for n in names])
    return path, schema


def test_too_many_columns_names_the_columns_and_the_limit(tmp_path: Path) -> None:
    path, schema = wide_table(tmp_path, 5000)
    with pytest.raises(InputError) as refused:
        prepare_metadata(path, "Wide", schema, KEY, NOISE_MICRO)
    message = str(refused.value)
    assert message.startswith("The dataset has 5,000 columns;") and "metadata document" not in message
    assert f"above the {MAX_METADATA_BYTES:,}-byte limit for a dataset's metadata" in message
    assert "publish fewer columns" in message and "shorten it" not in message
    fit = int(re.search(r"about ([\d,]+) columns like these fit", message).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 100 < fit < 5000
    # The estimate holds: that many such columns fit, a tenth more do not.
    path, schema = wide_table(tmp_path, fit)
    fitting, _ = prepare_metadata(path, "Wide", schema, KEY, NOISE_MICRO)
    check_metadata_size(fitting)
    assert len(fitting.to_json_bytes()) <= MAX_METADATA_BYTES
    path, schema = wide_table(tmp_path, fit * 11 // 10)
    with pytest.raises(InputError, match="columns like these fit"):
        prepare_metadata(path, "Wide", schema, KEY, NOISE_MICRO)


def test_a_long_description_is_named_as_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    make_table().to_csv(path, index=False)
    with pytest.raises(InputError) as refused:
        prepare_metadata(path, "Patients", PATIENTS_SCHEMA, KEY, NOISE_MICRO, description="x" * 300_000)
    message = str(refused.value)
    assert "description, name, license and tags take 300,0" in message and "shorten the description" in message
    assert "columns" not in message
    # Control: a description that fits is published as given.
    metadata, _ = prepare_metadata(path, "Patients", PATIENTS_SCHEMA, KEY, NOISE_MICRO, description="x" * 100_000)
    assert len(metadata.description) == 100_000


@pytest.mark.chain
def test_publishing_too_many_columns_leaves_nothing_behind(cove, client_for, cove_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, schema = wide_table(tmp_path, 5000)
    schema_file = write_schema(tmp_path / "wide.schema.json", schema)
    before = home_files(cove_home)
    refused = cove("publish", str(path), "--name", "Wide", "--schema", str(schema_file), "--budget", "2",
                   "--per-job-cap", "1", "--free-cap", "3")  # fmt: skip
    one_sentence(refused, "The dataset has 5,000 columns", "262,144-byte limit", "publish fewer columns")
    assert int(client_for(0).cove.functions.datasetCount().call()) == 0
    assert home_files(cove_home) == before  # no commitment key, no stored document, no owned record
    assert cove("datasets", "--json").json() == []


# --------------------------------------------------------------------------------------
# 2. model families the runner cannot train


def test_unknown_model_families_are_refused_when_written() -> None:
    base = {"budget": "2", "per_job_cap": "1", "free_cap": 3}
    with pytest.raises(PolicyError) as refused:
        parse_terms(**base, model_families=["mlp", "Transformer"])
    assert str(refused.value) == (
        "The runner cannot train the model family 'transformer'; the known model families are: mlp."
    )
    assert parse_terms(**base, model_families=[" MLP "]).model_families == ("mlp",)
    # Read back from the chain, an older policy's unknown names still decode.
    struct = parse_terms(**base).to_onchain(18)
    read = PolicyTerms.from_onchain(struct, 18, {"allowlist": [], "model_families": ["transformer"]})
    assert read.model_families == ("transformer",)


def publish_patients(cove, tmp_path: Path, *extra: str) -> CliResult:  # type: ignore[no-untyped-def]
    data = tmp_path / "patients.csv"
    if not data.exists():
        make_table(rows=400).to_csv(data, index=False)
    schema = write_schema(tmp_path / "patients.schema.json")
    return cove("publish", str(data), "--name", "Patients", "--schema", str(schema), "--budget", "6",
                "--per-job-cap", "4", "--free-cap", "3", *extra)  # fmt: skip


@pytest.mark.chain
def test_model_families_at_publish_and_policy_change(cove, client_for, cove_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from exchange.catalog import policy_of
    from exchange.policy_update import set_policy

    before = home_files(cove_home)
    one_sentence(publish_patients(cove, tmp_path, "--model-family", "transformer"),
                 "cannot train the model family 'transformer'", "known model families are: mlp")  # fmt: skip
    assert int(client_for(0).cove.functions.datasetCount().call()) == 0 and home_files(cove_home) == before
    published = publish_patients(cove, tmp_path, "--model-family", "mlp", "--json")
    assert published.exit_code == 0, published.stderr

    one_sentence(cove("policy", "set", "1", "--model-family", "transformer"), "known model families are: mlp")
    assert cove("policy", "show", "1", "--json").json()["version"] == 1

    # A policy some other tool wrote with an unknown family: reading it works...
    client = client_for(0)
    current, _, _ = policy_of(client, 1)
    set_policy(client, 1, PolicyTerms.model_construct(**(current.model_dump() | {"model_families": ("transformer",)})))
    shown = cove("policy", "show", "1", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["model_families"] == ["transformer"] and shown.json()["version"] == 2
    assert cove("dataset", "show", "1").exit_code == 0
    # ...writing it again does not, until the families are ones the runner trains.
    one_sentence(cove("policy", "set", "1", "--budget", "5"), "'transformer'", "known model families are: mlp")
    fixed = cove("policy", "set", "1", "--budget", "5", "--model-family", "mlp", "--json")
    assert fixed.exit_code == 0, fixed.stderr
    assert fixed.json()["model_families"] == ["mlp"] and fixed.json()["version"] == 3


# --------------------------------------------------------------------------------------
# 3. the per-job cap's advice fits the spec


def spec(**dp: Any) -> ModelSpec:
    return ModelSpec.parse({**SPEC, "dp": {"delta": 1e-5, "max_grad_norm": 1.0, **dp}})


def test_the_cap_advice_fits_a_spec_with_a_target_epsilon() -> None:
    with pytest.raises(PrivacyError) as refused:
        check_job_cap(spec(target_epsilon=5), 4_999_992, Decimal(4))
    assert str(refused.value) == (
        "This job would spend ε 5, above the per-job cap of ε 4; lower target_epsilon to at most 4."
    )
    with pytest.raises(PrivacyError, match=r"ε 4\.5, above the per-job cap of ε 2\.5; lower target_epsilon to at most 2\.5\.$"):
        check_job_cap(spec(target_epsilon=4.5), 4_499_998, Decimal("2.50"))
    # A target at the cap that the fixed-point accounting lands just above.
    with pytest.raises(PrivacyError, match="lower target_epsilon a little below 4"):
        check_job_cap(spec(target_epsilon=4), 4_000_001, Decimal(4))
    check_job_cap(spec(target_epsilon=4), 4_000_000, Decimal(4))  # at the cap: accepted


def test_the_cap_advice_fits_a_spec_with_a_noise_multiplier() -> None:
    with pytest.raises(PrivacyError) as refused:
        check_job_cap(spec(noise_multiplier=0.5), 7_123_456, Decimal(4))
    assert str(refused.value) == (
        "This job would spend ε 7.123456, above the per-job cap of ε 4; raise noise_multiplier, "
        "train fewer epochs or use a smaller expected_batch_size."
    )
    assert "target_epsilon" not in str(refused.value)
    check_job_cap(spec(noise_multiplier=0.5), 3_999_999, Decimal(4))


@pytest.mark.parametrize(
    ("epsilon", "written", "shown"),
    [
        ("4.999992", 5.0, "5"),  # rounding is the only difference: as the user wrote it
        ("5.000001", 5.0, "5"),
        ("2.499998", 2.5, "2.5"),
        ("4.9", 5.0, "4.9"),  # a real difference: exact
        ("4.999992", None, "4.999992"),
        ("3.000000", None, "3"),
    ],
)
def test_epsilon_is_shown_as_written_when_only_rounding_differs(epsilon: str, written: float | None, shown: str) -> None:
    assert epsilon_text(Decimal(epsilon), written) == shown


@pytest.mark.chain
def test_train_above_the_cap_tells_which_target_fits(cove, deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert publish_patients(cove, tmp_path).exit_code == 0  # per-job cap ε 4
    greedy = tmp_path / "greedy.json"
    greedy.write_text(json.dumps({**SPEC, "dp": {**SPEC["dp"], "target_epsilon": 5}}))
    refused = cove("train", "--dataset", "1", "--spec", str(greedy), "-a", "dev1")
    one_sentence(refused, "would spend ε 5, above the per-job cap of ε 4; lower target_epsilon to at most 4", code=None)
    # Control: the advice is right, a target of 4 is accepted.
    assert cove("buy", "1", "-a", "dev1").exit_code == 0
    fitting = tmp_path / "fitting.json"
    fitting.write_text(json.dumps({**SPEC, "dp": {**SPEC["dp"], "target_epsilon": 4}}))
    accepted = cove("train", "--dataset", "1", "--spec", str(fitting), "-a", "dev1", "--json")
    assert accepted.exit_code == 0, accepted.stderr
    assert accepted.json()["epsilon"] <= 4


# --------------------------------------------------------------------------------------
# 4. a price without a payment token (the general path; the governance path is in
#    tests/cli/test_governance_flow.py)


def test_a_price_without_a_token_says_to_give_one() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_terms(price="5", budget="2", per_job_cap="1")
    assert str(refused.value).startswith("A priced dataset needs a payment token: give the address of the ERC-20")
    assert parse_terms(price="5", payment_token="0x" + "11" * 20, budget="2", per_job_cap="1").price == 5


# --------------------------------------------------------------------------------------
# 8. the SDK's HTML view of a dataset names it once


class _OfflineDataset:
    """A `Dataset` whose chain reads are stubbed: its display only."""

    @staticmethod
    def make(name: str | None) -> Any:
        from exchange.sdk.dataset import Dataset, Policy

        class Offline(Dataset):
            policy = Policy(PolicyTerms(budget=Decimal(8), per_job_cap=Decimal(2), free_cap=3), 1, "free", 1)  # type: ignore[assignment]
            epsilon_spent = 0.5  # type: ignore[assignment]
            credits = 2  # type: ignore[assignment]

        metadata = None
        if name is not None:
            metadata = SimpleNamespace(name=name, description="synthetic cohort", schema_=PATIENTS_SCHEMA)
        dataset = Offline.__new__(Offline)
        dataset.id = 1
        dataset._view = SimpleNamespace(metadata=metadata, rows=120, owner="0x" + "ab" * 20)  # type: ignore[assignment]
        return dataset


@pytest.mark.parametrize("name", ["Patients", None])
def test_the_dataset_view_names_the_dataset_once(name: str | None) -> None:
    markup = _OfflineDataset.make(name)._repr_html_()
    text = re.sub(r"<[^>]+>", " ", markup)
    assert len(re.findall(r"(?i)dataset #1", text)) == 1, text
    title = "Dataset #1 Patients" if name else "Dataset #1"
    assert f">{title}</caption>" in markup
    if name:
        assert text.count("Patients") == 1
    assert "synthetic cohort" in text or name is None
