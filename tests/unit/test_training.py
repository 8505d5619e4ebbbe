"""Private training and export: it learns, it accounts exactly, and nothing else leaves."""

from __future__ import annotations

import copy
import logging
import math
import threading
import warnings
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from opacus import GradSampleModule
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.datasets import make_classification, make_regression
from torch import nn

import compute_to_data.training as training
from exchange.ml import accounting
from exchange.ml.accounting import DpParams, fixed_curve, rdp_curve, steps_for
from exchange.ml.weights import export_weights, load_weights, plain_name
from exchange.ml.model import build_model, decode_regression, encode_features, validate_module
from exchange.ml.spec import ModelSpec
from compute_to_data.training import TrainingResult, train
from exchange.datasets.schema import DatasetSchema, draft_schema
from exchange.errors import PrivacyError, SpecError, TrainingError, WeightsError

Split = tuple[pd.DataFrame, pd.DataFrame, DatasetSchema]
FEATURES = ["f0", "f1", "f2", "f3", "f4", "f5", "group"]


def classification_table(rows: int, seed: int = 0) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=rows, n_features=6, n_informative=4, n_redundant=0, class_sep=1.5,
        random_state=seed,
    )
    table = pd.DataFrame(x.round(3), columns=FEATURES[:-1])
    table["group"] = pd.array(np.array(["a", "b", "c"])[np.arange(rows) % 3], dtype="string")
    table["label"] = pd.array(np.where(y == 1, "yes", "no"), dtype="string")
    return table


def make_spec(**changes: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "task": "classification",
        "features": FEATURES,
        "target": "label",
        "layers": [
            {"type": "Linear", "out_features": 32},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 2},
        ],
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "learning_rate": 2.0,
        "expected_batch_size": 120,
        "epochs": 6,
        "dp": {"target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0},
    }
    data.update(changes)
    return ModelSpec.parse(data)


@pytest.fixture(scope="module")
def data() -> Split:
    table = classification_table(3000)
    schema = draft_schema(table)
    return table.iloc[:2400].reset_index(drop=True), table.iloc[2400:].reset_index(drop=True), schema


@pytest.fixture(scope="module")
def trained(data: Split) -> TrainingResult:
    train_rows, _, schema = data
    return train(make_spec(), train_rows, schema, public_rows=len(train_rows), device="cpu", seed=1)


def accuracy(module: nn.Module, spec: ModelSpec, schema: DatasetSchema, rows: pd.DataFrame) -> float:
    with torch.no_grad():
        predicted = module(encode_features(spec, schema, rows)).argmax(1).numpy()
    truth = (rows["label"] == "yes").to_numpy(dtype=int)
    return float((predicted == truth).mean())


def test_private_model_beats_chance_on_held_out_rows(data: Split, trained: TrainingResult) -> None:
    _, held_out, schema = data
    assert 2.0 <= trained.epsilon <= 3.0
    chance = max((held_out["label"] == "yes").mean(), (held_out["label"] == "no").mean())
    assert accuracy(trained.module, make_spec(), schema, held_out) > chance + 0.2


def test_reported_privacy_is_the_accountants(trained: TrainingResult) -> None:
    dp = trained.dp
    assert trained.sample_rate == dp.sample_rate == 0.05  # 120 / 2400
    assert trained.steps == dp.steps == steps_for(0.05, 6) == 6 * 20
    assert trained.curve == rdp_curve(dp.noise_multiplier, dp.sample_rate, dp.steps)
    assert trained.curve_fixed == fixed_curve(trained.curve)
    assert trained.epsilon == accounting.epsilon(trained.curve_fixed, trained.delta)
    assert accounting.curve_matches(dp.to_onchain(), trained.curve_fixed)
    assert dp == DpParams.for_spec(make_spec(), 2400)
    assert trained.spec_hash == make_spec().spec_hash()
    record = trained.provenance()
    assert record["rdp_curve"] == list(trained.curve_fixed)
    assert record["epsilon"] == math.ceil(trained.epsilon * 1e6)
    assert record["rdp_orders"] == [1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000,
                                    12000, 16000, 20000, 24000, 32000, 48000, 64000, 80000, 96000,
                                    128000, 160000, 192000, 256000, 512000, 1024000]
    assert record["dp"] == dp.to_onchain().model_dump() | {"epochs": 6}
    assert record["delta"] == 10**13 and record["device"] == "cpu"
    assert record["library_versions"] == trained.versions


