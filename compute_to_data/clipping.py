"""Per-sample clipping by book-keeping, and the Gaussian mechanism on the clipped sum.

DP-SGD needs every row's gradient norm before the rows' gradients are summed. Opacus'
ghost clipping gets the norms from one backward pass and the clipped sum from a second,
reweighted one. Book-keeping (Bu et al., "Differentially private optimization on large
model at small cost", ICML 2023) keeps what a single backward pass already has in hand,
each parametrised layer's input a (activations) and output gradient b, and builds both the
norms and the clipped sum from them:

- Linear on 2-D inputs: row i's weight gradient is the outer product b_i a_iᵀ, so its
  squared norm is ||a_i||²·||b_i||², plus ||b_i||² for the bias; the clipped sum
  Σ_i c_i b_i a_iᵀ is one matmul, (c ⊙ b)ᵀ a, the very one plain training does.
- LayerNorm: row i's gradients are b_i ⊙ x̂_i (weight) and b_i (bias), x̂_i the row
  normalised without its affine parameters.
- ReLU, GELU, Tanh and Sigmoid have no parameters.

The backward pass asks autograd for the layer outputs' gradients only, so it never forms
the parameters' unclipped gradients: the work is plain training's plus O(batch × widths).
Memory beyond plain training's is the output gradients b, held until the norms are known;
nothing else the size of a layer's activations is made (the norms are reductions, b is
scaled in place, and a ReLU after the first layer is undone in place rather than by autograd).
Clip factors are Opacus' own: c_i = min(1, C / (||g_i|| + 1e-6)), ||g_i|| over all
parameters. Nothing per-sample is stored on the model: a, b and the norms live in one
call's locals.

`GaussianMechanism` then makes the update Opacus' DPOptimizer makes: the clipped sum plus
N(0, σ²C²) noise on every coordinate, divided by the expected batch size (public), never
by the number of rows drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

# Modules with no parameters whose output row i depends on input row i alone.
_ROWWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid)
# Opacus adds this to the norm before dividing (DPOptimizer, ghost clipping alike).
NORM_EPS = 1e-6


# ---------------------------------------------------------------------------------------
# Kernels: per-sample squared norms and clipped sums of one layer's gradients


def linear_norms_sq(a: torch.Tensor, b: torch.Tensor, *, bias: bool) -> torch.Tensor:
    """Per-row squared norm of a Linear layer's gradients: input a (B×in), output grad b (B×out)."""
    a_sq, b_sq = rows_norm_sq(a), rows_norm_sq(b)
    return torch.addcmul(b_sq, a_sq, b_sq) if bias else a_sq.mul_(b_sq)


def rows_norm_sq(x: torch.Tensor) -> torch.Tensor:
    """Each row's squared norm, by a reduction that makes no B×width temporary (as vecdot does)."""
    return torch.linalg.vector_norm(x, dim=1).square_()


def linear_add_clipped(
    weight_grad: torch.Tensor,
    bias_grad: torch.Tensor | None,
    a: torch.Tensor,
    b: torch.Tensor,
    factors: torch.Tensor,
    alpha: float,
    *,
    scratch_b: bool = False,
) -> None:
    """weight_grad += α Σ_i c_i b_i a_iᵀ and bias_grad += α Σ_i c_i b_i, in place.

    With `scratch_b`, b is the caller's to overwrite: it is scaled in place, so the sum
    needs no temporary (what bounds peak memory, not the multiplications, matters here).
    """
    if bias_grad is not None:
        bias_grad.addmv_(b.t(), factors, alpha=alpha)
    if scratch_b:
        weight_grad.addmm_(b.mul_(factors.unsqueeze(1)).t(), a, alpha=alpha)
    # Otherwise scale a copy of whichever side is narrower: fewer multiplications.
    elif b.shape[1] > a.shape[1]:
        weight_grad.addmm_(b.t(), a * factors.unsqueeze(1), alpha=alpha)
    else:
        weight_grad.addmm_((b * factors.unsqueeze(1)).t(), a, alpha=alpha)


