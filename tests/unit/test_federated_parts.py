"""The parts of a federated job, each alone: the model digest, the runner's secure-only
guard, the FAB hash, the run settings, the per-round DP parameters and the spec section."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from compute_to_data.federated.client_app import RefusedMessage, secure_only
from exchange.errors import PrivacyError, SpecError
from exchange.federated.arrays import model_digest
from exchange.federated.fab import APP_DIR, fab_hash
from exchange.federated.server import RunSettings
from exchange.ml.accounting import DpParams
from exchange.ml.spec import FederationSpec, ModelSpec

SPEC = {
    "task": "classification", "features": ["age", "bmi"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 2}], "loss": "cross_entropy", "optimizer": "sgd",
    "learning_rate": 0.1, "expected_batch_size": 50, "epochs": 2,
    "dp": {"noise_multiplier": 1.2, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


# ----------------------------------------------------------------------------- digest


def test_model_digest_is_a_function_of_shapes_and_float32_values() -> None:
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, dtype=np.float32)]
    digest = model_digest(arrays)
    assert len(digest) == 32 and model_digest([a.copy() for a in arrays]) == digest
    assert model_digest([a.astype(np.float64) for a in arrays]) == digest  # SecAgg+ hands back float64
    changed = [arrays[0].copy(), arrays[1].copy()]
    changed[1][0] = np.nextafter(np.float32(1), np.float32(2))
    assert model_digest(changed) != digest
    assert model_digest([arrays[0].reshape(3, 2), arrays[1]]) != digest  # same bytes, other shape
    assert model_digest(arrays[:1]) != digest


# ----------------------------------------------------------------------------- guard


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the task loop sets from the task it pulled (Flower's messages read it)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 7), ("_task_id", 11)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _message(message_type: str, configs: dict[str, Any] | None) -> Message:
    content = RecordDict()
    if configs is not None:
        content.config_records[RECORD_KEY_CONFIGS] = ConfigRecord(configs)
    return Message(content=content, dst_node_id=7, message_type=message_type)


def _passes(message: Message) -> bool:
    context = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})
    reached: list[Message] = []
    secure_only(message, context, lambda m, c: reached.append(m) or m)
    return reached == [message]


def test_the_guard_passes_secagg_stages_with_two_or_more_updates() -> None:
    setup = {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: 3, Key.THRESHOLD: 2}
    assert _passes(_message("train", setup))  # the control: a proper round goes through
    assert _passes(_message("train", {Key.STAGE: Stage.SHARE_KEYS}))


@pytest.mark.parametrize(
    ("message_type", "configs", "why"),
    [
        ("evaluate", {Key.STAGE: Stage.SETUP}, "not 'evaluate'"),
        ("query", None, "not 'query'"),
        ("train", None, "only through SecAgg"),  # a plain round would carry the update in the clear
        ("train", {"round": 1}, "only through SecAgg"),
        ("train", {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: 1, Key.THRESHOLD: 1}, "at least 2"),
        ("train", {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: 3, Key.THRESHOLD: 1}, "at least 2"),
    ],
)
def test_the_guard_refuses_everything_else(message_type: str, configs: dict[str, Any] | None, why: str) -> None:
    with pytest.raises(RefusedMessage, match=why):
        _passes(_message(message_type, configs))


# ----------------------------------------------------------------------------- FAB


def test_the_fab_hash_is_reproducible_and_covers_the_app(tmp_path: Path) -> None:
    from flwr.cli.build import build_fab_from_disk
    import hashlib

    assert fab_hash() == hashlib.sha256(build_fab_from_disk(APP_DIR)).hexdigest()
    copy = tmp_path / "app"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert hashlib.sha256(build_fab_from_disk(copy)).hexdigest() == fab_hash()
    server = copy / "cove_federation" / "server_app.py"
    server.write_text(server.read_text() + "\n# an aggregator's own change\n")
    assert hashlib.sha256(build_fab_from_disk(copy)).hexdigest() != fab_hash()


# ----------------------------------------------------------------------------- run settings


def test_run_settings_round_trip_through_flowers_run_config() -> None:
    settings = RunSettings(rpc="http://127.0.0.1:8545", hub="0x" + "ab" * 20, federation_id=3, init_seed=99,
                           join_timeout=30.0, stage_timeout=45.5, train_timeout=900.0)  # fmt: skip
    parsed = tomllib.loads(settings.to_run_config().replace(" ", "\n"))
    assert RunSettings.from_run_config(parsed) == settings
    app = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(parsed) == set(app)  # every key the run sets is one the app declares


# ----------------------------------------------------------------------------- DP per round


def test_a_federated_jobs_parameters_cover_every_round_and_split_exactly() -> None:
    spec = ModelSpec.parse(SPEC | {"federation": {"rounds": 3, "superlink": "127.0.0.1:9092"}})
    assert spec.total_epochs == 6
    job = DpParams.for_spec(spec, 1000)
    single = DpParams.for_spec(ModelSpec.parse(SPEC), 1000)
    assert job.epochs == 6 and job.steps == 3 * single.steps
    round_ = job.per_round(3)
    assert round_ == single  # a round is the single-dataset job of `epochs` epochs
    assert np.allclose(3 * np.array(round_.curve()), np.array(job.curve()), rtol=1e-12)  # RDP adds up
    with pytest.raises(PrivacyError, match="do not split into 4 equal rounds"):
        job.per_round(4)


def test_target_epsilon_is_met_over_all_rounds() -> None:
    target = {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0}
    spec = ModelSpec.parse(SPEC | {"dp": target, "federation": {"rounds": 4, "superlink": "agg.example:9092"}})
    from exchange.ml.accounting import epsilon

    job = DpParams.for_spec(spec, 1000)
    assert epsilon(job.curve(), job.delta) <= 2.0
    assert job.noise_multiplier > DpParams.for_spec(ModelSpec.parse(SPEC | {"dp": target}), 1000).noise_multiplier


# ----------------------------------------------------------------------------- spec


def test_a_single_dataset_spec_has_no_federation_key_and_keeps_its_hash() -> None:
    single = ModelSpec.parse(SPEC)
    assert b"federation" not in single.to_json()
    federated = single.model_copy(update={"federation": FederationSpec(rounds=2, superlink="127.0.0.1:1")})
    assert b'"federation":{"rounds":2,"superlink":"127.0.0.1:1"}' in federated.to_json()
    assert federated.spec_hash() != single.spec_hash()
    assert ModelSpec.from_wire(federated.to_wire()) == federated


@pytest.mark.parametrize("superlink", ["127.0.0.1", "http://a:1", "a:0", "a:70000", "user@a:1", ":9092"])
def test_a_superlink_must_be_host_and_port(superlink: str) -> None:
    with pytest.raises(SpecError, match="host:port"):
        ModelSpec.parse(SPEC | {"federation": {"rounds": 2, "superlink": superlink}})


def test_rounds_are_bounded() -> None:
    with pytest.raises(SpecError):
        ModelSpec.parse(SPEC | {"federation": {"rounds": 0, "superlink": "a:1"}})
    with pytest.raises(SpecError):
        ModelSpec.parse(SPEC | {"federation": {"rounds": 101, "superlink": "a:1"}})


def test_a_federated_spec_is_never_requested_as_a_job_of_its_own() -> None:
    from exchange.jobs import request_job

    federated = ModelSpec.parse(SPEC | {"federation": {"rounds": 2, "superlink": "127.0.0.1:9092"}})
    with pytest.raises(SpecError, match="has a federation section: train it over several datasets"):
        request_job(None, 1, federated)  # type: ignore[arg-type] - refused before the chain is asked anything
    with pytest.raises(SpecError, match="needs a spec with a federation section"):
        request_job(None, 1, ModelSpec.parse(SPEC), federation_part=True)  # type: ignore[arg-type]
