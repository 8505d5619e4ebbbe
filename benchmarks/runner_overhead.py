"""What a tiny job costs the runner beyond its training: a cold sandbox per job against a warm one.

Run: `.venv/bin/python benchmarks/runner_overhead.py` (`--jobs N` per variant, `--json`,
`--no-runner` for the sandbox stages alone, `--mechanism bwrap|unshare`).

Sandbox stages (always), on the same tiny job as the sandbox tests (300 rows, a 3-4-2 MLP,
one epoch of DP-SGD with Opacus, on the CPU):

- training in this process, no sandbox (after a warm-up run, so without imports): the
  work itself;
- a no-op job (`noop`, returns at once) and the training job, each run `--jobs` times
  cold (`run_sandboxed`: a new sandbox and a new Python per job) and warm (`WarmSandbox`:
  one zygote started, then a fork per job), with the warm sandbox's start timed apart.
  A job's overhead is its wall time less the in-process training.

Runner stages (unless `--no-runner`; needs anvil, as the e2e tests): the real `Runner` on a
fresh local chain, one dataset, `--jobs` requests served by a runner with a cold sandbox and
as many by one with a warm sandbox; each stage timed inside the runner: chain transactions
(accept, complete), the public checks (chain reads), the sandboxed training, crypto
(encrypt to the buyer, sign provenance) and storage (the DAG, the content store). Then the
pool: `--jobs` jobs requested at once, served by a runner with one worker and by one with
two (each worker its own warm sandbox), as wall seconds per job.

Figures are medians over the jobs; cold, warm and in-process jobs take turns, so that a busy
machine slows each alike (on a shared machine, rerun: the figures move with the load). The
warm sandbox is started before the jobs and its start is reported on its own line. The
in-process figure is a warmed-up process's; each sandboxed job is a fresh process, which
also pays the first call's one-off costs (torch's thread pool, first-op setup).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # conftest's table and schema, as the tests use them

from compute_to_data.job_pool import JobPool
from compute_to_data.sandbox import SandboxPolicy, SandboxResult, run_sandboxed
from compute_to_data.warm_sandbox import WarmSandbox

NOOP = "def noop(payload, dataset):\n    return b'ok'\n"

SPEC = {
    "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 2}],
    "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01,
    "expected_batch_size": 32, "epochs": 1,
    "dp": {"noise_multiplier": 1.5, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def training_order(folder: Path) -> tuple[bytes, Path]:
    from conftest import make_table

    from compute_to_data.job_training import TrainingOrder
    from exchange.datasets import CommitmentKey, commit, draft_schema, load_table
    from exchange.ml.accounting import DpParams
    from exchange.ml.spec import ModelSpec

    spec = ModelSpec.parse(SPEC)
    data = folder / "patients.csv"
    make_table(rows=300).to_csv(data, index=False)
    frame = load_table(data)
    key = CommitmentKey(bytes(range(32)))
    params = DpParams.for_spec(spec, 300)
    order = TrainingOrder(spec=spec.to_json().decode(), dataset_schema=draft_schema(frame), public_rows=300,
                          commitment=commit(frame, key).digest, commitment_key=key.secret.hex(),
                          dp=params.to_onchain(), delta=params.delta_fixed, device="cpu")  # fmt: skip
    return order.model_dump_json().encode(), data


def sandbox_stages(jobs: int, mechanism: str | None, folder: Path) -> dict[str, Any]:
    from compute_to_data.job_training import train_job

    payload, data = training_order(folder)
    code = folder / "code"
    code.mkdir()
    (code / "cove_bench_noop.py").write_text(NOOP)
    train_job(payload, data)  # warm-up: the imports and first-call costs stay out of the figure

    def rules(python_path: tuple[Path, ...] = ()) -> SandboxPolicy:
        return SandboxPolicy(dataset=data, cpu_seconds=600, memory_bytes=6 << 30, wall_seconds=600,
                             python_path=python_path, log_path=folder / "job.log")  # fmt: skip

    variants = {
        "noop": ("cove_bench_noop", "noop", b"", rules((code,))),
        "training": ("compute_to_data.job_training", "train_job", payload, rules()),
    }
    figures: dict[str, Any] = {}
    in_process: list[float] = []
    for name, (module, function, job_payload, policy) in variants.items():
        cold: list[float] = []
        hot: list[float] = []
        with WarmSandbox(module, function, mechanism=mechanism, log_path=folder / "zygote.log") as warm:  # type: ignore[arg-type]
            start = _timed(lambda warm=warm, policy=policy: warm.start(policy))
            assert warm.zygote_pid is not None, (folder / "zygote.log").read_text()
            # Taking turns, so that a busy machine slows every variant alike.
            for _ in range(jobs):
                started = time.perf_counter()
                result = run_sandboxed(module, function, job_payload, policy, mechanism=mechanism)  # type: ignore[arg-type]
                cold.append(time.perf_counter() - started)
                assert not result.warm
                started = time.perf_counter()
                result = warm.run(job_payload, policy)
                hot.append(time.perf_counter() - started)
                assert result.warm
                if name == "training":
                    in_process.append(_timed(lambda: train_job(payload, data)))
        figures[f"{name} cold"] = _median(cold)
        figures[f"{name} warm start"] = start
        figures[f"{name} warm"] = _median(hot)
        figures["mechanism"] = result.mechanism
    base = figures["training in-process"] = _median(in_process)
    figures["overhead cold"] = figures["training cold"] - base
    figures["overhead warm"] = figures["training warm"] - base
    figures["cold/warm per job"] = figures["training cold"] / figures["training warm"]
    return figures


class _Clock:
    """Wall time per stage, summed over every call made while a job is handled."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(list)
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[stage] += time.perf_counter() - started

        return timed

    def job_done(self) -> None:
        for stage, seconds in self.current.items():
            self.totals[stage].append(seconds)
        self.current.clear()