def layer_norm_normalised(layer: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """x̂: the rows of x normalised as `layer` does, before its affine weight and bias."""
    with torch.no_grad():
        return F.layer_norm(x, layer.normalized_shape, None, None, layer.eps)


def layer_norm_norms_sq(x_hat: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-row squared norm of a LayerNorm's weight and bias gradients, the weight's rows b ⊙ x̂)."""
    weight_rows = b * x_hat
    norms = rows_norm_sq(weight_rows).add_(rows_norm_sq(b))
    return norms, weight_rows


def layer_norm_add_clipped(
    weight_grad: torch.Tensor,
    bias_grad: torch.Tensor,
    weight_rows: torch.Tensor,
    b: torch.Tensor,
    factors: torch.Tensor,
    alpha: float,
) -> None:
    """weight_grad += α Σ_i c_i (b_i ⊙ x̂_i) and bias_grad += α Σ_i c_i b_i, in place."""
    weight_grad.addmv_(weight_rows.t(), factors, alpha=alpha)
    bias_grad.addmv_(b.t(), factors, alpha=alpha)


def clip_factors(norms: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
    """Opacus' per-sample clip factors, min(1, C / (norm + 1e-6)), in place in `norms`.

    Bit for bit Opacus' figures: torch evaluates `C / tensor` as `tensor.reciprocal() * C`.
    """
    return norms.add_(NORM_EPS).reciprocal_().mul_(max_grad_norm).clamp_(max=1.0)


# ---------------------------------------------------------------------------------------
# A whole model


def rowwise_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order (nested Sequentials flattened); ValueError for anything else.

    Each parametrised layer must appear once: a layer applied twice would add two terms to
    a row's gradient, and the per-layer norms above would no longer be that gradient's.
    """
    layers: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        if type(module) is nn.Sequential:
            for child in module:
                walk(child)
        elif type(module) in (nn.Linear, nn.LayerNorm) or type(module) in _ROWWISE:
            layers.append(module)
        else:
            raise ValueError(f"book-keeping clipping has no kernel for {type(module).__name__}")

    walk(model)
    parametrised = [layer for layer in layers if isinstance(layer, (nn.Linear, nn.LayerNorm))]
    if len({id(layer) for layer in parametrised}) != len(parametrised):
        raise ValueError("a parametrised layer appears more than once")
    for layer in parametrised:
        if isinstance(layer, nn.LayerNorm) and (
            len(layer.normalized_shape) != 1 or layer.weight is None or layer.bias is None
        ):
            raise ValueError("LayerNorm must normalise the last dimension with weight and bias")
    return layers


class BookKeeping:
    """Per-sample clipped gradient sums of a model of allow-listed layers.

    `loss` must sum over rows (reduction="sum"), so that the output gradients are the rows'
    own; `squeeze` drops the output's last dimension first (one output against one target
    per row: bce, mse). `add_clipped_sum` adds α Σ_i c_i ∇_θ loss_i, parameter by
    parameter, to the tensors `into` gives, with one forward and one backward pass.
    """

    def __init__(
        self, model: nn.Module, loss: nn.Module, *, max_grad_norm: float, squeeze: bool = False
    ) -> None:
        if getattr(loss, "reduction", None) != "sum":
            raise ValueError("the loss must sum over rows (reduction='sum')")
        self.layers = rowwise_layers(model)
        self.loss = loss
        self.squeeze = squeeze
        self.max_grad_norm = max_grad_norm
        # The forward pass, each layer with whether it has parameters; then, per
        # parametrised layer: (the layer, whether it is a Linear, whether it has a bias).
        self._forward = [(layer, not isinstance(layer, _ROWWISE)) for layer in self.layers]
        parametrised = [layer for layer, has in self._forward if has]
        if not parametrised:
            raise ValueError("the model has no parameters to train")
        self._kernels = [
            (layer, isinstance(layer, nn.Linear), layer.bias is not None) for layer in parametrised
        ]
        # Their weights and biases, in that order, must be the model's parameters in
        # `parameters()` order: `add_clipped_sum` asks for its targets in that order.
        in_layer_order = [p for layer in parametrised for p in (layer.weight, layer.bias) if p is not None]
        if [id(p) for p in in_layer_order] != [id(p) for p in model.parameters()]:
            raise ValueError("the model's parameters are not its layers' weights and biases in order")
        # Where a ReLU directly follows the first parametrised layer: autograd would make that
        # layer's b as a new tensor from the gradient after the ReLU, the two held at once (at
        # the first, widest layers: the step's peak memory). Nothing upstream needs the
        # ReLU's backward, so the gradient is taken after it and masked in place instead.
        after_first = next(i for i, (_, has) in enumerate(self._forward) if has) + 1
        self._relu_after_first = (
            after_first if after_first < len(self.layers) and type(self.layers[after_first]) is nn.ReLU
            else -1
        )

    def add_clipped_sum(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        into: Callable[[int], torch.Tensor] | Sequence[torch.Tensor],
        alpha: float,
    ) -> None:
        """For each parameter i, in order: `into(i)` (or `into[i]`) += α Σ_rows c_row g_row,i.

        `into` is called once per parameter, after the norms are known and just before that
        parameter's sum is added, so a caller can allocate the target then; each layer's
        activations and output gradients are let go as soon as its sums are done.
        """
        target = into if callable(into) else into.__getitem__
        if inputs.dim() != 2:
            raise ValueError("book-keeping clipping takes a batch of rows (a 2-D input)")
        # Per parametrised layer: its input (the activations a, which autograd keeps for
        # the backward pass anyway) and where its output enters the graph. Asking for the
        # gradient at that edge rather than at the output tensor lets the output be freed,
        # as in plain training.
        layer_inputs: list[torch.Tensor] = []
        layer_outputs: list[GradientEdge] = []
        relu_out: torch.Tensor | None = None
        x = inputs
        for i, (layer, parametrised) in enumerate(self._forward):
            out = layer(x)
            if parametrised:
                layer_inputs.append(x)
                layer_outputs.append(get_gradient_edge(out))
            elif i == self._relu_after_first:
                relu_out = out
                layer_outputs[0] = get_gradient_edge(out)
            x = out
        if self.squeeze:
            x = x.squeeze(-1)
        # The layer outputs' gradients only: autograd skips every parameter's own gradient.
        output_grads = list(torch.autograd.grad(self.loss(x, targets), layer_outputs))
        del x, out

        with torch.no_grad():  # nothing below is differentiated: record no graph
            if relu_out is not None:  # the ReLU's backward, autograd's own kernel, in place
                grad = output_grads[0]
                torch.ops.aten.threshold_backward.grad_input(grad, relu_out, 0.0, grad_input=grad)
                del relu_out, grad
            norms: torch.Tensor | None = None
            for k, (layer, linear, bias) in enumerate(self._kernels):
                if linear:
                    squares = linear_norms_sq(layer_inputs[k], output_grads[k], bias=bias)
                else:
                    # LayerNorm's sums are built from b ⊙ x̂: it takes a's place.
                    x_hat = layer_norm_normalised(layer, layer_inputs[k])
                    squares, layer_inputs[k] = layer_norm_norms_sq(x_hat, output_grads[k])
                norms = squares if norms is None else norms.add_(squares)
            assert norms is not None
            factors = clip_factors(norms.sqrt_(), self.max_grad_norm)

            # Taken off the lists one layer at a time, so each is freed once its sums are done.
            layer_inputs.reverse()
            output_grads.reverse()
            slot = 0
            for _, linear, bias in self._kernels:
                rows, b = layer_inputs.pop(), output_grads.pop()
                weight_sum = target(slot)
                bias_sum = target(slot + 1) if bias else None
                slot += 2 if bias else 1
                if linear:
                    linear_add_clipped(weight_sum, bias_sum, rows, b, factors, alpha, scratch_b=True)
                else:
                    layer_norm_add_clipped(weight_sum, bias_sum, rows, b, factors, alpha)  # type: ignore[arg-type]
                del rows, b, weight_sum, bias_sum


class GaussianMechanism:
    """Writes each step's private gradient into the parameters' `.grad`.

    grad = (Σ_i c_i g_i + N(0, σ²C² I)) / expected_batch_size, the update Opacus'
    DPOptimizer (ghost clipping) makes. `parameters` are the model's, in `parameters()`
    order (the order `BookKeeping` numbers them in). The noise is drawn per parameter, in
    that order, from `generator` (on the parameters' device), with the call Opacus makes.
    Each step's gradients are fresh tensors, made parameter by parameter as the clipped
    sums are ready, so they never all coexist with the whole batch's activations; a step
    first drops the last step's, as plain training's `zero_grad(set_to_none=True)` does,
    and `clear` drops them at the end.
    """

    def __init__(
        self,
        parameters: Sequence[nn.Parameter],
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        generator: torch.Generator,
    ) -> None:
        if expected_batch_size <= 0:
            raise ValueError("expected_batch_size must be positive")
        if noise_multiplier < 0 or max_grad_norm <= 0:
            raise ValueError("the noise multiplier must be non-negative and the clip norm positive")
        self.parameters = list(parameters)
        self.scale = 1.0 / expected_batch_size
        # N(0, σ²C²) / E[B] drawn directly as N(0, (σC / E[B])²): one pass over each tensor.
        self.std = noise_multiplier * max_grad_norm * self.scale
        self.generator = generator
        self._made = 0  # gradients made in this step

    def noise(self, index: int) -> torch.Tensor:
        """Parameter `index`'s noise, N(0, (σC / E[B])²), as its new `.grad`."""
        param = self.parameters[index]
        if self.std == 0:  # as Opacus: no noise, and no draw from the generator
            grad = torch.zeros(param.shape, dtype=param.dtype, device=param.device)
        else:  # Opacus' _generate_noise call: the same draws, scaled once rather than twice
            grad = torch.normal(0.0, self.std, size=param.shape, generator=self.generator,
                                dtype=param.dtype, device=param.device)
        param.grad = grad
        self._made += 1
        return grad

    def step(self, clipping: BookKeeping, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.clear()  # the last step's gradients go before this step's forward pass
        self._made = 0
        clipping.add_clipped_sum(inputs, targets, self.noise, self.scale)
        if self._made != len(self.parameters):
            raise RuntimeError("the clipping did not give every parameter a gradient")

    def clear(self) -> None:
        for param in self.parameters:
            param.grad = None
