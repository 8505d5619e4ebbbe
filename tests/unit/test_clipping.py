"""Book-keeping clipping and the Gaussian mechanism, each checked against Opacus.

The reference is Opacus' own per-sample clipping: `GradSampleModule` materialises every
row's gradient, and the clip factor is min(1, C / (norm + 1e-6)) with the norm over all
parameters, as `DPOptimizer.clip_and_accumulate` computes it.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator

import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from scipy import stats
from torch import nn

from compute_to_data.clipping import (
    BookKeeping,
    GaussianMechanism,
    clip_factors,
    layer_norm_add_clipped,
    layer_norm_normalised,
    layer_norm_norms_sq,
    linear_add_clipped,
    linear_norms_sq,
)
from exchange.ml.model import validate_module

LOSSES = {
    "cross_entropy": (nn.CrossEntropyLoss, False),
    "bce": (nn.BCEWithLogitsLoss, True),
    "mse": (nn.MSELoss, True),
}


@pytest.fixture(autouse=True)
def opacus_quiet() -> Iterator[None]:
    logger = logging.getLogger("opacus")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logger.setLevel(level)


def opacus_per_sample(module: nn.Module, loss_of_output: object, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Every row's gradient of every parameter, as Opacus' hooks compute them (summed loss)."""
    wrapped = GradSampleModule(module, loss_reduction="sum")
    try:
        loss_of_output(wrapped(inputs)).backward()  # type: ignore[operator]
        return [p.grad_sample.detach().clone() for p in module.parameters()]
    finally:
        wrapped._close()
        module.zero_grad(set_to_none=True)


def opacus_clipped_sum(per_sample: list[torch.Tensor], max_grad_norm: float) -> list[torch.Tensor]:
    """DPOptimizer.clip_and_accumulate, verbatim in substance."""
    norms = torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in per_sample]).norm(2, dim=0)
    factors = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    return [torch.einsum("i,i...", factors, g) for g in per_sample]


def random_model(seed: int, inputs: int, outputs: int, dtype: torch.dtype) -> nn.Sequential:
    """Every allow-listed layer, a bias-free Linear among them, with weights far from init."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(inputs, 9), nn.LayerNorm(9), nn.GELU(), nn.Linear(9, 7, bias=False), nn.Tanh(),
        nn.Linear(7, 8), nn.Sigmoid(), nn.Linear(8, 6), nn.ReLU(), nn.LayerNorm(6),
        nn.Linear(6, outputs),
    ).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype))
    validate_module(model)
    return model


def batch(rows: int, inputs: int, loss: str, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, inputs, generator=generator, dtype=dtype) * 3
    if loss == "cross_entropy":
        return x, torch.randint(0, 3, (rows,), generator=generator)
    if loss == "bce":
        return x, torch.randint(0, 2, (rows,), generator=generator).to(dtype)
    return x, torch.randn(rows, generator=generator, dtype=dtype)


def book_keeping_sum(model: nn.Module, loss: str, x: torch.Tensor, y: torch.Tensor, clip: float) -> list[torch.Tensor]:
    criterion, squeeze = LOSSES[loss]
    into = [torch.zeros_like(p) for p in model.parameters()]
    BookKeeping(model, criterion(reduction="sum"), max_grad_norm=clip, squeeze=squeeze).add_clipped_sum(x, y, into, 1.0)
    return into


def assert_close(ours: list[torch.Tensor], reference: list[torch.Tensor], tolerance: float) -> None:
    """Equal to `tolerance`, relative to the reference's largest entry where that exceeds 1."""
    assert len(ours) == len(reference)
    scale = max([1.0] + [t.abs().max().item() for t in reference if t.numel()])
    for mine, theirs in zip(ours, reference):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        assert (mine - theirs).abs().max().item() <= tolerance * scale


# ---------------------------------------------------------------------------------------
# Each kernel alone