def runner_stages(jobs: int, folder: Path) -> dict[str, Any]:
    from conftest import PATIENTS_SCHEMA, make_table

    import compute_to_data.runner as runner_module
    from compute_to_data.runner import Runner, RunnerLimits
    from compute_to_data.state import RunnerState
    from exchange.accounts import dev_account
    from exchange.chain.anvil import LocalChain
    from exchange.chain.deployment import deploy
    from exchange.chain.session import ChainSession, connect
    from exchange.client import CoveClient
    from exchange.jobs import request_job
    from exchange.market import buy_credits
    from exchange.ml.spec import ModelSpec
    from exchange.paths import HomeLayout
    from exchange.policy import parse_terms
    from exchange.publish import publish_dataset

    home = folder / "cove-home"
    chain = LocalChain(HomeLayout(home).chain)
    info, _ = chain.up()
    try:
        deploy(HomeLayout(home).deployments, ChainSession(connect(info.rpc_url), dev_account(0)))
        owner = CoveClient.open(info.rpc_url, dev_account(0), home)
        buyer = CoveClient.open(info.rpc_url, dev_account(1), home)
        data = folder / "cohort.csv"
        make_table(rows=1000, seed=1).to_csv(data, index=False)
        dataset_id = publish_dataset(owner, data, name="cohort", schema=PATIENTS_SCHEMA,
                                     terms=parse_terms(budget="1000", per_job_cap="50", free_cap=100)).dataset_id
        buy_credits(buyer, dataset_id, 5 * jobs)
        spec = ModelSpec.parse({**SPEC, "expected_batch_size": 100})
        limits = RunnerLimits(device="cpu", wall_seconds=600)
        figures: dict[str, Any] = {}
        for variant in ("cold", "warm"):
            for _ in range(jobs):
                request_job(buyer, dataset_id, spec)
            runner = Runner(owner, limits, state=RunnerState(folder / f"{variant}.sqlite"))
            clock = _Clock()
            if variant == "cold":
                sandbox: Any = _ColdSandbox()
            else:  # started before the clock runs, and timed on its own
                sandbox = WarmSandbox("compute_to_data.job_training", "train_job", log_path=folder / "zygote.log")
                shape = SandboxPolicy(dataset=data, cpu_seconds=1, memory_bytes=limits.memory_bytes,
                                      wall_seconds=1)  # what the runner's policies share
                figures["warm start"] = _timed(lambda warm=sandbox, shape=shape: warm.start(shape))
            runner._pool = JobPool(1, lambda sandbox=sandbox: sandbox)  # one job at a time, timed alone
            # Inside the runner: its own steps, and the calls that do chain, crypto and storage.
            session = owner.session
            transact = session.transact
            session.transact = clock.wrap("chain transactions", transact)  # type: ignore[method-assign]
            patched = {name: getattr(runner_module, name) for name in ("encrypt_to", "sign", "build_dag")}
            runner_module.encrypt_to = clock.wrap("crypto", patched["encrypt_to"])  # type: ignore[assignment]
            runner_module.sign = clock.wrap("crypto", patched["sign"])  # type: ignore[assignment]
            runner_module.build_dag = clock.wrap("storage", patched["build_dag"])  # type: ignore[assignment]
            store_put = owner.store.put
            owner.store.put = clock.wrap("storage", store_put)  # type: ignore[method-assign]
            runner._check = clock.wrap("public checks (chain reads)", runner._check)  # type: ignore[method-assign]
            runner._train = clock.wrap("sandbox and training", runner._train)  # type: ignore[method-assign]
            # A job runs from its claim (`_start`) to the end of its `_publish`.
            start, publish = runner._start, runner._publish
            began: dict[int, float] = {}

            def started(job_id: int, start: Callable[[int], bool] = start) -> bool:
                began[job_id] = time.perf_counter()
                return start(job_id)

            def published(job: Any, *rest: Any, publish: Callable[..., None] = publish, clock: _Clock = clock) -> None:
                publish(job, *rest)
                clock.current["job, all stages"] += time.perf_counter() - began[job.job_id]
                clock.job_done()

            runner._start = started  # type: ignore[method-assign]
            runner._publish = published  # type: ignore[method-assign]
            try:
                done = runner.poll()
            finally:
                session.transact = transact  # type: ignore[method-assign]
                owner.store.put = store_put  # type: ignore[method-assign]
                for name, function in patched.items():
                    setattr(runner_module, name, function)
                runner.close()
            assert len(done) == jobs, done
            figures[variant] = {stage: _median(values) for stage, values in sorted(clock.totals.items())}
        figures["pool"] = _pool_throughput(owner, buyer, dataset_id, data, spec, jobs, limits, folder)
        return figures
    finally:
        chain.down()


