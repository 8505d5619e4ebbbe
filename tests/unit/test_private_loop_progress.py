"""The private loop's progress callback: called with the steps done, after each optimizer step."""

from __future__ import annotations

import torch
from torch import nn

from compute_to_data import training
from exchange.ml.accounting import DpParams, steps_for
from exchange.ml.spec import ModelSpec


def case() -> tuple[nn.Sequential, torch.Tensor, torch.Tensor, ModelSpec, DpParams]:
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    features, targets = torch.randn(40, 4, generator=generator), torch.randint(0, 2, (40,), generator=generator)
    spec = ModelSpec.parse({
        "task": "classification", "features": [f"x{i}" for i in range(4)], "target": "y",
        "layers": [{"type": "Linear", "out_features": 6}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy", "optimizer": "sgd", "learning_rate": 0.1, "expected_batch_size": 8,
        "epochs": 2, "dp": {"noise_multiplier": 1.0, "delta": 1e-5, "max_grad_norm": 1.0},
    })
    params = DpParams(noise_multiplier=1.0, sample_rate=8 / 40, max_grad_norm=1.0, epochs=2,
                      steps=steps_for(8 / 40, 2), delta=1e-5)
    return model, features, targets, spec, params


def test_on_step_gets_the_steps_done_after_each_optimizer_step() -> None:
    model, features, targets, spec, params = case()
    updates = 0
    seen: list[tuple[int, int]] = []  # (what on_step was given, optimizer steps taken by then)
    loop = training.PrivateLoop(model, features, targets, spec=spec, params=params, device=torch.device("cpu"),
                                sample_seed=1, noise_seed=2, on_step=lambda done: seen.append((done, updates)))
    step = loop.optimizer.step

    def counted() -> None:
        nonlocal updates
        step()
        updates += 1

    loop.optimizer.step = counted  # type: ignore[method-assign]
    loop.run()
    assert seen == [(n, n) for n in range(1, params.steps + 1)]


def test_on_step_changes_nothing_and_defaults_to_none() -> None:
    trained = []
    for on_step in (None, lambda done: None):
        model, features, targets, spec, params = case()
        trained.append(training.fit_private(model, features, targets, spec=spec, params=params,
                                            device=torch.device("cpu"), sample_seed=3, noise_seed=4,
                                            on_step=on_step))
    for first, second in zip(trained[0].parameters(), trained[1].parameters()):
        assert torch.equal(first, second)
    model, features, targets, spec, params = case()
    loop = training.PrivateLoop(model, features, targets, spec=spec, params=params,
                                device=torch.device("cpu"), sample_seed=0, noise_seed=0)
    assert loop.on_step is None
