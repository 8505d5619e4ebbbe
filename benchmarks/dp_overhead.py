"""Epoch time and peak memory of DP training against plain PyTorch, in one process, on the same data.

Run: `.venv/bin/python benchmarks/dp_overhead.py --threads 1` (`--json` for scripts,
`--device cuda` for a GPU, `--repeats`, `--rows`, `--batch`, `--models`, `--variants` to
change the workload, `--hooks-repeats` to time Opacus' hooks (minutes an epoch on the
largest model) fewer times, `--clock cpu` for CPU rather than wall seconds on a shared
machine; `--sampling` times the Poisson samplers alone instead).

For each of three MLPs (about 20.9k, 280k and 2.95M parameters, 64 inputs, 2 classes) it
trains for one epoch, ceil(rows / batch) steps, from the same initial weights on the same
synthetic rows, with:

(a) plain PyTorch: shuffled fixed-size batches, SGD, no clipping, no noise;
(b) Opacus' default path: `make_private(grad_sample_mode="hooks")`, per-sample gradients
    materialised by hooks, Poisson batches from Opacus' sampler at q = batch / rows;
(c) Opacus' ghost clipping: `make_private(grad_sample_mode="ghost")` with Opacus' sampler
    (the runner's loop before book-keeping): two backward passes a step;
(d) the runner's DP path: `compute_to_data.training.PrivateLoop` (what `fit_private`, and
    so `train()`, runs on private data): `PoissonSampler`, book-keeping clipping (one
    backward pass) and `GaussianMechanism`.

Every variant reads batches from in-memory tensors (no DataLoader), so the figures compare
the training steps themselves; the one-off setup (wrapping the model, the optimizer) is
not timed. Each time is the median of `--repeats` epochs after a warm-up round, the
variants taking turns; ratios divide by plain PyTorch's median. Peak memory is measured on
one more epoch per variant, untimed: the most tensor memory (torch's profiler, CPU; the
CUDA allocator's peak on a GPU) live at once beyond what was live before, counting the
model, optimizer state, gradients, per-sample state and activations, but not the table.

`--sampling` times one epoch of batches (rows / batch steps at q = batch / rows) from
Opacus' `UniformWithReplacementSampler` and from `compute_to_data.sampling.PoissonSampler`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
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
from compute_to_data.sampling import PoissonSampler  # noqa: E402
from compute_to_data.training import PrivateLoop, quiet  # noqa: E402

INPUTS = 64
MODELS = {"MLP 20.9k": (128, 96), "MLP 280k": (512, 480), "MLP 2.95M": (1684, 1684)}
# DESIGN.md section 8: Opacus hooks / ghost clipping on CPU, as published.
REFERENCE = {"MLP 20.9k": ("7.6×", "2.1×"), "MLP 280k": ("58.7×", "2.8×"), "MLP 2.95M": ("", "")}
NOISE, CLIP, LR = 1.0, 1.0, 0.1
VARIANTS = ("plain", "opacus_hooks", "opacus_ghost", "runner")


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
Prepare = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, int, torch.device], Loop]


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


def opacus(mode: str) -> Prepare:
    def prepare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                device: torch.device) -> Loop:
        model.to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch)
        wrapped = PrivacyEngine(accountant="rdp").make_private(
            module=model, optimizer=optimizer, data_loader=loader, criterion=nn.CrossEntropyLoss(),
            noise_multiplier=NOISE, max_grad_norm=CLIP, poisson_sampling=True, grad_sample_mode=mode,
        )
        # Ghost clipping wraps the criterion (its backward runs both passes); hooks do not.
        if mode == "ghost":
            private, optimizer, criterion, _ = wrapped
        else:
            (private, optimizer, _), criterion = wrapped, nn.CrossEntropyLoss()
        optimizer.expected_batch_size = batch
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

    return prepare


def runner(spec: ModelSpec) -> Prepare:
    def prepare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                device: torch.device) -> Loop:
        params = DpParams(noise_multiplier=NOISE, sample_rate=sample_rate_for(batch, len(x)),
                          max_grad_norm=CLIP, epochs=1, steps=steps, delta=1e-5)
        return PrivateLoop(model, x, y, spec=spec, params=params, device=device,
                           sample_seed=0, noise_seed=1).run

    return prepare


def clock(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


def timed(prepare: Prepare, initial: dict[str, torch.Tensor], hidden: tuple[int, ...], x: torch.Tensor,
          y: torch.Tensor, batch: int, steps: int, device: torch.device, now: Callable[[], float]) -> float:
    """Seconds of one epoch's steps, from a fresh copy of the initial weights (setup untimed)."""
    model = make_model(hidden)
    model.load_state_dict(initial)
    loop = prepare(model, x, y, batch, steps, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = now()
    loop()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return now() - start


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """The profiler's C++ side prints start/stop lines on file descriptor 2; hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_bytes(prepare: Prepare, initial: dict[str, torch.Tensor], hidden: tuple[int, ...], x: torch.Tensor,
               y: torch.Tensor, batch: int, steps: int, device: torch.device) -> int:
    """Most tensor bytes live at once beyond those live before: model, setup and one epoch."""

    def epoch() -> None:
        model = make_model(hidden).to(device)
        model.load_state_dict(initial)
        prepare(model, x, y, batch, steps, device)()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        epoch()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with silenced_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        epoch()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


def measure(rows: int, batch: int, repeats: int, device: torch.device, models: list[str],
            variants: list[str], clock_kind: str, hooks_repeats: int) -> dict:
    features, labels = make_classification(
        n_samples=rows, n_features=INPUTS, n_informative=16, random_state=0
    )
    x = torch.tensor(features, dtype=torch.float32, device=device)
    y = torch.tensor(labels, dtype=torch.long, device=device)
    steps = steps_per_epoch(sample_rate_for(batch, rows))
    now = clock(clock_kind)
    results = {}
    for name in models:
        hidden = MODELS[name]
        torch.manual_seed(0)
        initial = make_model(hidden).state_dict()
        params = sum(t.numel() for t in initial.values())
        everything: dict[str, Prepare] = {
            "plain": plain, "opacus_hooks": opacus("hooks"), "opacus_ghost": opacus("ghost"),
            "runner": runner(make_spec(hidden, batch)),
        }
        chosen = {label: everything[label] for label in variants}
        times: dict[str, list[float]] = {label: [] for label in chosen}
        # Round-robin, after one warm-up round, so that a busy moment on the machine hits
        # every variant rather than one.
        for attempt in range(repeats + 1):
            for label, prepare in chosen.items():
                if label == "opacus_hooks" and attempt > hooks_repeats:
                    continue  # minutes an epoch on the largest model: fewer rounds suffice
                seconds = timed(prepare, initial, hidden, x, y, batch, steps, device, now)
                if attempt:
                    times[label].append(seconds)
        memory = {label: peak_bytes(prepare, initial, hidden, x, y, batch, steps, device)
                  for label, prepare in chosen.items()}
        medians = {label: statistics.median(values) for label, values in times.items()}
        results[name] = {
            "parameters": params,
            "seconds_per_epoch": medians,
            "seconds_all": times,
            "ratio_vs_plain": {k: v / medians["plain"] for k, v in medians.items()},
            "peak_bytes": memory,
            "memory_vs_plain": {k: v / memory["plain"] for k, v in memory.items()},
        }
        print(f"measured {name}", file=sys.stderr, flush=True)
    return {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
        ),
        "threads": torch.get_num_threads(),
        "clock": clock_kind,
        "rows": rows, "batch": batch, "steps_per_epoch": steps, "repeats": repeats,
        "hooks_repeats": min(hooks_repeats, repeats), "torch": torch.__version__,
        "opacus": __import__("opacus").__version__,
        "models": results,
    }


def measure_sampling(rows_list: list[int], batch: int, repeats: int, clock_kind: str) -> dict:
    """One epoch of batches from each sampler: the old one once (it is slow), the new one median of `repeats`."""
    now = clock(clock_kind)
    results = {}
    for rows in rows_list:
        q = sample_rate_for(batch, rows)
        steps = steps_per_epoch(q)

        def epoch(sampler: object) -> float:
            start = now()
            for _ in sampler:  # type: ignore[attr-defined]
                pass
            return now() - start

        old = epoch(UniformWithReplacementSampler(
            num_samples=rows, sample_rate=q, generator=torch.Generator().manual_seed(0), steps=steps))
        new = statistics.median(
            epoch(PoissonSampler(num_samples=rows, sample_rate=q, steps=steps,
                                 generator=np.random.Generator(np.random.PCG64(seed))))
            for seed in range(repeats)
        )
        results[rows] = {"steps": steps, "opacus_seconds": old, "poisson_seconds": new}
        print(f"measured sampling at {rows} rows", file=sys.stderr, flush=True)
    return {"batch": batch, "clock": clock_kind, "threads": torch.get_num_threads(), "rows": results}


def mib(value: int) -> str:
    return f"{value / 2**20:.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hooks-repeats", type=int, default=None,
                        help="timed epochs of Opacus hooks (default: --repeats); it is slow")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from: {', '.join(MODELS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, plain first, from: {', '.join(VARIANTS)}")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds (default) or this process's CPU seconds")
    parser.add_argument("--sampling", action="store_true",
                        help="time the Poisson samplers alone, at --sampling-rows")
    parser.add_argument("--sampling-rows", default="100000,1000000")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sampling:
        report = measure_sampling([int(r) for r in args.sampling_rows.split(",")], args.batch,
                                  args.repeats, args.clock)
        if args.json:
            print(json.dumps(report, indent=2))
            return
        table = Table(title=f"Poisson sampling, one epoch (batch {args.batch}, {args.clock} seconds)")
        for column in ("rows", "steps", "Opacus UniformWithReplacement", "PoissonSampler", "speed-up"):
            table.add_column(column, justify="right")
        for rows, result in report["rows"].items():
            table.add_row(f"{rows:,}", f"{result['steps']:,}", f"{result['opacus_seconds']:.3f} s",
                          f"{result['poisson_seconds']:.4f} s",
                          f"{result['opacus_seconds'] / result['poisson_seconds']:.0f}×")
        Console().print(table)
        return
    models = [m.strip() for m in args.models.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    if variants[0] != "plain":
        parser.error("--variants must start with plain (the ratios divide by it)")
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = measure(args.rows, args.batch, args.repeats, device, models, variants, args.clock,
                         args.repeats if args.hooks_repeats is None else max(1, args.hooks_repeats))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    labels = {"opacus_hooks": "Opacus hooks", "opacus_ghost": "Opacus ghost", "runner": "runner (book-keeping)"}
    times = Table(
        title=f"DP training, epoch time vs plain PyTorch ({report['device']}, {report['threads']} "
        f"threads, {args.clock} clock; {args.rows} rows, batch {args.batch}, "
        f"{report['steps_per_epoch']} steps; median of {args.repeats}"
        + (f", Opacus hooks of {report['hooks_repeats']}" if report["hooks_repeats"] < args.repeats
           and "opacus_hooks" in variants else "") + ")"
    )
    memory = Table(title="Peak tensor memory of setup and one epoch, vs plain PyTorch")
    for table in (times, memory):
        table.add_column("model")
        table.add_column("params", justify="right")
        table.add_column("plain", justify="right")
        for variant in variants[1:]:
            table.add_column(labels[variant], justify="right")
    times.add_column("DESIGN §8 hooks / ghost", justify="right")
    for name, result in report["models"].items():
        seconds, ratio = result["seconds_per_epoch"], result["ratio_vs_plain"]
        peak, peak_ratio = result["peak_bytes"], result["memory_vs_plain"]
        reference = " / ".join(r for r in REFERENCE[name] if r) or "-"
        times.add_row(name, f"{result['parameters']:,}", f"{seconds['plain']:.4f} s",
                      *(f"{ratio[v]:.2f}× ({seconds[v]:.3f} s)" for v in variants[1:]), reference)
        memory.add_row(name, f"{result['parameters']:,}", mib(peak["plain"]),
                       *(f"{peak_ratio[v]:.2f}× ({mib(peak[v])})" for v in variants[1:]))
    console = Console(width=max(120, Console().width))
    console.print(times)
    console.print(memory)


if __name__ == "__main__":
    main()
