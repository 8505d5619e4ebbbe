"""How Cove scales with the size of a dataset: figures for issue 10 ("Scale and speed").

Run: `.venv/bin/python benchmarks/scale.py` (10k, 100k and 1M rows; `--big` adds 10M,
`--json` for scripts, `--nul-gib 0` skips the binary file, `--only train` or `--only publish`
runs one section). Files are written to a temporary directory and removed afterwards.

Publish: the data path of `cove publish`, without the chain -- `prepare_metadata` on a CSV
of 20 numeric columns (8 full-precision floats, 6 rounded to two decimals, 6 integers)
under a declared schema: the streamed scan (read, validate, check the kinds, commit,
count) and the metadata (noisy count, mock). The transaction that follows is the same
whatever the size (benchmarks/gas.py measures it). Each measurement runs in a process of
its own, which reports its wall and CPU time (all threads) and its peak resident memory
(VmHWM). The path before streaming (the per-cell reader and serialiser that
tests/unit/test_scan_oracle.py keeps as the oracle) is measured at 10k rows for the ratio,
and must give the same commitment. A file of NUL bytes, sparse on disk, shows that a
binary file is refused at once in bounded memory.

Train: one DP job on the same CSV through the code the sandbox runs
(`compute_to_data.job_training.train_job`: check the commitment, check the kinds, encode,
train) in a child process under the runner's address-space limit (RLIMIT_AS, 6 GiB): a
regression MLP (19 features, 32 hidden) at an expected batch of 1,024 for one epoch. The
child reports the job's wall and CPU time, its peak resident memory (VmHWM) and peak
address space (VmPeak, what RLIMIT_AS bounds), the resident memory before the job (Python
with torch imported) and the Poisson sampler's time for one epoch at that size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = [10_000, 100_000, 1_000_000]
BIG = 10_000_000
GOAL_1M = {"wall_s": 15.0, "peak_rss_mib": 1024.0}  # from the issue
_BATCH = 500_000  # rows generated at a time, so that writing 10M rows needs little memory
FLOATS, ROUNDED, INTEGERS = 8, 6, 6
TRAIN_BATCH = 1_024  # expected batch size of the training job: one epoch is rows / 1,024 steps
TRAIN_LIMIT_BYTES = 6 << 30  # the runner's RLIMIT_AS (RunnerLimits.memory_bytes)


# ---------------------------------------------------------------------------------------
# The dataset


def column_names() -> list[str]:
    return [f"x{i}" for i in range(FLOATS)] + [f"r{i}" for i in range(ROUNDED)] + [f"n{i}" for i in range(INTEGERS)]


def declared_schema() -> dict[str, Any]:
    """What the owner declares: wide ranges, known without looking at the rows."""
    numbers = {"kind": "float", "nullable": False, "minimum": -1e6, "maximum": 1e6}
    counts = {"kind": "integer", "nullable": False, "minimum": 0, "maximum": 10**6}
    names = column_names()
    columns = [{"name": n, **numbers} for n in names[: FLOATS + ROUNDED]]
    columns += [{"name": n, **counts} for n in names[FLOATS + ROUNDED :]]
    return {"columns": columns}


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` rows of 20 numeric columns, written a batch at a time (the header unquoted,
    as spreadsheets and pandas write it)."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        handle.write((",".join(column_names()) + "\n").encode())
        for start in range(0, rows, _BATCH):
            n = min(_BATCH, rows - start)
            data = [rng.normal(0, 1, n) for _ in range(FLOATS)]
            data += [np.round(rng.normal(50, 10, n), 2) for _ in range(ROUNDED)]
            data += [rng.integers(0, 1000, n) for _ in range(INTEGERS)]
            table = pa.table(dict(zip(column_names(), data)))
            pcsv.write_csv(table, handle, write_options=pcsv.WriteOptions(include_header=False))


# ---------------------------------------------------------------------------------------
# One measurement, in a process of its own


def measure(kind: str, path: Path, schema_path: Path) -> dict[str, Any]:
    """Run `kind` ("publish", "legacy", "binary" or "train") on `path` in a child process
    (for "train", `schema_path` is the training order's JSON)."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(schema_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if child.returncode != 0:
        raise SystemExit(f"the {kind} measurement of {path.name} failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _child(kind: str, path: Path, schema_path: Path) -> None:
    import resource

    if kind == "train":
        _train_child(path, schema_path)
        return

    from exchange.datasets import CommitmentKey, DatasetSchema
    from exchange.errors import DatasetError

    schema = DatasetSchema.load(schema_path)
    key = CommitmentKey(bytes(range(32)))
    started, cpu = time.perf_counter(), _cpu()
    result: dict[str, Any] = {}
    if kind == "publish":
        from exchange.datasets import prepare_metadata

        read: list[int] = []
        metadata, scan = prepare_metadata(path, "Scale", schema, key, 20_000_000, progress=read.append)
        result = {"rows": scan.rows, "digest": metadata.commitment.digest, "progress_calls": len(read)}
    elif kind == "legacy":
        sys.path.insert(0, str(ROOT / "tests" / "unit"))
        from test_scan_oracle import legacy_digest, legacy_load_table

        from exchange.datasets import check_kinds

        frame = legacy_load_table(path)
        check_kinds(frame, schema)
        result = {"rows": len(frame), "digest": legacy_digest(frame, key.secret)}
    else:
        from exchange.datasets import scan_table

        try:
            scan_table(path, schema, key)
            result = {"message": None}
        except DatasetError as error:
            result = {"message": str(error)}
    result |= {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(_cpu() - cpu, 2),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    """A memory figure of /proc/self/status (VmHWM, VmPeak, VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _train_child(path: Path, order_path: Path) -> None:
    """One training job as the sandbox runs it, under the runner's RLIMIT_AS."""
    import resource

    # Everything the job imports, before the limit and the clocks: a warm sandbox's zygote
    # has imported them too.
    from compute_to_data.job_training import TrainingOrder, train_job
    from compute_to_data.sampling import PoissonSampler

    resource.setrlimit(resource.RLIMIT_AS, (TRAIN_LIMIT_BYTES, TRAIN_LIMIT_BYTES))
    payload = order_path.read_bytes()
    baseline = _status_mib("VmRSS")
    started, cpu = time.perf_counter(), _cpu()
    result: dict[str, Any] = {"error": None}
    try:
        train_job(payload, path)
    except MemoryError:
        result["error"] = "MemoryError"
    except Exception as error:  # noqa: BLE001 - the benchmark reports it, whatever it is
        result["error"] = type(error).__name__ + ": " + str(error)
    result |= {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(_cpu() - cpu, 2),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(_status_mib("VmHWM"), 1),
        "peak_vm_mib": round(_status_mib("VmPeak"), 1),
    }
    order = TrainingOrder.model_validate_json(payload)
    q = order.dp.sample_rate / 1e9  # on-chain sample rates are in billionths
    sampler = PoissonSampler(
        num_samples=order.public_rows, sample_rate=q, steps=order.dp.steps // order.dp.epochs,
        generator=np.random.default_rng(0),
    )  # fmt: skip
    started = time.perf_counter()
    for _ in sampler:
        pass
    result["sampler_epoch_s"] = round(time.perf_counter() - started, 4)
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------
# Sections


def publish_section(folder: Path, sizes: list[int], console: Console | None) -> dict[str, Any]:
    schema_path = folder / "schema.json"
    schema_path.write_text(json.dumps(declared_schema()))
    rows_out: list[dict[str, Any]] = []
    for rows in sizes:
        path = folder / f"rows-{rows}.csv"
        started = time.perf_counter()
        write_csv(path, rows)
        written = time.perf_counter() - started
        figure = measure("publish", path, schema_path)
        figure |= {"size": rows, "file_mib": round(path.stat().st_size / 2**20, 1)}
        figure["write_s"] = round(written, 1)
        if rows == SIZES[0]:
            legacy = measure("legacy", path, schema_path)
            if legacy["digest"] != figure["digest"]:
                raise SystemExit("the streamed commitment differs from the per-cell one: the canonical bytes changed")
            figure["legacy"] = legacy
        rows_out.append(figure)
        path.unlink()
        if console:
            console.print(f"  {rows:>10,} rows: {figure['wall_s']} s wall, {figure['peak_rss_mib']} MiB peak")
    return {"publish": rows_out}


def binary_section(folder: Path, gib: float) -> dict[str, Any]:
    schema_path = folder / "schema.json"
    path = folder / "zeros.csv"
    with path.open("wb") as handle:
        handle.truncate(int(gib * 2**30))  # sparse: NUL bytes that take no disk
    figure = measure("binary", path, schema_path) | {"file_gib": gib}
    path.unlink()
    figure["message"] = str(figure["message"]).replace(str(path), "zeros.csv")
    return {"binary": figure}


def train_spec() -> dict[str, Any]:
    """A small regression MLP on every column but r0, which it predicts."""
    return {
        "task": "regression", "features": [n for n in column_names() if n != "r0"], "target": "r0",
        "layers": [{"type": "Linear", "out_features": 32}, {"type": "ReLU"}, {"type": "Linear", "out_features": 1}],
        "loss": "mse", "optimizer": "adam", "learning_rate": 0.001,
        "expected_batch_size": TRAIN_BATCH, "epochs": 1,
        "dp": {"noise_multiplier": 1.0, "delta": 1e-9, "max_grad_norm": 1.0},
    }  # fmt: skip


def train_order(path: Path, schema_path: Path, rows: int) -> bytes:
    """The order the runner would send for `path`: its commitment from the streamed scan (the
    same digest as `commit(load_table(path))`), the true row count as the public one."""
    from compute_to_data.job_training import TrainingOrder
    from exchange.datasets import CommitmentKey, DatasetSchema, scan_table
    from exchange.ml.accounting import DpParams
    from exchange.ml.spec import ModelSpec

    schema = DatasetSchema.load(schema_path)
    key = CommitmentKey(bytes(range(32)))
    spec = ModelSpec.parse(train_spec())
    params = DpParams.for_spec(spec, rows)
    order = TrainingOrder(
        spec=spec.to_json().decode(), dataset_schema=schema, public_rows=rows,
        commitment=scan_table(path, schema, key).commitment.digest, commitment_key=key.secret.hex(),
        dp=params.to_onchain(), delta=params.delta_fixed, device="cpu",
    )  # fmt: skip
    return order.model_dump_json().encode()


def train_section(folder: Path, sizes: list[int], console: Console | None) -> dict[str, Any]:
    schema_path = folder / "schema.json"
    schema_path.write_text(json.dumps(declared_schema()))
    rows_out: list[dict[str, Any]] = []
    for rows in sizes:
        path = folder / f"rows-{rows}.csv"
        write_csv(path, rows)
        order_path = folder / f"order-{rows}.json"
        order_path.write_bytes(train_order(path, schema_path, rows))
        figure = measure("train", path, order_path)
        steps = -(-rows // TRAIN_BATCH)
        figure |= {"size": rows, "file_mib": round(path.stat().st_size / 2**20, 1), "steps": steps}
        rows_out.append(figure)
        path.unlink()
        if console:
            state = figure["error"] or "ok"
            console.print(f"  {rows:>10,} rows: {figure['wall_s']} s wall, {figure['peak_rss_mib']} MiB peak RSS, "
                          f"{figure['peak_vm_mib']} MiB peak VM ({state})")  # fmt: skip
    return {"train": rows_out}


def show(results: dict[str, Any], console: Console) -> None:
    if results["publish"]:
        show_publish(results, console)
    if "train" in results:
        show_train(results["train"], console)


def show_publish(results: dict[str, Any], console: Console) -> None:
    table = Table(title="cove publish, data path (scan + metadata), 20 numeric columns")
    for header in ("rows", "file", "wall", "CPU", "peak RSS", "rows/s"):
        table.add_column(header, justify="right", no_wrap=True)
    for figure in results["publish"]:
        table.add_row(
            f"{figure['size']:,}", f"{figure['file_mib']} MiB", f"{figure['wall_s']} s", f"{figure['cpu_s']} s",
            f"{figure['peak_rss_mib']} MiB", f"{figure['size'] / max(figure['wall_s'], 1e-9):,.0f}",
        )  # fmt: skip
    console.print(table)
    for figure in results["publish"]:
        if "legacy" in figure:
            legacy = figure["legacy"]
            speedup = legacy["wall_s"] / max(figure["wall_s"], 1e-9)
            console.print(f"per-cell path at {figure['size']:,} rows: {legacy['wall_s']} s, {legacy['cpu_s']} s CPU, "
                          f"{legacy['peak_rss_mib']} MiB peak ({speedup:.1f}× the streamed path's time; same commitment)")  # fmt: skip
        if figure["size"] == 1_000_000:
            ok = figure["wall_s"] <= GOAL_1M["wall_s"] and figure["peak_rss_mib"] <= GOAL_1M["peak_rss_mib"]
            console.print(f"1M rows: goal ≤ {GOAL_1M['wall_s']:g} s and ≤ 1 GiB: {'met' if ok else 'NOT met'}")
    if "binary" in results:
        b = results["binary"]
        console.print(f"{b['file_gib']:g} GiB of NUL bytes: {b['wall_s']} s, {b['peak_rss_mib']} MiB peak:")
        console.print(f"  {b['message']}")


def show_train(figures: list[dict[str, Any]], console: Console) -> None:
    limit = TRAIN_LIMIT_BYTES >> 30
    table = Table(title=f"one DP training job (train_job, CPU, RLIMIT_AS {limit} GiB), one epoch")
    for header in ("rows", "steps", "wall", "CPU", "RSS before", "peak RSS", "peak VM", "sampler/epoch", "result"):
        table.add_column(header, justify="right", no_wrap=True)
    for f in figures:
        result = (f["error"] or "ok").split(":")[0]  # the exception's type; the JSON has it all
        table.add_row(
            f"{f['size']:,}", f"{f['steps']:,}", f"{f['wall_s']} s", f"{f['cpu_s']} s",
            f"{f['baseline_rss_mib']} MiB", f"{f['peak_rss_mib']} MiB", f"{f['peak_vm_mib']} MiB",
            f"{f['sampler_epoch_s']} s", result,
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help=f"also {BIG:,} rows (a 2 GB file)")
    parser.add_argument("--sizes", type=int, nargs="*", help="row counts instead of 10k, 100k and 1M")
    parser.add_argument("--nul-gib", type=float, default=2.0, help="size of the NUL file (0: skip it)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--only", choices=("publish", "train"), help="run one section only")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    sizes = list(args.sizes or SIZES) + ([BIG] if args.big else [])
    console = None if args.json else Console()
    with tempfile.TemporaryDirectory(prefix="cove-scale-") as tmp:
        folder = Path(tmp)
        results: dict[str, Any] = {"publish": []}
        if args.only != "train":
            results = publish_section(folder, sizes, console)
            if args.nul_gib > 0:
                results |= binary_section(folder, args.nul_gib)
        if args.only != "publish":
            results |= train_section(folder, sizes, console)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results, console)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