def test_result_holds_public_facts_and_a_clean_module(trained: TrainingResult) -> None:
    assert {f.name for f in fields(TrainingResult)} == {
        "module", "spec_hash", "dp", "curve", "curve_fixed", "epsilon", "delta", "steps",
        "sample_rate", "device", "device_name", "versions", "seeded",
    }  # no time: how long training takes depends on the private rows
    assert trained.device == "cpu" and trained.seeded
    assert set(trained.versions) == {"python", "torch", "opacus"}
    module = trained.module
    assert type(module) is nn.Sequential
    validate_module(module)
    for layer in module:
        assert not hasattr(layer, "activations") and not hasattr(layer, "max_batch_len")
    for _, param in module.named_parameters():
        assert param.grad is None
        for leftover in ("grad_sample", "_norm_sample", "summed_grad", "_forward_counter"):
            assert not hasattr(param, leftover)


def test_export_is_exactly_the_parameters(data: Split, trained: TrainingResult) -> None:
    _, held_out, schema = data
    blob = export_weights(trained.module)
    tensors = load_safetensors(blob)
    plain = build_model(make_spec(), schema)
    assert set(tensors) == {name for name, _ in plain.named_parameters()}
    assert set(tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert blob == export_weights(trained.module)  # deterministic bytes
    loaded = load_weights(make_spec(), schema, blob)
    inputs = encode_features(make_spec(), schema, held_out)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), trained.module(inputs))


