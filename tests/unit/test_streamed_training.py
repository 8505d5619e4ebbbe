"""The sandbox's job reads the file once, in chunks, into the commitment and the encoder: the
same digest as committing the loaded table, the same tensors as encoding it, the same errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from compute_to_data import job_training, training
from compute_to_data.job_training import TrainingOrder, TrainingOutput, train_job
from exchange.datasets import CommitmentKey, commit, load_table, stream_table
from exchange.datasets.commitment import Committer
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.datasets.stream import Chunking, Tee
from exchange.errors import DatasetError, TrainingError
from exchange.ml import streamed
from exchange.ml.accounting import DpParams
from exchange.ml.spec import ModelSpec
from exchange.ml.streamed import EncodedTable, TableEncoder

KEY = CommitmentKey(bytes(range(32)))
ROWS = 400
SMALL = Chunking(csv_bytes=2048, parquet_rows=37)  # many chunks, and a CSV kind change
SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", kind="integer", nullable=True, minimum=18, maximum=90),
        ColumnSchema(name="dose", kind="float", nullable=True, minimum=0.0, maximum=10.0),
        ColumnSchema(name="smoker", kind="boolean", nullable=True, fill=True),
        ColumnSchema(name="seen", kind="datetime", nullable=True, minimum="2020-01-01T00:00:00Z",
                     maximum="2024-01-01T00:00:00Z"),
        ColumnSchema(name="site", kind="categorical", nullable=True, categories=["north", "south"]),
        ColumnSchema(name="score", kind="float", nullable=True, minimum=-1.0, maximum=1.0, fill=0.5),
        ColumnSchema(name="label", kind="categorical", nullable=True, categories=["no", "yes"], fallback="yes"),
    ]
)  # fmt: skip
FEATURES = ["age", "dose", "smoker", "seen", "site"]


def awkward_table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Missing cells everywhere, values outside the declared ranges, undeclared labels, and a
    `dose` column of whole numbers until its last rows (a CSV reader must start over)."""
    rng = np.random.default_rng(seed)
    missing = lambda: rng.random(rows) < 0.1
    age = pd.array(rng.integers(0, 120, rows), dtype="Int64")
    age[missing()] = pd.NA
    dose = rng.integers(-5, 15, rows).astype(float)
    dose[-3:] = [2.5, 11.25, -0.5]
    dose[missing()] = np.nan
    smoker = pd.array(rng.random(rows) < 0.5, dtype="boolean")
    smoker[missing()] = pd.NA
    seen = pd.Series(pd.Timestamp("2019-06-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 6 * 365, rows), "D"))
    seen[missing()] = pd.NaT
    site = pd.array(rng.choice(["north", "south", "east"], rows), dtype="string")
    site[missing()] = pd.NA
    score = np.round(rng.normal(0, 1, rows), 3)
    score[missing()] = np.nan
    label = pd.array(rng.choice(["no", "yes", "maybe"], rows), dtype="string")
    label[missing()] = pd.NA
    return pd.DataFrame({"age": age, "dose": dose, "smoker": smoker, "seen": seen, "site": site,
                         "score": score, "label": label})  # fmt: skip


def spec_for(target: str, **changes: Any) -> ModelSpec:
    task = "regression" if target == "score" else "classification"
    loss = {"score": "mse", "smoker": "bce", "label": "cross_entropy"}[target]
    out = 1 if loss != "cross_entropy" else 2
    features = [f for f in FEATURES if f != target] + (["score"] if target != "score" else [])
    data: dict[str, Any] = {
        "task": task, "features": features, "target": target,
        "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}, {"type": "Linear", "out_features": out}],
        "loss": loss, "optimizer": "sgd", "learning_rate": 0.1, "expected_batch_size": 32, "epochs": 1,
        "dp": {"noise_multiplier": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }  # fmt: skip
    return ModelSpec.parse(data | changes)


@pytest.fixture(params=["csv", "parquet"])
def data_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    table = awkward_table()
    if request.param == "csv":
        path = tmp_path / "data.csv"
        whole = table["dose"].map(lambda v: "" if np.isnan(v) else f"{int(v)}" if v.is_integer() else repr(v))
        table.assign(dose=whole).to_csv(path, index=False)
    else:
        path = tmp_path / "data.parquet"
        table.to_parquet(path, index=False)
    return path


def streamed_read(path: Path, spec: ModelSpec, expected_rows: int = ROWS) -> tuple[str, EncodedTable]:
    committer = Committer(KEY)
    encoder = TableEncoder(spec, SCHEMA, expected_rows=expected_rows)
    layout = stream_table(path, Tee(committer, encoder), chunking=SMALL)
    return committer.commitment().digest, encoder.table(layout)


@pytest.mark.parametrize("target", ["label", "score", "smoker"])
def test_one_pass_gives_the_loaded_tables_commitment_and_encoding(data_file: Path, target: str) -> None:
    spec = spec_for(target)
    frame = load_table(data_file)
    digest, table = streamed_read(data_file, spec)
    assert digest == commit(frame, KEY).digest
    features, targets = table.tensors()
    expected_features, expected_targets = training._encode(spec, SCHEMA, frame)
    assert features.dtype == torch.float32 and features.shape == expected_features.shape
    assert torch.equal(features, expected_features)
    assert targets.dtype == expected_targets.dtype and torch.equal(targets, expected_targets)
    assert table.names == list(frame.columns)
    assert table.kinds_frame().dtypes.tolist() == frame.dtypes.tolist()


def test_a_low_public_count_grows_the_arrays(data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamed, "_SLACK_ROWS", 0)
    spec = spec_for("label")
    _, table = streamed_read(data_file, spec, expected_rows=10)
    features, targets = table.tensors()
    expected_features, expected_targets = training._encode(spec, SCHEMA, load_table(data_file))
    assert torch.equal(features, expected_features) and torch.equal(targets, expected_targets)


def test_kinds_that_are_not_the_declared_ones_are_not_encoded(data_file: Path) -> None:
    declared = SCHEMA.model_copy(update={"columns": [
        c if c.name != "age" else ColumnSchema(name="age", kind="categorical", nullable=True, categories=["1"])
        for c in SCHEMA.columns
    ]})  # fmt: skip
    encoder = TableEncoder(spec_for("label"), declared, expected_rows=ROWS)
    table = encoder.table(stream_table(data_file, encoder))
    assert table.features is None
    with pytest.raises(TrainingError, match="checking the table against the declared schema"):
        training.train(spec_for("label"), table, declared, "cpu", public_rows=ROWS, seed=0)


def test_a_failed_encoding_is_reported_at_its_stage_with_no_cause(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("a private value")

    monkeypatch.setattr(streamed, "encode_features", broken)
    encoder = TableEncoder(spec_for("label"), SCHEMA, expected_rows=ROWS)
    table = encoder.table(stream_table(data_file, encoder))
    with pytest.raises(TrainingError, match="while encoding the data") as caught:
        training.train(spec_for("label"), table, SCHEMA, "cpu", public_rows=ROWS, seed=0)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_streamed_training_is_the_loaded_tables_training(data_file: Path) -> None:
    spec = spec_for("label")
    _, table = streamed_read(data_file, spec)
    kwargs: dict[str, Any] = {"public_rows": ROWS, "seed": 3}
    loaded = training.train(spec, load_table(data_file), SCHEMA, "cpu", **kwargs)
    streamed_result = training.train(spec, table, SCHEMA, "cpu", **kwargs)
    for (name, a), (_, b) in zip(loaded.module.state_dict().items(), streamed_result.module.state_dict().items()):
        assert torch.equal(a, b), name


def order_for(path: Path, spec: ModelSpec, commitment: str) -> bytes:
    params = DpParams.for_spec(spec, ROWS)
    order = TrainingOrder(
        spec=spec.to_json().decode(), dataset_schema=SCHEMA, public_rows=ROWS, commitment=commitment,
        commitment_key=KEY.secret.hex(), dp=params.to_onchain(), delta=params.delta_fixed, device="cpu",
    )  # fmt: skip
    return order.model_dump_json().encode()


def test_the_job_trains_on_the_committed_file(data_file: Path) -> None:
    spec = spec_for("label")
    order = order_for(data_file, spec, commit(load_table(data_file), KEY).digest)
    output = TrainingOutput.model_validate_json(train_job(order, data_file))
    assert output.run["epsilon"] > 0 and output.run["device"] == "cpu"


def test_a_file_that_is_not_the_committed_one_is_refused_before_training(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained on an uncommitted file")

    monkeypatch.setattr(job_training, "train", no_training)
    other = commit(load_table(data_file).iloc[:-1], KEY).digest
    with pytest.raises(TrainingError) as caught:
        train_job(order_for(data_file, spec_for("label"), other), data_file)
    assert str(caught.value) == "The private file does not match the dataset's on-chain commitment."


def test_a_bad_file_gives_the_loaders_message(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    text = awkward_table().to_csv(index=False).splitlines()
    cells = text[200].split(",")
    cells[0] = "forty"  # text in the integer column, at line 201
    text[200] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetError) as loaded:
        load_table(path)
    with pytest.raises(DatasetError) as streamed_error:
        train_job(order_for(path, spec_for("label"), "0x" + "00" * 32), path)
    assert str(streamed_error.value) == str(loaded.value)
    assert "line 201" in str(loaded.value) and "forty" not in str(loaded.value)