@pytest.mark.parametrize("rows", [1, 5, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_kernel_is_opacus_per_sample_gradients(rows: int, bias: bool) -> None:
    generator = torch.Generator().manual_seed(rows)
    layer = nn.Linear(6, 4, bias=bias).double()
    a = torch.randn(rows, 6, generator=generator, dtype=torch.float64)
    b = torch.randn(rows, 4, generator=generator, dtype=torch.float64)  # the output gradients
    per_sample = opacus_per_sample(layer, lambda out: (out * b).sum(), a)
    expected_sq = sum(g.reshape(rows, -1).pow(2).sum(1) for g in per_sample)
    assert torch.allclose(linear_norms_sq(a, b, bias=bias), expected_sq, rtol=1e-12, atol=0)

    factors = torch.rand(rows, generator=generator, dtype=torch.float64)
    weight, bias_sum = torch.ones(4, 6, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    linear_add_clipped(weight, bias_sum if bias else None, a, b, factors, alpha=0.5)
    sums = [torch.einsum("i,i...", factors, g) for g in per_sample]
    assert torch.allclose(weight, 1 + 0.5 * sums[0], rtol=0, atol=1e-12)
    if bias:
        assert torch.allclose(bias_sum, 1 + 0.5 * sums[1], rtol=0, atol=1e-12)
    else:
        assert torch.equal(bias_sum, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_layer_norm_kernel_is_opacus_per_sample_gradients(rows: int) -> None:
    generator = torch.Generator().manual_seed(rows)
    layer = nn.LayerNorm(7).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(7, generator=generator, dtype=torch.float64))
        layer.bias.copy_(torch.randn(7, generator=generator, dtype=torch.float64))
    x = torch.randn(rows, 7, generator=generator, dtype=torch.float64) * 5 + 2
    b = torch.randn(rows, 7, generator=generator, dtype=torch.float64)
    per_sample = opacus_per_sample(layer, lambda out: (out * b).sum(), x)
    squares, weight_rows = layer_norm_norms_sq(layer_norm_normalised(layer, x), b)
    expected_sq = sum(g.reshape(rows, -1).pow(2).sum(1) for g in per_sample)
    assert torch.allclose(squares, expected_sq, rtol=1e-10, atol=0)

    factors = torch.rand(rows, generator=generator, dtype=torch.float64)
    weight, bias = torch.zeros(7, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    layer_norm_add_clipped(weight, bias, weight_rows, b, factors, alpha=2.0)
    assert_close([weight, bias], [2 * torch.einsum("i,i...", factors, g) for g in per_sample], 1e-10)


@pytest.mark.parametrize("clip", [1.0, 0.7, 3.3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clip_factors_are_opacus_bit_for_bit(clip: float, dtype: torch.dtype) -> None:
    norms = torch.cat([torch.tensor([0.0, clip * 0.5, clip, clip * 2, 1e6], dtype=dtype),
                       torch.rand(200, generator=torch.Generator().manual_seed(0), dtype=dtype) * 3 * clip])
    expected = (clip / (norms + 1e-6)).clamp(max=1.0)  # DPOptimizer.clip_and_accumulate's line
    factors = clip_factors(norms.clone(), clip)
    assert factors.dtype == dtype and torch.equal(factors, expected)


def test_clip_factors_edges() -> None:
    norms = torch.tensor([0.0, 0.5, 1.0 - 1e-7, 1.0, 2.0, 1e6], dtype=torch.float64)
    factors = clip_factors(norms.clone(), 1.0)
    # Like Opacus, a norm just under C is still scaled a little: the 1e-6 is added first.
    assert factors[:2].tolist() == [1.0, 1.0] and 1 - 1e-6 < factors[2] < 1
    assert factors[-1] == pytest.approx(1e-6)


# ---------------------------------------------------------------------------------------
# A whole model: the clipped sum is Opacus' per-sample clipping


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("rows", [1, 7, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_clipped_sum_is_opacus_per_sample_clipping(loss: str, rows: int, seed: int) -> None:
    outputs = 3 if loss == "cross_entropy" else 1
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-6)):
        model = random_model(seed, 5, outputs, dtype)
        x, y = batch(rows, 5, loss, dtype, seed)
        criterion, squeeze = LOSSES[loss]

        def summed(out: torch.Tensor, y: torch.Tensor = y, criterion: type = criterion,
                   squeeze: bool = squeeze) -> torch.Tensor:
            return criterion(reduction="sum")(out.squeeze(-1) if squeeze else out, y)

        per_sample = opacus_per_sample(model, summed, x)
        norms = torch.stack([g.reshape(rows, -1).norm(2, dim=-1) for g in per_sample]).norm(2, dim=0)
        # A clip norm between the rows' norms: some rows are clipped, others (for rows > 1) not.
        clip = float(norms.median()) if rows > 1 else float(norms[0]) / 2
        assert_close(book_keeping_sum(model, loss, x, y, clip), opacus_clipped_sum(per_sample, clip), tolerance)
        assert all(p.grad is None for p in model.parameters())  # autograd never formed them


def relu_first_model(seed: int, case: str, outputs: int) -> nn.Sequential:
    """Models whose first parametrised layer feeds a ReLU: its gradient is taken after the ReLU."""
    generator = torch.Generator().manual_seed(seed)
    layers: dict[str, list[nn.Module]] = {
        "mlp": [nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, outputs)],
        "inplace": [nn.Linear(5, 8), nn.ReLU(inplace=True), nn.Linear(8, outputs)],
        "no_bias": [nn.Linear(5, 8, bias=False), nn.ReLU(), nn.Linear(8, outputs)],
        "layer_norm": [nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, outputs)],
        "relu_last": [nn.Linear(5, outputs), nn.ReLU()],
    }
    model = nn.Sequential(*layers[case]).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


@pytest.mark.parametrize("case", ["mlp", "inplace", "no_bias", "layer_norm", "relu_last"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_relu_after_the_first_layer_is_opacus_per_sample_clipping(case: str, loss: str) -> None:
    outputs = 3 if loss == "cross_entropy" else 1
    model = relu_first_model(9, case, outputs)
    assert BookKeeping(model, nn.MSELoss(reduction="sum"), max_grad_norm=1.0)._relu_after_first == 1
    x, y = batch(33, 5, loss, torch.float64, 9)
    criterion, squeeze = LOSSES[loss]
    # Some rows' pre-activations are exactly 0 (the ReLU's edge): autograd passes no gradient there.
    x[:3] = 0.0
    if case != "layer_norm":
        with torch.no_grad():
            model[0].weight[0].zero_()

    def summed(out: torch.Tensor) -> torch.Tensor:
        return criterion(reduction="sum")(out.squeeze(-1) if squeeze else out, y)

    reference = copy.deepcopy(model)  # Opacus' hooks refuse an in-place ReLU: the same one, out of place
    for index, layer in enumerate(reference):
        if isinstance(layer, nn.ReLU):
            reference[index] = nn.ReLU()
    per_sample = opacus_per_sample(reference, summed, x)
    norms = torch.stack([g.reshape(33, -1).norm(2, dim=-1) for g in per_sample]).norm(2, dim=0)
    clip = float(norms[norms > 0].median())
    assert_close(book_keeping_sum(model, loss, x, y, clip), opacus_clipped_sum(per_sample, clip), 1e-10)


def test_the_relu_shortcut_does_not_hold_the_first_layers_gradient_twice() -> None:
    # Autograd's ReLU backward would make the first layer's output gradient as a new tensor
    # while the one after the ReLU is still held; done in place, the step makes no tensor of
    # that size but the forward's two and the gradient itself (nor a temporary for a norm).
    from torch.utils._python_dispatch import TorchDispatchMode

    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    made: list[str] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            given = {a.untyped_storage().data_ptr() for a in [*args, *(kwargs or {}).values()]
                     if isinstance(a, torch.Tensor)}
            # New storage only: views and in-place results share an argument's.
            if isinstance(out, torch.Tensor) and out.numel() == 32 * 64 and out.untyped_storage().data_ptr() not in given:
                made.append(str(func))
            return out

    with Record():
        BookKeeping(model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=1.0).add_clipped_sum(
            x, y, [torch.zeros_like(p) for p in model.parameters()], 1.0)
    assert made == ["aten.addmm.default", "aten.relu.default", "aten.mm.default"]


def test_one_row_is_clipped_to_the_norm_in_its_own_direction() -> None:
    model = random_model(3, 5, 3, torch.float64)
    x, y = batch(1, 5, "cross_entropy", torch.float64, 3)
    raw = book_keeping_sum(model, "cross_entropy", x * 100, y, 1e9)
    clipped = book_keeping_sum(model, "cross_entropy", x * 100, y, 0.01)
    raw_norm = torch.sqrt(sum((g**2).sum() for g in raw))
    clipped_norm = torch.sqrt(sum((g**2).sum() for g in clipped))
    assert raw_norm > 0.01 and clipped_norm == pytest.approx(0.01, rel=1e-4)
    for r, c in zip(raw, clipped):
        assert torch.allclose(c, r * (0.01 / (raw_norm + 1e-6)), rtol=1e-9, atol=1e-15)


def test_an_empty_batch_adds_nothing() -> None:
    model = random_model(4, 5, 3, torch.float32)
    x, y = batch(0, 5, "cross_entropy", torch.float32, 4)
    assert all(torch.equal(g, torch.zeros_like(g)) for g in book_keeping_sum(model, "cross_entropy", x, y, 1.0))


def test_nothing_per_sample_is_left_on_the_model() -> None:
    model = random_model(5, 5, 3, torch.float32)
    before = {name: set(vars(module)) for name, module in model.named_modules()}
    x, y = batch(16, 5, "cross_entropy", torch.float32, 5)
    book_keeping_sum(model, "cross_entropy", x, y, 1.0)
    assert {name: set(vars(module)) for name, module in model.named_modules()} == before
    validate_module(model)  # no hooks, buffers or tensor attributes appeared
    for p in model.parameters():
        assert p.grad is None and not hasattr(p, "grad_sample") and not hasattr(p, "_norm_sample")


def test_what_it_cannot_clip_is_refused() -> None:
    loss = nn.CrossEntropyLoss(reduction="sum")
    shared = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="more than once"):
        BookKeeping(nn.Sequential(shared, nn.ReLU(), shared), loss, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="no kernel for Conv1d"):
        BookKeeping(nn.Sequential(nn.Conv1d(1, 1, 3)), loss, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="reduction='sum'"):
        BookKeeping(nn.Sequential(nn.Linear(4, 2)), nn.CrossEntropyLoss(), max_grad_norm=1.0)
    with pytest.raises(ValueError, match="LayerNorm"):
        BookKeeping(nn.Sequential(nn.LayerNorm((2, 2))), loss, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="no parameters"):
        BookKeeping(nn.Sequential(nn.ReLU()), loss, max_grad_norm=1.0)
    stray = nn.Sequential(nn.Linear(4, 2))
    stray.register_parameter("extra", nn.Parameter(torch.zeros(1)))
    with pytest.raises(ValueError, match="in order"):
        BookKeeping(stray, loss, max_grad_norm=1.0)
    clipper = BookKeeping(nn.Sequential(nn.Linear(4, 2)), loss, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="2-D"):
        clipper.add_clipped_sum(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long), [], 1.0)


# ---------------------------------------------------------------------------------------
# The mechanism: Opacus' DPOptimizer update, noise included


def mechanism(model: nn.Module, noise: float, clip: float, expected: int, seed: int) -> GaussianMechanism:
    return GaussianMechanism(list(model.parameters()), noise_multiplier=noise, max_grad_norm=clip,
                             expected_batch_size=expected, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rows", [0, 1, 13])
@pytest.mark.parametrize("noise", [0.0, 1.3])
def test_the_update_is_opacus_dp_optimizers(rows: int, noise: float) -> None:
    clip, expected = 0.7, 10
    ours_model, opacus_model = random_model(6, 5, 3, torch.float32), random_model(6, 5, 3, torch.float32)
    x, y = batch(rows, 5, "cross_entropy", torch.float32, 6)

    mine = mechanism(ours_model, noise, clip, expected, seed=11)
    mine.step(BookKeeping(ours_model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=clip), x, y)

    wrapped = GradSampleModule(opacus_model)  # loss_reduction="mean", as make_private sets it
    optimizer = DPOptimizer(torch.optim.SGD(opacus_model.parameters(), lr=1.0), noise_multiplier=noise,
                            max_grad_norm=clip, expected_batch_size=expected,
                            generator=torch.Generator().manual_seed(11))
    if rows:
        nn.CrossEntropyLoss()(wrapped(x), y).backward()
    else:  # Opacus' own loader hands it an empty batch as zero-length per-sample gradients
        for p in opacus_model.parameters():
            p.grad_sample = torch.zeros((0, *p.shape))
    optimizer.pre_step()
    assert_close([p.grad for p in ours_model.parameters()], [p.grad for p in opacus_model.parameters()], 1e-6)
    if rows == 0 and noise == 0:
        assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in ours_model.parameters())
    if rows == 0 and noise > 0:
        assert all(p.grad.abs().sum() > 0 for p in ours_model.parameters())  # pure noise
    wrapped._close()


def test_noise_is_gaussian_with_std_sigma_c_over_the_expected_batch() -> None:
    model = nn.Sequential(nn.Linear(400, 250))
    noise, clip, expected = 2.0, 0.5, 4
    gradient = mechanism(model, noise, clip, expected, seed=0)
    gradient.step(BookKeeping(model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=clip),
                  torch.zeros(0, 400), torch.zeros(0, dtype=torch.long))
    values = torch.cat([p.grad.flatten() for p in model.parameters()]).double().numpy()
    std = noise * clip / expected
    assert stats.kstest(values, stats.norm(scale=std).cdf).pvalue > 1e-3
    # Controls: the same test tells a 6% larger std, or the noise left undivided, apart.
    assert stats.kstest(values, stats.norm(scale=std * 1.06).cdf).pvalue < 1e-6
    assert stats.kstest(values, stats.norm(scale=noise * clip).cdf).pvalue < 1e-6


def test_noise_comes_from_the_generator_only_and_zero_noise_draws_nothing() -> None:
    def update(seed: int, noise: float = 1.0) -> torch.Tensor:
        model = random_model(7, 5, 3, torch.float32)
        x, y = batch(8, 5, "cross_entropy", torch.float32, 7)
        gradient = mechanism(model, noise, 1.0, 8, seed)
        gradient.step(BookKeeping(model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=1.0), x, y)
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    torch.manual_seed(0)
    first = update(1)
    torch.manual_seed(1)  # torch's global generator plays no part
    assert torch.equal(update(1), first) and not torch.equal(update(2), first)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    model = random_model(7, 5, 3, torch.float32)
    GaussianMechanism(list(model.parameters()), noise_multiplier=0.0, max_grad_norm=1.0,
                      expected_batch_size=8, generator=generator).step(
        BookKeeping(model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=1.0),
        *batch(8, 5, "cross_entropy", torch.float32, 7))
    assert torch.equal(generator.get_state(), state)
    assert torch.equal(update(1, noise=0.0), update(2, noise=0.0))


def test_each_step_makes_fresh_gradients_and_clearing_drops_them() -> None:
    model = random_model(8, 5, 3, torch.float32)
    gradient = mechanism(model, 1.0, 1.0, 4, seed=0)
    clipper = BookKeeping(model, nn.CrossEntropyLoss(reduction="sum"), max_grad_norm=1.0)
    gradient.step(clipper, *batch(4, 5, "cross_entropy", torch.float32, 8))
    first = [p.grad for p in model.parameters()]
    assert all(g is not None and g.shape == p.shape for g, p in zip(first, model.parameters()))
    gradient.step(clipper, *batch(4, 5, "cross_entropy", torch.float32, 9))
    assert all(p.grad is not g for p, g in zip(model.parameters(), first))  # nothing accumulates
    gradient.clear()
    assert all(p.grad is None for p in model.parameters())
