"""`Cove`: the notebook's entry point, one chain and one signing account.

    cove = Cove.local()                 # a fresh local chain, Cove deployed, signing as dev0
    ds = cove.publish(frame, "Patients", budget=8, per_job_cap=2)
    cove.start_runner()                 # the owner's runner, in a background thread
    me = cove.use("dev1")               # the data scientist, on the same chain
    me.faucet(); me.dataset(ds.id).buy()
    job = me.dataset(ds.id).train(Spec.mlp(["age", "bmi"], "diagnosis", dataset=ds)).wait()
    job.model(); job.verify(); job.evaluate(held_out)
    cove.close()                        # stops the runner and the local chain

`Cove.connect()` talks to the chain of `cove chain up` (or any RPC URL) instead.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from eth_account.signers.local import LocalAccount
from web3 import Web3

from exchange.accounts import PASSWORD_ENV, Keystore, dev_account, is_dev_account_name, resolve_dev_account
from exchange.catalog import datasets_frame
from exchange.chain.anvil import LOCAL_CHAIN_ID, LocalChain
from exchange.chain.deployment import deploy, deployment_file
from exchange.chain.session import ChainSession, connect
from exchange.client import CoveClient
from exchange.errors import AccountError, ChainError, CoveError, InputError
from exchange.governance import ConsortiumBook
from exchange.governance import deploy_consortium as deploy_governance
from exchange.jobs import list_jobs
from exchange.market import balances
from exchange.paths import HomeLayout, cove_home
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.sdk import display, ipython, ledger
from exchange.sdk.dataset import Dataset
from exchange.sdk.governance import Consortium
from exchange.sdk.job import Job

log = logging.getLogger("cove.sdk")

RUNNER_INTERVAL_S = 0.5
FREE_CAP_DEFAULT = 10  # free credits per address when a free dataset names no cap

# One lock per (chain, account): the runner thread and the notebook may both send
# transactions from the owner's account, and each picks its nonce from the pending count.
_TX_LOCKS: dict[tuple[str, str], threading.RLock] = {}
_TX_LOCKS_GUARD = threading.Lock()


def _serialize_transactions(session: ChainSession, rpc_url: str) -> None:
    """Makes `session` send its transactions one at a time with every other session of its account."""
    if session.account is None or getattr(session, "_cove_serialized", False):
        return
    with _TX_LOCKS_GUARD:
        lock = _TX_LOCKS.setdefault((rpc_url, session.account.address.lower()), threading.RLock())
    transact, deploy_ = session.transact, session.deploy

    def locked_transact(function: Any, value: int = 0) -> Any:
        with lock:
            return transact(function, value)

    def locked_deploy(artifact: str, *args: Any) -> Any:
        with lock:
            return deploy_(artifact, *args)

    session.transact = locked_transact  # type: ignore[method-assign]
    session.deploy = locked_deploy  # type: ignore[method-assign]
    session._cove_serialized = True  # type: ignore[attr-defined]


class RunnerThread:
    """The owner's compute-to-data runner, polling in a daemon thread."""

    def __init__(self, client: CoveClient, *, interval: float, limits: Any, report: Callable[[str], None] | None):
        from compute_to_data.runner import Runner  # the runner is the owner's; only imported here

        self.client = client
        self.interval = interval
        self.log: list[str] = []
        self.errors: list[str] = []
        self._report = report
        self._stop = threading.Event()
        self.runner = Runner(client, limits, report=self._note)
        self.thread = threading.Thread(target=self._loop, name=f"cove-runner-{client.session.sender[:10]}", daemon=True)
        self.thread.start()

    def _note(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        self.log.append(line)
        log.info("runner: %s", message)
        if self._report is not None:
            self._report(message)

    def _loop(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    self.runner.recover()
                    first = False
                self.runner.poll()
            except CoveError as error:
                self._error(str(error))
            except Exception as error:  # noqa: BLE001 - a poll must never kill the runner
                self._error(f"{type(error).__name__}: {error}")
            self._stop.wait(self.interval)

    def _error(self, message: str) -> None:
        if self._stop.is_set():
            return  # the chain may already be going down
        self.errors.append(message)
        self._note(f"error: {message}")

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and not self._stop.is_set()

    def stop(self, timeout: float = 60) -> None:
        """Stops after the poll under way (a training in progress finishes first)."""
        self._stop.set()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<runner of {self.client.session.sender}: {state}, {len(self.log)} event(s)>"


class _Resources:
    """What a Cove must release when it closes or is collected: runners, the local chain, a temp home."""

    def __init__(self, chain: LocalChain | None = None, temp_home: Path | None = None):
        self.chain = chain
        self.temp_home = temp_home
        self.runners: list[RunnerThread] = []
        self.released = False

    def stop_runners(self, timeout: float = 10) -> None:
        for runner in self.runners:
            runner.stop(timeout)
        self.runners.clear()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.stop_runners()
        if self.chain is not None:
            try:
                self.chain.down()
            except Exception:  # noqa: BLE001 - at exit, never raise
                log.warning("could not stop the local chain in %s", self.chain.directory)
        if self.temp_home is not None:
            shutil.rmtree(self.temp_home, ignore_errors=True)


def _home_has_state(layout: HomeLayout) -> bool:
    root = layout.root
    return any(p.exists() for p in (
        root / "chain" / "state.json", root / "chain" / "chain.json",
        deployment_file(root / "deployments", LOCAL_CHAIN_ID), root / "owned-datasets.json",
    ))  # fmt: skip


def _resolve_rpc(rpc_url: str | None, layout: HomeLayout) -> str:
    if rpc_url:
        return rpc_url
    if env := os.environ.get("COVE_RPC_URL"):
        return env
    info = LocalChain(layout.chain).running()
    if info is None:
        raise ChainError(
            f"No chain to talk to: no local chain runs in {layout.root}. Start it with `cove chain up` "
            "(then `cove deploy`), pass rpc_url=..., or use Cove.local() for a fresh one."
        )
    return info.rpc_url


def _resolve_account(account: str | LocalAccount | None, chain_id: int, layout: HomeLayout) -> tuple[LocalAccount, str]:
    """The signing account and its display name: a dev name, a keystore name or an account object."""
    if account is not None and not isinstance(account, str):
        if not hasattr(account, "address") or not hasattr(account, "sign_transaction"):
            raise AccountError("account= must be an account name (dev0, or a keystore name) or a LocalAccount.")
        return account, str(account.address)
    name = account or os.environ.get("COVE_ACCOUNT") or ("dev0" if chain_id == LOCAL_CHAIN_ID else None)
    if name is None:
        raise AccountError("Pass account=NAME, a keystore account (see `cove account list`).")
    if is_dev_account_name(name):
        return resolve_dev_account(name, chain_id), name
    keystore = Keystore(layout.keystores)
    keystore.existing(name)  # a typo is reported before any password is asked
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = getpass.getpass(f"Password for '{name}': ")
    return keystore.unlock(name, password), name


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"


class Cove:
    """A connection to Cove on one chain, signing as one account. Build it with `Cove.local()`
    or `Cove.connect()`; `use(name)` gives the same chain as another account."""

    def __init__(
        self, client: CoveClient, rpc_url: str, account_name: str, *,
        resources: _Resources | None = None, root: Cove | None = None,
    ):  # fmt: skip
        self.client = client
        self.rpc_url = rpc_url
        self.account_name = account_name
        self._root = root
        self._resources = resources if resources is not None else _Resources()
        self._runner: RunnerThread | None = None
        self._others: dict[str, Cove] = {}
        _serialize_transactions(client.session, rpc_url)
        if root is None:
            self._finalizer = weakref.finalize(self, self._resources.release)
            ipython.install()

    # ------------------------------------------------------------------ construction

    @classmethod
    def connect(cls, rpc_url: str | None = None, account: str | LocalAccount | None = None,
                home: Path | str | None = None) -> Cove:  # fmt: skip
        """Cove on a running chain: by default the local chain of `cove chain up`, as dev0.

        `account`: dev0..dev9 on the local chain, or a keystore account by name (password
        from $COVE_PASSWORD, else asked for). `home`: Cove's state directory ($COVE_HOME,
        else ~/.cove), where keystores, deployments and the content store live.
        """
        layout = HomeLayout(cove_home(home))
        url = _resolve_rpc(rpc_url, layout)
        client = CoveClient.open(url, None, layout.root)
        client.session.account, name = _resolve_account(account, client.session.chain_id, layout)
        return cls(client, url, name)

    @classmethod
    def local(cls, home: Path | str | None = None) -> Cove:
        """A FRESH local anvil chain in `home` (a temporary directory by default) with Cove
        deployed, signing as dev0. `close()` (or the end of the Python process) stops the
        chain and removes the temporary directory."""
        temp = home is None
        root = Path(tempfile.mkdtemp(prefix="cove-local-")) if temp else Path(home).expanduser()
        layout = HomeLayout(root)
        if not temp and _home_has_state(layout):
            raise InputError(
                f"Cove.local() starts a fresh chain, but {root} already holds Cove state; pick a new directory, "
                f"leave home out for a temporary one, or use Cove.connect(home='{root}') for its chain."
            )
        chain = LocalChain(layout.chain)
        resources = _Resources(chain, root if temp else None)
        try:
            info, _ = chain.up()
            owner = dev_account(0)
            deploy(layout.deployments, ChainSession(connect(info.rpc_url), owner))
            client = CoveClient.open(info.rpc_url, owner, root)
        except BaseException:
            resources.release()
            raise
        # The finalizer also runs at interpreter exit (weakref.finalize's atexit), so a kernel
        # that shuts down without close() still stops its chain.
        return cls(client, info.rpc_url, "dev0", resources=resources)

    def use(self, account: str | LocalAccount) -> Cove:
        """This chain and home, signing as another account (e.g. "dev1")."""
        root = self._root or self
        key = account if isinstance(account, str) else str(account.address)
        if key in root._others:
            return root._others[key]
        if key == root.account_name:
            return root
        client = CoveClient.open(self.rpc_url, None, self.client.home.root, self.client.store)
        client.session.account, name = _resolve_account(account, client.session.chain_id, self.client.home)
        other = Cove(client, self.rpc_url, name, resources=root._resources, root=root)
        root._others[key] = other
        return other

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stops this Cove's runners; for the Cove of `Cove.local()`, also the chain it started."""
        if self._root is not None:
            self.stop_runner()
            return
        self._finalizer()

    def __enter__(self) -> Cove:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ who and where

    @property
    def address(self) -> str:
        return self.client.session.sender

    @property
    def chain_id(self) -> int:
        return self.client.session.chain_id

    @property
    def home(self) -> Path:
        return self.client.home.root

    def balances(self) -> dict[str, Any]:
        """ETH, test dollars and job credits (by dataset id) of this account."""
        found = balances(self.client, self.address)
        return {
            "address": found.address,
            "eth": float(found.eth),
            (found.payment_symbol or "payment token"): None if found.payment_balance is None else float(found.payment_balance),
            "credits": {c.dataset_id: int(c.credits) for c in found.credits},
        }

    def deploy_consortium(
        self, name: str, members: dict[str, float], *, voting_delay: int = 60, voting_period: int = 3600,
        timelock_delay: int = 600, quorum_percent: int = 30, threshold: int = 1,
    ) -> Consortium:  # fmt: skip
        """Deploys a consortium; `members` maps accounts (dev2, keystore names) or addresses to votes."""
        addresses = {self._address_of(who): int(votes * 10**18) for who, votes in members.items()}
        record = deploy_governance(
            self.client.session, ConsortiumBook(self.client.home.deployments), name=name, members=addresses,
            voting_delay=voting_delay, voting_period=voting_period, min_delay=timelock_delay,
            quorum_percent=quorum_percent, threshold=threshold,
        )  # fmt: skip
        self.advance(1)  # voting power counts from one second after it was delegated (at mint)
        return Consortium(self, record)

    def consortium(self, name: str | None = None) -> Consortium:
        """A known consortium, acting as this account (`cove.use("dev2").consortium()`)."""
        return Consortium(self, ConsortiumBook(self.client.home.deployments).get(self.chain_id, name))

    def advance(self, seconds: int) -> None:
        """Moves the LOCAL chain's clock forward and mines a block (voting periods, timelock delays)."""
        self.client.session.advance_time(seconds)

    def _address_of(self, who: str) -> str:
        return who if Web3.is_address(who) else self.use(who).address

    def faucet(self, amount: float = 1000) -> float:
        """Mints `amount` test dollars (tUSD, the local chain's payment token) to this account."""
        token_address = self.client.deployment.payment_token
        if token_address is None:
            raise ChainError("This chain has no test payment token; the faucet exists on the local chain only.")
        from exchange.units import scaled

        try:
            units = scaled(amount, 10**18, "amount")
        except ValueError as error:
            raise InputError(f"The {error}.") from None
        if units <= 0:
            raise InputError("The amount must be greater than 0.")
        if units > 10_000 * 10**18:
            raise InputError("The faucet gives at most 10000 tokens per call.")
        token = self.client.erc20(token_address)
        self.client.session.transact(token.functions.faucet(units))
        return float(self.client.session.call(token.functions.balanceOf(self.address))) / 10**18

    # ------------------------------------------------------------------ datasets

    def publish(
        self,
        data: str | Path | pd.DataFrame,
        name: str,
        *,
        budget: float,
        per_job_cap: float,
        price: float = 0,
        free_cap: int | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        max_epochs: int = 20,
        delta: float = 1e-5,
        allowlist: Sequence[str] = (),
        model_families: Sequence[str] = (),
        governed_by: str | None = None,
        license: str = "proprietary",
        runner: str | None = None,
    ) -> Dataset:
        """Publishes a table (a CSV/Parquet path, or a DataFrame) as a dataset owned by this account.

        The rows stay on this machine (a DataFrame is first written to a private file under
        the Cove home); only the schema, a schema-only mock and the commitment are published.
        `price` is in test dollars per credit (0: free, with `free_cap` credits per address,
        10 by default). `governed_by`: a consortium whose votes alone may change the policy.
        """
        written: Path | None = None
        if isinstance(data, pd.DataFrame):
            folder = self.home / "private"
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
            written = folder / f"{_slug(name)}-{uuid.uuid4().hex[:8]}.parquet"
            fd = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            try:
                data.to_parquet(written, index=False)
            except (ValueError, TypeError, ImportError) as error:
                written.unlink(missing_ok=True)
                raise InputError(f"The DataFrame cannot be stored as a table ({type(error).__name__}); "
                                 "use plain columns of numbers, booleans, text or datetimes.") from None  # fmt: skip
            path = written
        else:
            path = Path(data).expanduser()
        free = float(price) == 0
        terms = parse_terms(
            price=str(price), payment_token=None if free else self.client.deployment.payment_token,
            budget=str(budget), per_job_cap=str(per_job_cap), delta=str(delta), max_epochs=max_epochs,
            free_cap=(FREE_CAP_DEFAULT if free else 0) if free_cap is None else free_cap,
            allowlist=list(allowlist), model_families=list(model_families),
        )  # fmt: skip
        controller = None
        if governed_by is not None:
            from exchange.governance import ConsortiumBook

            controller = ConsortiumBook(self.client.home.deployments).get(self.chain_id, governed_by).timelock
        try:
            result = publish_dataset(
                self.client, path, name=name, terms=terms, description=description, license=license,
                tags=list(tags), runner=runner, controller=controller,
            )  # fmt: skip
        except BaseException:
            if written is not None:
                written.unlink(missing_ok=True)
            raise
        dataset = Dataset(self, result.dataset_id)
        dataset.published = result
        return dataset

    def datasets(self) -> pd.DataFrame:
        """Every published dataset: id, name, rows, columns, price, budget ε, per-job ε, owner, tags."""
        return datasets_frame(self.client)

    def dataset(self, dataset_id: int | Dataset) -> Dataset:
        """Dataset `dataset_id`, seen by this account."""
        return Dataset(self, dataset_id.id if isinstance(dataset_id, Dataset) else int(dataset_id))

    # ------------------------------------------------------------------ jobs

    def jobs(self, everyone: bool = False) -> pd.DataFrame:
        """This account's jobs (`everyone=True`: all jobs): id, dataset, status, ε, reason, ..."""
        infos = list_jobs(self.client, None if everyone else self.address)
        deltas: dict[int, float] = {}
        if infos:
            from exchange.catalog import policy_of

            for dataset_id in {i.dataset_id for i in infos}:
                deltas[dataset_id] = float(policy_of(self.client, dataset_id)[0].delta)
        return ledger.jobs_frame(self.client, infos, deltas)

    def job(self, job_id: int | Job) -> Job:
        """Job `job_id`, seen by this account."""
        return Job(self, job_id.id if isinstance(job_id, Job) else int(job_id))

    # ------------------------------------------------------------------ the owner's runner

    def start_runner(
        self, *, interval: float = RUNNER_INTERVAL_S, device: str | None = None, allow_unsandboxed: bool = False,
        wall_seconds: float = 1800, memory_gb: float = 6.0, report: Callable[[str], None] | None = None,
    ) -> RunnerThread:  # fmt: skip
        """Starts this account's compute-to-data runner in a daemon thread (polling every 0.5 s).

        It serves the datasets this account published from this Cove home: claims their
        jobs, trains them with DP in the sandbox and completes them. Its messages are in
        `.log` of what it returns; `stop_runner()` stops it. Starting it twice is harmless.
        """
        if self._runner is not None and self._runner.running:
            return self._runner
        from compute_to_data.runner import RunnerLimits
        from compute_to_data.sandbox import sandbox_available

        if sandbox_available() is None and not allow_unsandboxed:
            raise CoveError(
                "No sandbox can be made on this machine (needs unshare or bubblewrap); refusing to train. "
                "Pass allow_unsandboxed=True to train anyway, recorded in provenance."
            )
        limits = RunnerLimits(
            memory_bytes=int(memory_gb * 1024**3), wall_seconds=wall_seconds, device=device,
            allow_unsandboxed=allow_unsandboxed,
        )  # fmt: skip
        # Its own client: the thread must not share a web3 session with the notebook.
        client = CoveClient.open(self.rpc_url, self.client.session.account, self.home, self.client.store)
        _serialize_transactions(client.session, self.rpc_url)
        self._runner = RunnerThread(client, interval=interval, limits=limits, report=report)
        self._resources.runners.append(self._runner)
        return self._runner

    def stop_runner(self) -> None:
        """Stops the runner (after the job it is on, if any)."""
        if self._runner is not None:
            self._runner.stop()
            if self._runner in self._resources.runners:
                self._resources.runners.remove(self._runner)
            self._runner = None

    @property
    def runner(self) -> RunnerThread | None:
        return self._runner

    # ------------------------------------------------------------------ display

    def _pairs(self) -> list[tuple[str, Any]]:
        return [
            ("account", f"{self.account_name} ({self.address})" if self.account_name != self.address else self.address),
            ("chain", f"{self.chain_id} at {self.rpc_url}"),
            ("Cove hub", self.client.deployment.cove),
            ("home", str(self.home)),
            ("runner", "running" if self._runner is not None and self._runner.running else "not running"),
        ]

    def _repr_html_(self) -> str:
        return display.fields(self._pairs(), caption="Cove")

    def __repr__(self) -> str:
        return f"<Cove {self.account_name} {self.address} on chain {self.chain_id} at {self.rpc_url}>"
