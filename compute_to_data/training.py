"""Private training: a spec, the private table and its schema in; DP-trained parameters out.

The runner owns the loop (DESIGN.md section 6). What it does, in order:

1. Public checks, before any private row is read: the spec against the schema, and the DP
   parameters from the spec and the dataset's public (DP) row count (`DpParams.for_spec`):
   sample rate q = expected_batch_size / rows on the 1e-9 grid, steps = epochs × ceil(1/q),
   and the noise multiplier (given, or the smallest on the 1e-6 grid that reaches the
   target ε). The privacy cost (curve and ε) is fixed here, before training.
2. Private stages, each wrapped so that any failure becomes a TrainingError naming the
   stage only, with no cause attached (no message, no traceback, no `__context__`):
   check the table's columns and kinds against the declared schema, encode it (every row:
   values clipped to the declared ranges, undeclared labels to their fallback, missing
   targets filled; no row is dropped), train, copy the parameters out.
3. Training is DP-SGD as Opacus' DPOptimizer runs it, in three parts of our own, each
   tested against Opacus: batches by Poisson sampling at exactly q for exactly `steps`
   steps (`sampling.PoissonSampler`: each row in independently with probability q, in
   O(batch) per step rather than Opacus' O(rows)); per-sample clipping at the spec's clip
   norm by book-keeping (`clipping.BookKeeping`: one forward and one backward pass, the
   rows' gradient norms from the layers' inputs and output gradients, the clipped sum as
   the same matmuls plain training does); Gaussian noise N(0, σ²C²) at the fixed noise
   multiplier (`clipping.GaussianMechanism`). An empty batch is still a step, whose
   update is pure noise. The update is divided by the spec's expected batch size
   (public), never by a count of rows. Each step gathers its own rows (`index_select`);
   the table is never copied per step, so memory is bounded by the batch and the model.
   The privacy accounting is unchanged: Opacus' RDP accountant, through `DpParams`.
4. The result holds a *fresh* model with the trained parameter values copied in. Nothing
   per-sample is ever stored on the trained module (activations, output gradients and
   norms live in one step's locals, and the last noisy gradient is dropped), but it is the
   object that saw the rows, so it does not leave. Nothing else computed on private data
   is kept: no loss, no metrics, no logs (warnings and Opacus' log lines are silenced
   while training).

Randomness: with `seed=None` (what the runner uses) the sampling generator (numpy's
PCG64) and the noise generator (torch's, on the training device: the CPU's or CUDA's) are
seeded from the operating system's entropy and the seeds are never recorded; knowing them
would let anyone subtract the noise. A fixed seed makes a run reproducible on the CPU and is
for tests and benchmarks only; `TrainingResult.seeded` says which it was. The noise is
torch's ordinary Gaussian sampler, as in Opacus' default mode: Opacus' `secure_mode` (a
CSPRNG and protection against floating-point attacks on the Gaussian sampler) needs
torchcsprng, which is not available for this torch, so it is not used.
"""

from __future__ import annotations

import logging
import platform
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import opacus
import pandas as pd
import torch
from torch import nn

from exchange.ml.accounting import (
    ORDERS_FIXED,
    DpParams,
    DpParamsOnchain,
    epsilon,
    epsilon_fixed,
    fixed_curve,
)
from exchange.ml.weights import parameters_of
from exchange.ml.model import build_model, encode_features, encode_target, validate_module
from exchange.ml.spec import ModelSpec
from exchange.ml.streamed import EncodedTable
from exchange.datasets.schema import DatasetSchema, check_kinds
from exchange.errors import PrivacyError, SpecError, TrainingError
from exchange.federated.arrays import load_arrays
from compute_to_data.clipping import BookKeeping, GaussianMechanism
from compute_to_data.sampling import PoissonSampler

T = TypeVar("T")

_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "bce": nn.BCEWithLogitsLoss,
    "mse": nn.MSELoss,
}
_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
}


@dataclass(frozen=True)
class TrainingResult:
    """What a private training run releases: DP-trained parameters and public facts about it.

    `module` is a fresh model built from the spec with the trained values copied in; only its
    parameters matter (export them with `exchange.ml.weights.export_weights`). `epsilon`
    is `accounting.epsilon(curve_fixed, delta)`: the figure the ledger records.
    """

    module: nn.Module
    spec_hash: str
    dp: DpParams
    curve: tuple[float, ...]
    curve_fixed: tuple[int, ...]
    epsilon: float
    delta: float
    steps: int
    sample_rate: float
    device: str
    device_name: str
    versions: dict[str, str]
    seeded: bool

    def provenance(self) -> dict[str, Any]:
        """The run's fields of a provenance record, as `exchange.provenance` names them.

        Fixed point as on chain: `dp` is ComputeJobs' DpParams struct, `rdp_orders` in
        thousandths, `rdp_curve` in billionths (rounded up), `epsilon` in millionths
        (rounded up), `delta` in 1e-18 units. The runner adds the job, dataset, sandbox and
        weights fields.
        """
        device = self.device
        if self.device.startswith("cuda"):
            device = f"{self.device} ({self.device_name})"
        return {
            "spec_hash": self.spec_hash,
            "dp": self.dp.to_onchain().model_dump(),
            "accountant": "rdp",
            "rdp_orders": list(ORDERS_FIXED),
            "rdp_curve": list(self.curve_fixed),
            "epsilon": epsilon_fixed(self.curve_fixed, self.delta),
            "delta": self.dp.delta_fixed,
            "library_versions": dict(self.versions),
            "device": device,
        }


