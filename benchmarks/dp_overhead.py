"""Epoch time of DP training against plain PyTorch, in one process, on the same data.

Run: `.venv/bin/python benchmarks/dp_overhead.py` (`--json` for scripts, `--device cuda`
for a GPU, `--repeats`, `--rows`, `--batch` to change the workload).

For each of two MLPs (about 20.9k and 280k parameters, 64 inputs, 2 classes) it trains
for one epoch, ceil(rows / batch) steps, from the same initial weights on the same
synthetic rows, with:

(a) plain PyTorch: shuffled fixed-size batches, SGD, no clipping, no noise;
(b) Opacus' default path: `make_private(grad_sample_mode="hooks")`, per-sample gradients
    materialised by hooks, Poisson batches at q = batch / rows;
(c) the runner's DP path: `compute_to_data.training.PrivateLoop` (what `fit_private`, and
    so `train()`, runs on private data): `make_private` with ghost clipping and Poisson
    batches at exactly q.

Every variant reads batches from in-memory tensors (no DataLoader), so the figures compare
the training steps themselves; the one-off setup (wrapping the model, the optimizer) is
not timed. Each figure is the median wall time of `--repeats` epochs after a warm-up
round, the variants taking turns; the ratios divide by plain PyTorch's median.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from opacus import PrivacyEngine
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exchange.ml.accounting import DpParams, sample_rate_for, steps_per_epoch  # noqa: E402
from exchange.ml.spec import ModelSpec  # noqa: E402
from compute_to_data.training import PrivateLoop, quiet  # noqa: E402

INPUTS = 64
MODELS = {"MLP 20.9k": (128, 96), "MLP 280k": (512, 480)}
# DESIGN.md section 8: Opacus hooks / ghost clipping on CPU, as published.
REFERENCE = {"MLP 20.9k": ("7.6×", "2.1×"), "MLP 280k": ("58.7×", "2.8×")}
NOISE, CLIP, LR = 1.0, 1.0, 0.1


def make_spec(hidden: tuple[int, ...], batch: int) -> ModelSpec:
    layers: list[dict] = []
    for width in hidden:
        layers += [{"type": "Linear", "out_features": width}, {"type": "ReLU"}]
    layers.append({"type": "Linear", "out_features": 2})
    return ModelSpec.parse(
        {
            "task": "classification", "features": [f"x{i}" for i in range(INPUTS)],
            "target": "y", "layers": layers, "loss": "cross_entropy", "optimizer": "sgd",
            "learning_rate": LR, "expected_batch_size": batch, "epochs": 1,
            "dp": {"noise_multiplier": NOISE, "delta": 1e-5, "max_grad_norm": CLIP},
        }
    )


def make_model(hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = INPUTS
    for out in hidden:
        layers += [nn.Linear(width, out), nn.ReLU()]
        width = out
    layers.append(nn.Linear(width, 2))
    return nn.Sequential(*layers)


Loop = Callable[[], None]


def plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
          device: torch.device) -> Loop:
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))

    def loop() -> None:
        for step in range(steps):
            index = order[(step * batch) % len(x):][:batch].to(device)
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x.index_select(0, index)), y.index_select(0, index)).backward()
            optimizer.step()

    return loop


def opacus_hooks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                 device: torch.device) -> Loop:
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch)
    private, optimizer, _ = PrivacyEngine(accountant="rdp").make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=NOISE,
        max_grad_norm=CLIP, poisson_sampling=True, grad_sample_mode="hooks",
    )
    criterion = nn.CrossEntropyLoss()
    sampler = UniformWithReplacementSampler(
        num_samples=len(x), sample_rate=sample_rate_for(batch, len(x)),
        generator=torch.Generator().manual_seed(0), steps=steps,
    )

    def loop() -> None:
        for indices in sampler:
            index = torch.as_tensor(indices, dtype=torch.long).to(device)
            optimizer.zero_grad(set_to_none=True)
            criterion(private(x.index_select(0, index)), y.index_select(0, index)).backward()
            optimizer.step()

    return loop


def runner_ghost(spec: ModelSpec) -> Callable[..., Loop]:
    def prepare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                device: torch.device) -> Loop:
        params = DpParams(noise_multiplier=NOISE, sample_rate=sample_rate_for(batch, len(x)),
                          max_grad_norm=CLIP, epochs=1, steps=steps, delta=1e-5)
        return PrivateLoop(model, x, y, spec=spec, params=params, device=device,
                           sample_seed=0, noise_seed=1).run

    return prepare


def timed(prepare: Callable[..., Loop], initial: dict[str, torch.Tensor], hidden: tuple[int, ...],
          x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, device: torch.device) -> float:
    """Wall time of one epoch's steps, from a fresh copy of the initial weights (setup untimed)."""
    model = make_model(hidden)
    model.load_state_dict(initial)
    loop = prepare(model, x, y, batch, steps, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loop()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(rows: int, batch: int, repeats: int, device: torch.device) -> dict:
    features, labels = make_classification(
        n_samples=rows, n_features=INPUTS, n_informative=16, random_state=0
    )
    x = torch.tensor(features, dtype=torch.float32, device=device)
    y = torch.tensor(labels, dtype=torch.long, device=device)
    steps = steps_per_epoch(sample_rate_for(batch, rows))
    results = {}
    for name, hidden in MODELS.items():
        torch.manual_seed(0)
        initial = make_model(hidden).state_dict()
        params = sum(t.numel() for t in initial.values())
        spec = make_spec(hidden, batch)
        variants = {
            "plain": plain, "opacus_hooks": opacus_hooks, "runner_ghost": runner_ghost(spec),
        }
        times: dict[str, list[float]] = {label: [] for label in variants}
        # Round-robin, after one warm-up round, so that a busy moment on the machine hits
        # every variant rather than one.
        for attempt in range(repeats + 1):
            for label, run in variants.items():
                seconds = timed(run, initial, hidden, x, y, batch, steps, device)
                if attempt:
                    times[label].append(seconds)
        medians = {label: statistics.median(values) for label, values in times.items()}
        results[name] = {
            "parameters": params,
            "seconds_per_epoch": medians,
            "ratio_vs_plain": {k: v / medians["plain"] for k, v in medians.items()},
        }
    return {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
        ),
        "threads": torch.get_num_threads(),
        "rows": rows, "batch": batch, "steps_per_epoch": steps, "repeats": repeats,
        "torch": torch.__version__,
        "opacus": __import__("opacus").__version__,
        "models": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = measure(args.rows, args.batch, args.repeats, device)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    table = Table(
        title=f"DP training, epoch time vs plain PyTorch ({report['device']}, "
        f"{report['threads']} threads; {args.rows} rows, batch {args.batch}, "
        f"{report['steps_per_epoch']} steps; median of {args.repeats})"
    )
    for column in ("model", "params", "plain s/epoch", "Opacus hooks", "runner (ghost)",
                   "DESIGN §8 hooks / ghost"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, result in report["models"].items():
        seconds, ratio = result["seconds_per_epoch"], result["ratio_vs_plain"]
        table.add_row(
            name, f"{result['parameters']:,}", f"{seconds['plain']:.4f}",
            f"{ratio['opacus_hooks']:.1f}× ({seconds['opacus_hooks']:.3f}s)",
            f"{ratio['runner_ghost']:.1f}× ({seconds['runner_ghost']:.3f}s)",
            " / ".join(REFERENCE[name]),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