def _pool_throughput(owner: Any, buyer: Any, dataset_id: int, data: Path, spec: Any, jobs: int,
                     limits: Any, folder: Path) -> dict[str, float]:  # fmt: skip
    """Wall time of `jobs` jobs requested at once, served by one worker and by two."""
    from dataclasses import replace

    from compute_to_data.runner import Runner
    from compute_to_data.state import RunnerState
    from exchange.jobs import request_job

    figures: dict[str, float] = {}
    for workers in (1, 2):
        sandboxes = [WarmSandbox("compute_to_data.job_training", "train_job", log_path=folder / f"pool-{i}.log")
                     for i in range(workers)]  # fmt: skip
        shape = SandboxPolicy(dataset=data, cpu_seconds=1, memory_bytes=limits.memory_bytes, wall_seconds=1)
        for sandbox in sandboxes:  # started before the clock runs
            sandbox.start(shape)
        for _ in range(jobs):
            request_job(buyer, dataset_id, spec)
        runner = Runner(owner, replace(limits, workers=workers), state=RunnerState(folder / f"pool-{workers}.sqlite"))
        runner._pool = JobPool(workers, sandboxes.pop)
        started = time.perf_counter()
        try:
            done = runner.poll()
        finally:
            runner.close()
        assert len(done) == jobs, done
        figures[f"{workers} worker{'s' if workers > 1 else ''}, s per job"] = (time.perf_counter() - started) / jobs
    return figures


class _ColdSandbox:
    """What the runner used before the warm sandbox: a new sandbox per job."""

    def run(self, payload: bytes, policy: SandboxPolicy, *, stage: str) -> SandboxResult:
        return run_sandboxed("compute_to_data.job_training", "train_job", payload, policy, stage=stage)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="jobs per variant (default 3)")
    parser.add_argument("--mechanism", choices=("bwrap", "unshare"), default=None)
    parser.add_argument("--no-runner", action="store_true", help="the sandbox stages alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cove-bench-") as scratch:
        folder = Path(scratch)
        (folder / "sandbox").mkdir()
        report: dict[str, Any] = {"jobs": args.jobs,
                                  "sandbox": sandbox_stages(args.jobs, args.mechanism, folder / "sandbox")}
        if not args.no_runner:
            (folder / "runner").mkdir()
            report["runner"] = runner_stages(args.jobs, folder / "runner")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    stages = report["sandbox"]
    print(f"sandbox stages ({stages['mechanism']}, median of {args.jobs} jobs, seconds)")
    for name in ("training in-process", "noop cold", "noop warm start", "noop warm", "training cold",
                 "training warm start", "training warm", "overhead cold", "overhead warm"):
        print(f"  {name:<24} {stages[name]:8.3f}")
    print(f"  cold/warm per job        {stages['cold/warm per job']:8.1f}x")
    if "runner" in report:
        runner = report["runner"]
        print(f"runner stages per job (median of {args.jobs}, seconds; warm start {runner['warm start']:.2f} s, once)")
        names = sorted(set(runner["cold"]) | set(runner["warm"]))
        print(f"  {'stage':<30} {'cold':>8} {'warm':>8}")
        for name in names:
            print(f"  {name:<30} {runner['cold'].get(name, 0):8.3f} {runner['warm'].get(name, 0):8.3f}")
        cold, warm = runner["cold"]["job, all stages"], runner["warm"]["job, all stages"]
        print(f"  cold/warm per job              {cold / warm:8.1f}x")
        print(f"a pool: {args.jobs} jobs requested at once, warm sandboxes started beforehand")
        for name, seconds in runner["pool"].items():
            print(f"  {name:<30} {seconds:8.3f}")


if __name__ == "__main__":
    main()