def train(
    spec: ModelSpec,
    frame: pd.DataFrame | EncodedTable,
    schema: DatasetSchema,
    device: str | torch.device | None = None,
    *,
    public_rows: int,
    seed: int | None = None,
    expected_params: DpParams | DpParamsOnchain | None = None,
    on_step: Callable[[int], None] | None = None,
    start_from: Sequence[np.ndarray] | None = None,
) -> TrainingResult:
    """Train `spec` on the private `frame` with differential privacy.

    `frame`: the whole table, or the table encoded as it streamed by (the sandbox's job,
    exchange.ml.streamed), which goes through the same stages. `on_step` is passed on to
    `fit_private`. `public_rows`: the dataset's public (DP) row count, which sets q; never
    the table's own length. `device`: None picks CUDA when available, else the CPU.
    `seed`: None in production (see the module doc). `expected_params`: the DP parameters
    recorded with the job (the on-chain struct, or a DpParams, which also fixes δ);
    training is refused (PrivacyError) unless they are exactly the ones the spec gives on
    that row count, so the ledger's charge is what is run. A federated spec trains one of
    its rounds (`DpParams.per_round`: the same σ, q and C, the round's share of the steps)
    from `start_from`, the round's model (public: the aggregate the chain committed); the
    result's DP figures are then the round's.

    Raises SpecError or PrivacyError for problems with public inputs (before reading any
    row), TrainingError (stage only) for anything that goes wrong with the private data.
    """
    spec.check_against(schema)
    params = DpParams.for_spec(spec, public_rows)
    if expected_params is not None:
        if isinstance(expected_params, DpParams):
            matches = expected_params == params
        else:
            matches = expected_params == params.to_onchain()
        if not matches:
            raise PrivacyError(
                "The job's DP parameters are not the ones its spec gives on this dataset; "
                "refusing to train."
            )
    if (spec.federation is None) != (start_from is None):
        raise SpecError("A federated spec trains from the round's model, and only a federated spec does.")
    params = params.per_round(spec.rounds)
    curve = params.curve()
    curve_fixed = fixed_curve(curve)
    eps = epsilon(curve_fixed, params.delta)
    target = resolve_device(device)
    init_seed, sample_seed, noise_seed = _seeds(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = build_model(spec, schema)
    if start_from is not None:
        load_arrays(model, start_from)  # WeightsError (public input) before any row is read

    with quiet():
        shape = frame.kinds_frame() if isinstance(frame, EncodedTable) else frame
        _guarded("checking the table against the declared schema", check_kinds, shape, schema)
        features, targets = _guarded("encoding the data", _encode, spec, schema, frame)
        trained = _guarded(
            "training", fit_private, model, features, targets, spec=spec, params=params,
            device=target, sample_seed=sample_seed, noise_seed=noise_seed, on_step=on_step,
        )
        del features, targets
        module = _guarded("collecting the parameters", _fresh_copy, spec, schema, trained)
        del trained, model

    return TrainingResult(
        module=module,
        spec_hash=spec.spec_hash(),
        dp=params,
        curve=curve,
        curve_fixed=curve_fixed,
        epsilon=eps,
        delta=params.delta,
        steps=params.steps,
        sample_rate=params.sample_rate,
        device=str(target),
        device_name=device_name(target),
        versions=library_versions(),
        seeded=seed is not None,
    )


def fit_private(
    model: nn.Module,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    spec: ModelSpec,
    params: DpParams,
    device: torch.device,
    sample_seed: int,
    noise_seed: int,
    on_step: Callable[[int], None] | None = None,
) -> nn.Module:
    """The runner's DP loop: exactly `params.steps` Poisson-sampled, clipped, noised steps.

    Returns the trained model itself (on `device`, gradients cleared). Release only a fresh
    copy of its parameters (`train` does): the module object is the one that saw the rows.
    `on_step`, if given, is called with the number of steps done after each optimizer step.
    """
    loop = PrivateLoop(
        model, features, targets, spec=spec, params=params, device=device,
        sample_seed=sample_seed, noise_seed=noise_seed, on_step=on_step,
    )
    loop.run()
    return loop.module


class PrivateLoop:
    """One run set up (construction), then the steps themselves (`run`).

    Split in two so the DP-overhead benchmark can time the steps alone; `fit_private` is
    the one way the runner uses it. The parts: `PoissonSampler` draws each step's rows,
    `BookKeeping` computes their clipped gradient sum, `GaussianMechanism` adds the noise
    and divides by the expected batch size, and the spec's optimizer steps. `on_step`
    (progress) gets the number of steps done after each optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        features: torch.Tensor,
        targets: torch.Tensor,
        *,
        spec: ModelSpec,
        params: DpParams,
        device: torch.device,
        sample_seed: int,
        noise_seed: int,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        validate_module(model)
        self.module = model.to(device)
        self.module.train()
        self.optimizer = _OPTIMIZERS[spec.optimizer](self.module.parameters(), lr=spec.learning_rate)
        self.clipping = BookKeeping(
            self.module, _LOSSES[spec.loss](reduction="sum"),
            max_grad_norm=params.max_grad_norm, squeeze=spec.loss in ("bce", "mse"),
        )
        # The update is the noisy sum divided by a public constant, not by a count of rows.
        self.mechanism = GaussianMechanism(
            list(self.module.parameters()),
            noise_multiplier=params.noise_multiplier,
            max_grad_norm=params.max_grad_norm,
            expected_batch_size=spec.expected_batch_size,
            generator=torch.Generator(device=device).manual_seed(noise_seed),
        )
        self.sampler = PoissonSampler(
            num_samples=len(features),
            sample_rate=params.sample_rate,
            steps=params.steps,
            generator=np.random.Generator(np.random.PCG64(sample_seed)),
        )
        # On the CPU `.to` is the table itself; on a GPU one copy, once. Each step gathers
        # only its own rows.
        self.inputs, self.labels = features.to(device), targets.to(device)
        self.device = device
        self.steps = params.steps
        self.on_step = on_step

    def run(self) -> None:
        taken = 0
        try:
            for indices in self.sampler:
                index = indices.to(self.device, non_blocking=True)
                self.mechanism.step(
                    self.clipping,
                    self.inputs.index_select(0, index),
                    self.labels.index_select(0, index),
                )
                self.optimizer.step()
                taken += 1
                if self.on_step is not None:
                    self.on_step(taken)
        finally:
            self.mechanism.clear()  # the last (noisy) gradients do not stay on the module
        if taken != self.steps:
            raise RuntimeError("the sampler did not produce the planned number of steps")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """CUDA when available, else the CPU; an explicit device must be a usable cpu/cuda one."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise TrainingError(f"'{device}' is not a device name; use cpu or cuda.") from None
    if chosen.type == "cpu":
        return torch.device("cpu")
    if chosen.type != "cuda":
        raise TrainingError(f"The runner trains on cpu or cuda, not {chosen.type}.")
    if not torch.cuda.is_available():
        raise TrainingError("CUDA was asked for but no GPU is available; use the cpu.")
    index = torch.cuda.current_device() if chosen.index is None else chosen.index
    if index >= torch.cuda.device_count():
        raise TrainingError(f"There is no GPU cuda:{index}; use cuda or cuda:0.")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opacus": opacus.__version__,
    }


@contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings and Opacus' log lines (they are noise here, and must stay out of logs)."""
    logger = logging.getLogger("opacus")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _guarded(stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one private stage; any failure becomes a TrainingError naming only the stage.

    The error is raised outside the `except` block so it carries no `__context__`: the
    original exception (whose message or traceback locals could hold private values) is
    dropped entirely.
    """
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - deliberately opaque
        pass
    raise TrainingError(
        f"Training failed while {stage}; the cause is withheld because it could reveal "
        "private data."
    )


def _encode(
    spec: ModelSpec, schema: DatasetSchema, frame: pd.DataFrame | EncodedTable
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(frame, EncodedTable):
        return frame.tensors()
    targets, _ = encode_target(spec, schema, frame, fill_missing=True)
    return encode_features(spec, schema, frame).contiguous(), targets


def _fresh_copy(spec: ModelSpec, schema: DatasetSchema, trained: nn.Module) -> nn.Module:
    values = parameters_of(trained)
    module = build_model(spec, schema)
    module.load_state_dict(values, strict=True)
    module.eval()
    return module


def _seeds(seed: int | None) -> tuple[int, int, int]:
    if seed is None:
        return secrets.randbits(63), secrets.randbits(63), secrets.randbits(63)
    state = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    return tuple(int(s) >> 1 for s in state)  # type: ignore[return-value]