def test_export_strips_wrappers_and_skips_buffers() -> None:
    wrapped = GradSampleModule(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert set(load_safetensors(export_weights(wrapped))) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert plain_name("_module._module.0.weight") == "0.weight"
    with_buffers = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert set(load_safetensors(export_weights(with_buffers))) == {
        "0.weight", "0.bias", "1.weight", "1.bias",  # no running_mean/var, no counter
    }


def test_load_weights_refuses_what_does_not_match(data: Split) -> None:
    _, _, schema = data
    spec = make_spec()
    good = {n: p.detach().clone() for n, p in build_model(spec, schema).named_parameters()}
    cases = {
        "unexpected extra": good | {"extra": torch.zeros(1)},
        "missing 2.bias": {k: v for k, v in good.items() if k != "2.bias"},
        "has shape": good | {"0.bias": torch.zeros(5)},
        "not a floating-point": good | {"0.bias": torch.zeros(32, dtype=torch.int64)},
    }
    for fragment, tensors in cases.items():
        with pytest.raises(WeightsError, match=fragment):
            load_weights(spec, schema, save_safetensors(tensors))
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_weights(spec, schema, b"\x00not safetensors")


class CountingSampler(training.PoissonSampler):
    batches: list[int] = []
    rates: list[float] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        CountingSampler.rates.append(self.sample_rate)
        for indices in super().__iter__():
            CountingSampler.batches.append(len(indices))
            yield indices


def test_exact_steps_with_empty_poisson_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    table = classification_table(200, seed=3)
    schema = draft_schema(table)
    spec = make_spec(expected_batch_size=1, epochs=2, dp={"noise_multiplier": 1.0, "delta": 1e-5,
                                                          "max_grad_norm": 1.0})
    CountingSampler.batches, CountingSampler.rates = [], []
    monkeypatch.setattr(training, "PoissonSampler", CountingSampler)
    result = train(spec, table, schema, public_rows=len(table), device="cpu", seed=0)
    assert CountingSampler.rates == [0.005]
    assert len(CountingSampler.batches) == result.steps == 2 * 200
    assert CountingSampler.batches.count(0) > 50  # P(empty) = 0.995**200 ≈ 0.37
    assert all(torch.isfinite(p).all() for p in result.module.parameters())


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    table = classification_table(300, seed=4)
    schema = draft_schema(table)
    spec = make_spec(epochs=1, expected_batch_size=30)
    first = export_weights(train(spec, table, schema, public_rows=len(table), device="cpu", seed=7).module)
    again = export_weights(train(spec, table, schema, public_rows=len(table), device="cpu", seed=7).module)
    other = export_weights(train(spec, table, schema, public_rows=len(table), device="cpu", seed=8).module)
    assert first == again and first != other
    unseeded = [train(spec, table, schema, public_rows=len(table), device="cpu") for _ in range(2)]
    assert not any(r.seeded for r in unseeded)
    assert export_weights(unseeded[0].module) != export_weights(unseeded[1].module)


def test_failures_name_the_stage_and_carry_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    table = classification_table(300, seed=5)
    schema = draft_schema(table)
    spec = make_spec(epochs=1, expected_batch_size=30)
    bad = table.copy()
    bad["group"] = pd.array([f"SECRET-ROW-VALUE-{i}" for i in range(len(bad))], dtype="string")
    bad["f0"] = pd.array(["SECRET-ROW-VALUE"] * len(bad), dtype="string")  # not the declared kind
    with pytest.raises(TrainingError) as info:
        train(spec, bad, schema, public_rows=len(bad), device="cpu", seed=0)
    assert_opaque(info.value, "checking the table")

    def explode(*args: Any, **kwargs: Any) -> None:
        raise ValueError("row 17 has bmi 31.4159 and SECRET-ROW-VALUE")

    monkeypatch.setattr(training, "fit_private", explode)
    with pytest.raises(TrainingError) as info:
        train(spec, table, schema, public_rows=len(table), device="cpu", seed=0)
    assert_opaque(info.value, "while training")


def assert_opaque(error: TrainingError, stage: str) -> None:
    message = str(error)
    assert stage in message and "withheld" in message
    assert "SECRET" not in message and "31.4" not in message and "17" not in message
    assert error.__cause__ is None and error.__context__ is None


def test_public_problems_fail_before_any_row_is_read(data: Split) -> None:
    train_rows, _, schema = data
    with pytest.raises(SpecError, match="feature column 'nope'"):
        train(make_spec(features=["f0", "nope"]), train_rows, schema, public_rows=len(train_rows), device="cpu")
    with pytest.raises(SpecError, match="larger than the dataset's"):
        train(make_spec(expected_batch_size=5000), train_rows, schema, public_rows=len(train_rows), device="cpu")
    honest = DpParams.for_spec(make_spec(), len(train_rows))
    lowered = honest.model_copy(update={"noise_multiplier": 0.5})
    with pytest.raises(PrivacyError, match="not the ones its spec gives"):
        train(make_spec(), train_rows, schema, public_rows=len(train_rows), device="cpu", expected_params=lowered)
    with pytest.raises(PrivacyError):
        train(make_spec(), train_rows, schema, public_rows=len(train_rows), device="cpu",
              expected_params=lowered.to_onchain())


def test_training_writes_no_logs_warnings_or_output(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    table = classification_table(200, seed=6)
    schema = draft_schema(table)
    spec = make_spec(expected_batch_size=2, epochs=1)  # many empty batches: Opacus would log
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(spec, table, schema, public_rows=len(table), device="cpu", seed=0)
    assert caught == []
    # Only this thread's records: a thread some earlier test left behind may still log.
    assert [r for r in caplog.records if r.thread == threading.get_ident()] == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_expected_params_that_match_are_accepted(data: Split) -> None:
    train_rows, _, schema = data
    spec = make_spec(epochs=1)
    params = DpParams.for_spec(spec, len(train_rows))
    result = train(spec, train_rows, schema, public_rows=len(train_rows), device="cpu", seed=0, expected_params=params.to_onchain())
    assert result.dp == params


def test_regression_learns_something() -> None:
    x, y = make_regression(n_samples=1500, n_features=4, noise=5.0, random_state=0)
    table = pd.DataFrame(x.round(3), columns=["a", "b", "c", "d"])
    table["target"] = y.round(2)
    schema = draft_schema(table)
    spec = ModelSpec.parse(
        {
            "task": "regression", "features": ["a", "b", "c", "d"], "target": "target",
            "layers": [{"type": "Linear", "out_features": 16}, {"type": "Tanh"},
                       {"type": "Linear", "out_features": 1}],
            "loss": "mse", "optimizer": "adam", "learning_rate": 0.05,
            "expected_batch_size": 100, "epochs": 8,
            "dp": {"target_epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 1.0},
        }
    )
    result = train(spec, table, schema, public_rows=len(table), device="cpu", seed=0)
    with torch.no_grad():
        predicted = decode_regression(spec, schema, result.module(encode_features(spec, schema, table)))
    error = np.mean((predicted - table["target"].to_numpy()) ** 2)
    assert error < 0.5 * np.var(table["target"].to_numpy())


def test_bce_with_missing_targets_and_nullable_features() -> None:
    table = classification_table(800, seed=8)
    table["label"] = table["label"] == "yes"
    table["label"] = pd.array(table["label"], dtype="boolean")
    table.loc[::10, "label"] = None  # kept: a missing target takes the declared fill, no row is dropped
    table.loc[::7, "f0"] = np.nan
    schema = draft_schema(table)
    spec = make_spec(loss="bce", layers=[{"type": "Linear", "out_features": 8}, {"type": "Sigmoid"},
                                         {"type": "Linear", "out_features": 1}],
                     expected_batch_size=80, epochs=3)
    features, targets = training._encode(spec, schema, table)
    assert len(features) == len(targets) == len(table)  # the work does not depend on what is missing
    result = train(spec, table, schema, public_rows=len(table), device="cpu", seed=0)
    assert result.module[0].in_features == 6 + 1 + 3  # f0..f5, f0:missing, group one-hot
    assert result.sample_rate == 0.1  # the public row count, missing targets included


def test_device_choice() -> None:
    if torch.cuda.is_available():
        assert training.resolve_device(None).type == "cuda"
    else:
        assert training.resolve_device(None) == torch.device("cpu")
        with pytest.raises(TrainingError, match="no GPU"):
            training.resolve_device("cuda")
    with pytest.raises(TrainingError, match="cpu or cuda"):
        training.resolve_device("meta")
    with pytest.raises(TrainingError, match="not a device name"):
        training.resolve_device("warp-drive")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda(data: Split) -> None:
    train_rows, held_out, schema = data
    result = train(make_spec(), train_rows, schema, public_rows=len(train_rows), seed=1)
    assert result.device.startswith("cuda") and result.device_name
    assert next(result.module.parameters()).device.type == "cpu"
    chance = max((held_out["label"] == "yes").mean(), (held_out["label"] == "no").mean())
    assert accuracy(result.module, make_spec(), schema, held_out) > chance + 0.2


class Recording:
    """Passes a sampler's batches through, keeping a copy of each."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.batches: list[torch.Tensor] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        for indices in self.sampler:
            self.batches.append(indices.clone())
            yield indices


def loop_case(rows: int, loss: str, optimizer: str) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor, ModelSpec, DpParams]:
    """A model with every allow-listed layer, random rows, and a spec small enough for empty batches."""
    generator = torch.Generator().manual_seed(rows)
    outputs = 3 if loss == "cross_entropy" else 1
    model = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 8, bias=False),
                          nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid(), nn.ReLU(), nn.Linear(8, outputs))
    features = torch.randn(rows, 5, generator=generator) * 4
    if loss == "cross_entropy":
        targets = torch.randint(0, 3, (rows,), generator=generator)
    else:
        targets = torch.randn(rows, generator=generator)
    spec = make_spec(task="classification" if loss == "cross_entropy" else "regression", loss=loss,
                     optimizer=optimizer, learning_rate=0.05, expected_batch_size=3)
    params = DpParams(noise_multiplier=0.8, sample_rate=3 / rows, max_grad_norm=0.5, epochs=2,
                      steps=steps_for(3 / rows, 2), delta=1e-5)
    return model, features, targets, spec, params


@pytest.mark.parametrize(("loss", "optimizer"), [("cross_entropy", "sgd"), ("mse", "adam")])
def test_the_runners_loop_is_opacus_make_private_step_for_step(loss: str, optimizer: str) -> None:
    # The same batches and the same noise generator into Opacus' make_private (ghost
    # clipping, the runner's previous loop) and into ours: the same weights, empty batches
    # (pure-noise steps) included.
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    model, features, targets, spec, params = loop_case(60, loss, optimizer)
    reference, initial = copy.deepcopy(model), copy.deepcopy(model)
    loop = training.PrivateLoop(model, features, targets, spec=spec, params=params,
                                device=torch.device("cpu"), sample_seed=5, noise_seed=6)
    loop.sampler = recording = Recording(loop.sampler)
    loop.run()
    batches = recording.batches
    assert len(batches) == params.steps
    assert sum(len(b) == 0 for b in batches) > 0 and max(len(b) for b in batches) > 1

    criterion = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss}[loss]()
    with training.quiet():
        private, dp_optimizer, dp_criterion, _ = PrivacyEngine(accountant="rdp").make_private(
            module=reference, optimizer=training._OPTIMIZERS[optimizer](reference.parameters(), lr=0.05),
            data_loader=DataLoader(TensorDataset(features, targets), batch_size=3), criterion=criterion,
            noise_multiplier=params.noise_multiplier, max_grad_norm=params.max_grad_norm,
            poisson_sampling=True, grad_sample_mode="ghost", noise_generator=torch.Generator().manual_seed(6),
        )
        dp_optimizer.expected_batch_size = spec.expected_batch_size
        for index in batches:
            dp_optimizer.zero_grad(set_to_none=True)
            outputs = private(features[index])
            dp_criterion(outputs.squeeze(-1) if loss == "mse" else outputs, targets[index]).backward()
            dp_optimizer.step()
    ours, theirs = dict(loop.module.named_parameters()), dict(reference.named_parameters())
    assert set(ours) == set(theirs)
    for name, value in ours.items():
        assert torch.allclose(value, theirs[name], rtol=1e-5, atol=1e-6), name
    assert not torch.allclose(ours["0.weight"], initial[0].weight, atol=1e-3)  # it did train


def test_the_trained_module_carries_nothing_per_sample() -> None:
    model, features, targets, spec, params = loop_case(30, "cross_entropy", "sgd")
    attributes = {name: set(vars(module)) for name, module in model.named_modules()}
    trained = training.fit_private(model, features, targets, spec=spec, params=params,
                                   device=torch.device("cpu"), sample_seed=1, noise_seed=2)
    assert trained is model and type(trained) is nn.Sequential
    assert {name: set(vars(module)) for name, module in trained.named_modules()} == attributes
    validate_module(trained)  # no hooks, buffers or stray tensors
    for param in trained.parameters():
        assert param.grad is None  # even the last (noisy) gradient is dropped
        for leftover in ("grad_sample", "_norm_sample", "summed_grad", "_forward_counter"):
            assert not hasattr(param, leftover)


def test_a_step_allocates_nothing_the_size_of_the_table() -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for tensor in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(tensor, torch.Tensor):
                    Largest.numel = max(Largest.numel, tensor.numel())
            return out

    rows = 50_000
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    features, targets = torch.randn(rows, 6), torch.randint(0, 2, (rows,))
    spec = make_spec(expected_batch_size=250)
    params = DpParams(noise_multiplier=1.0, sample_rate=250 / rows, max_grad_norm=1.0, epochs=1,
                      steps=steps_for(250 / rows, 1), delta=1e-5)
    loop = training.PrivateLoop(model, features, targets, spec=spec, params=params,
                                device=torch.device("cpu"), sample_seed=0, noise_seed=0)
    assert loop.inputs.data_ptr() == features.data_ptr()  # the table itself, not a copy
    with Largest():
        loop.run()
    # The largest thing a step makes is a batch or a parameter, not one value per row.
    assert 0 < Largest.numel <= max(16 * 6, 2 * 250 * 16) < rows
