"""How Cove scales with the size of a dataset: figures for issue 10 ("Scale and speed").

Run: `.venv/bin/python benchmarks/scale.py` (10k, 100k and 1M rows; `--big` adds 10M,
`--json` for scripts, `--nul-gib 0` skips the binary file). Files are written to a
temporary directory and removed afterwards.

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
    """Run `kind` ("publish", "legacy" or "binary") on `path` in a child process."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(schema_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if child.returncode != 0:
        raise SystemExit(f"the {kind} measurement of {path.name} failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _child(kind: str, path: Path, schema_path: Path) -> None:
    import resource

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
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


# Training: the sampler's and the trainer's figures at these sizes go here, as a section
# of their own beside publish_section (for issue 10, added by whoever lands that part).


def show(results: dict[str, Any], console: Console) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help=f"also {BIG:,} rows (a 2 GB file)")
    parser.add_argument("--sizes", type=int, nargs="*", help="row counts instead of 10k, 100k and 1M")
    parser.add_argument("--nul-gib", type=float, default=2.0, help="size of the NUL file (0: skip it)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    sizes = list(args.sizes or SIZES) + ([BIG] if args.big else [])
    console = None if args.json else Console()
    with tempfile.TemporaryDirectory(prefix="cove-scale-") as tmp:
        folder = Path(tmp)
        results = publish_section(folder, sizes, console)
        if args.nul_gib > 0:
            results |= binary_section(folder, args.nul_gib)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results, console)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
