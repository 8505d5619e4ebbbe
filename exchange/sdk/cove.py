"""`Cove`: the notebook's entry point, one chain, one hub and one signing account.

    hospital = Cove.local()             # a fresh local chain, Cove deployed, signing as dev0
    ds = hospital.publish(frame, "Patients", budget=8, per_job_cap=2)
    hospital.start_runner()             # the owner's runner and endpoint: a process of its own
    me = hospital.elsewhere("dev1")     # a data scientist on another machine: own home, same chain
    me.faucet(); me.dataset(ds.id).buy()
    job = me.dataset(ds.id).train(Spec.mlp(["age", "bmi"], "diagnosis", dataset=ds)).wait()
    job.model(); job.verify(); job.evaluate(held_out)
    hospital.close()                    # stops the runner and the local chain

`Cove(rpc=URL, hub=ADDRESS)` (or `Cove(network=NAME)`) joins Cove on any chain knowing only
where it is: the hub is checked on-chain, and content comes from the dataset's endpoint.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import tempfile
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
from exchange.connection import resolve_target
from exchange.datasets import DatasetSchema, draft_schema, load_table
from exchange.datasets.dp_count import DEFAULT_COUNT_NOISE
from exchange.errors import AccountError, InputError
from exchange.governance import ConsortiumBook, find_consortium
from exchange.governance import deploy_consortium as deploy_governance
from exchange.market import balances, mint_test_tokens
from exchange.paths import HomeLayout, cove_home
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.runner_process import RunnerProcess
from exchange.sdk import display, ipython, ledger
from exchange.sdk.dataset import Dataset
from exchange.sdk.governance import Consortium
from exchange.sdk.job import Federation, Job
from exchange.sdk.spec import spec_of

log = logging.getLogger("cove.sdk")

RUNNER_INTERVAL_S = 0.5
FREE_CAP_DEFAULT = 10  # free credits per address when a free dataset names no cap

class _Resources:
    """What a Cove must release when it closes or is collected: runner processes, the local
    chain, temporary homes."""

    def __init__(self, chain: LocalChain | None = None, temp_home: Path | None = None):
        self.chain = chain
        self.temp_homes = [temp_home] if temp_home is not None else []
        self.runners: list[RunnerProcess] = []
        self.released = False

    def stop_runners(self, timeout: float = 30) -> None:
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
        for home in self.temp_homes:
            shutil.rmtree(home, ignore_errors=True)


def _home_has_state(layout: HomeLayout) -> bool:
    root = layout.root
    return any(p.exists() for p in (
        root / "chain" / "state.json", root / "chain" / "chain.json",
        deployment_file(root / "deployments", LOCAL_CHAIN_ID), root / "owned-datasets.json",
    ))  # fmt: skip


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


def _declared_schema(schema: DatasetSchema | dict[str, Any] | str | Path) -> DatasetSchema:
    if isinstance(schema, DatasetSchema):
        return schema
    if isinstance(schema, dict):
        return DatasetSchema.declared(schema)
    return DatasetSchema.load(Path(schema).expanduser())


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"


class Cove:
    """A connection to Cove on one chain, signing as one account.

    `Cove(rpc=URL, hub=ADDRESS, account=NAME)` or `Cove(network=NAME)` joins any chain;
    `Cove()` the local chain of `cove chain up`; `Cove.local()` starts a fresh one. `use(name)`
    acts as another account from this home, `elsewhere(name)` from a home of its own.
    """

    def __init__(
        self,
        rpc: str | None = None,
        hub: str | None = None,
        *,
        network: str | None = None,
        account: str | LocalAccount | None = None,
        home: Path | str | None = None,
        gateways: Sequence[str] = (),
    ):
        """Cove at `rpc` and `hub` (or a named `network`; by default the local chain of `cove
        chain up` and the hub `cove deploy` recorded), as `account`: dev0..dev9 on the local
        chain, or a keystore account by name (password from $COVE_PASSWORD, else asked for).
        `home`: this party's state directory ($COVE_HOME, else ~/.cove). `gateways`: IPFS
        gateways to fetch content from when a dataset's endpoint cannot serve it."""
        layout = HomeLayout(cove_home(home))
        target = resolve_target(layout, rpc=rpc, hub=hub, network=network, gateways=gateways)
        client = CoveClient.for_target(target, None, layout.root)
        client.session.account, name = _resolve_account(account, client.session.chain_id, layout)
        self._setup(client, target.rpc, name, _Resources(), None)

    def _setup(self, client: CoveClient, rpc_url: str, account_name: str, resources: _Resources, root: Cove | None) -> None:
        self.client = client
        self.rpc_url = rpc_url
        self.account_name = account_name
        self._root = root
        self._resources = resources
        self._runner: RunnerProcess | None = None
        self._others: dict[str, Cove] = {}
        if root is None:
            self._finalizer = weakref.finalize(self, self._resources.release)
            ipython.install()

    @classmethod
    def _wrap(cls, client: CoveClient, rpc_url: str, account_name: str, resources: _Resources, root: Cove | None) -> Cove:
        cove = cls.__new__(cls)
        cove._setup(client, rpc_url, account_name, resources, root)
        return cove

    # ------------------------------------------------------------------ construction

    @classmethod
    def connect(cls, rpc_url: str | None = None, account: str | LocalAccount | None = None,
                home: Path | str | None = None, hub: str | None = None) -> Cove:  # fmt: skip
        """The same as `Cove(rpc_url, hub, account=account, home=home)`."""
        return cls(rpc_url, hub, account=account, home=home)

    @classmethod
    def local(cls, home: Path | str | None = None) -> Cove:
        """A FRESH local anvil chain in `home` (a temporary directory by default) with Cove
        deployed, signing as dev0. `close()` (or the end of the Python process) stops the
        chain and removes the temporary directories."""
        temp = home is None
        root = Path(tempfile.mkdtemp(prefix="cove-local-")) if temp else Path(home).expanduser()
        layout = HomeLayout(root)
        if not temp and _home_has_state(layout):
            raise InputError(
                f"Cove.local() starts a fresh chain, but {root} already holds Cove state; pick a new directory, "
                f"leave home out for a temporary one, or use Cove(home='{root}') for its chain."
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
        return cls._wrap(client, info.rpc_url, "dev0", resources, None)

    def use(self, account: str | LocalAccount) -> Cove:
        """This chain and home, signing as another account (e.g. "dev1")."""
        root = self._root or self
        key = account if isinstance(account, str) else str(account.address)
        if key in root._others:
            return root._others[key]
        if key == root.account_name:
            return root
        client = CoveClient.open(self.rpc_url, None, self.client.home.root, self.client.store, hub=self.hub,
                                 gateways=self.client.gateways)  # fmt: skip
        client.session.account, name = _resolve_account(account, client.session.chain_id, self.client.home)
        other = Cove._wrap(client, self.rpc_url, name, root._resources, root)
        root._others[key] = other
        return other

    def elsewhere(self, account: str | LocalAccount) -> Cove:
        """Another party on another machine: `account` with a fresh home of its own (removed at
        `close()`), sharing nothing with this one but the RPC URL, the hub and the gateways.
        What it reads about datasets comes from the chain and the owners' endpoints."""
        root = self._root or self
        home = Path(tempfile.mkdtemp(prefix="cove-party-"))
        root._resources.temp_homes.append(home)
        client = CoveClient.open(self.rpc_url, None, home, hub=self.hub, gateways=self.client.gateways)
        client.session.account, name = _resolve_account(account, client.session.chain_id, self.client.home)
        return Cove._wrap(client, self.rpc_url, name, root._resources, root)

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

    @property
    def hub(self) -> str:
        """The Cove hub's address: with the RPC URL, all another party needs to join."""
        return self.client.deployment.cove

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

    def consortium(self, name_or_governor: str | None = None) -> Consortium:
        """A consortium, acting as this account: by the name this home knows it by
        (`cove.use("dev2").consortium()`), or by its governor's address from any home
        (`cove.elsewhere("dev2").consortium(hospitals.governor)`)."""
        book = ConsortiumBook(self.client.home.deployments)
        return Consortium(self, find_consortium(self.client, book, name_or_governor))

    def advance(self, seconds: int) -> None:
        """Moves the LOCAL chain's clock forward and mines a block (voting periods, timelock delays)."""
        self.client.session.advance_time(seconds)

    def _address_of(self, who: str) -> str:
        return who if Web3.is_address(who) else self.use(who).address

    def faucet(self, amount: float = 1000) -> float:
        """Mints `amount` test dollars (tUSD, the local chain's payment token) to this account;
        returns the new balance."""
        return float(mint_test_tokens(self.client, amount)[1])

    # ------------------------------------------------------------------ datasets

    def publish(
        self,
        data: str | Path | pd.DataFrame,
        name: str,
        *,
        schema: DatasetSchema | dict[str, Any] | str | Path,
        budget: float,
        per_job_cap: float,
        count_noise: float = DEFAULT_COUNT_NOISE,
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
        the Cove home); what is published is the declared `schema` (a DatasetSchema, its JSON
        form as a dict, or a schema file; `draft_schema(frame)` gives a starting point to edit),
        a mock drawn from it, the hiding commitment and the row count plus discrete Gaussian
        noise of σ `count_noise` (charged to the budget). `price` is in test dollars per credit
        (0: free, with `free_cap` credits per address, 10 by default). `governed_by`: a
        consortium whose votes alone may change the policy.
        """
        declared = _declared_schema(schema)
        written: Path | None = None
        if isinstance(data, pd.DataFrame):
            folder = self.client.home.private
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
            controller = find_consortium(self.client, ConsortiumBook(self.client.home.deployments), governed_by).timelock
        try:
            result = publish_dataset(
                self.client, path, name=name, terms=terms, schema=declared, count_noise=count_noise,
                description=description, license=license, tags=list(tags), runner=runner, controller=controller,
            )  # fmt: skip
        except BaseException:
            if written is not None:
                written.unlink(missing_ok=True)
            raise
        dataset = Dataset(self, result.dataset_id)
        dataset.published = result
        return dataset

    def draft_schema(self, data: str | Path | pd.DataFrame) -> DatasetSchema:
        """A draft schema read off a private table, for you to edit before publishing: its
        ranges, labels and nullability describe the private rows, so publishing it unedited
        would publish them (see `cove schema draft`)."""
        frame = data if isinstance(data, pd.DataFrame) else load_table(Path(data).expanduser())
        return draft_schema(frame)

    def datasets(self) -> pd.DataFrame:
        """Every published dataset: id, name, rows, columns, price, budget ε, per-job ε, owner, tags."""
        return datasets_frame(self.client)

    def dataset(self, dataset_id: int | Dataset) -> Dataset:
        """Dataset `dataset_id`, seen by this account."""
        return Dataset(self, dataset_id.id if isinstance(dataset_id, Dataset) else int(dataset_id))

    # ------------------------------------------------------------------ jobs

    def jobs(self, everyone: bool = False) -> pd.DataFrame:
        """This account's jobs (`everyone=True`: all jobs): id, dataset, status, ε, reason, ..."""
        rows = ledger.indexed_jobs(self.client, consumer=None if everyone else self.address)
        deltas = ledger.policy_deltas(self.client, {row["dataset_id"] for row in rows})
        return ledger.jobs_frame(self.client, rows, deltas)

    def job(self, job_id: int | Job) -> Job:
        """Job `job_id`, seen by this account."""
        return Job(self, job_id.id if isinstance(job_id, Job) else int(job_id))

    def train(
        self,
        spec: Any,
        dataset: int | Dataset | None = None,
        *,
        datasets: Sequence[int | Dataset] | None = None,
        rounds: int | None = None,
        deadline_hours: float = 24,
        init_seed: int | None = None,
        join_timeout: float = 120,
        stage_timeout: float = 120,
        train_timeout: float = 600,
        timeout: float | None = None,
        on_round: Callable[[int, bytes], None] | None = None,
        listen: str | None = None,
        public_address: str | None = None,
    ) -> Job | Federation:
        """Trains `spec` on one dataset, or one model over several.

        `train(spec, dataset=1)`: the same as `dataset(1).train(spec)`, a Job of the dataset's
        runner (one credit, its ε reserved). `train(spec, datasets=[1, 2, 3], rounds=R)`: a
        federated run that this machine aggregates (Flower's SecAgg+, every round's model
        digest committed on-chain): one job and one credit per dataset, each dataset charged
        ε for the spec's epochs in every one of the R rounds. It returns when the run is over,
        with a Federation (`.model()`, `.id`, `.job_ids`, `.epsilons`, `.round_digests`);
        the datasets' runners must be up to join it. `on_round(round, digest)` is told of
        each committed round. `stage_timeout` / `train_timeout`: seconds a round waits for the
        runners' replies to each key stage of SecAgg+ / for their trained updates. `listen` / `public_address`: the host:port the SuperLink binds
        (default 127.0.0.1) and the one runners dial. Refused before anything is spent (one sentence) when the
        datasets differ in the spec's columns or any dataset's policy refuses its job.
        """
        if datasets is None:
            if dataset is None:
                raise InputError("Give dataset= (one dataset) or datasets=[...] and rounds= (one model over several).")
            if rounds is not None:
                raise InputError("rounds= trains one model over several datasets; give them as datasets=[...].")
            return self.dataset(dataset).train(spec, deadline_hours=deadline_hours)
        if dataset is not None:
            raise InputError("Give either dataset= or datasets=, not both.")
        if rounds is None:
            raise InputError("Training over several datasets needs rounds=: how many federated rounds to run.")
        from exchange.federated.run import train_federated

        ids = [d.id if isinstance(d, Dataset) else int(d) for d in datasets]
        result = train_federated(
            self.client, spec_of(spec), ids, int(rounds), init_seed=init_seed, join_timeout=join_timeout,
            stage_timeout=stage_timeout, train_timeout=train_timeout, timeout=timeout, deadline_seconds=int(deadline_hours * 3600), on_round=on_round,
            listen=listen, public_address=public_address,
        )  # fmt: skip
        return Federation(self, result)

    # ------------------------------------------------------------------ the owner's runner

    def start_runner(
        self, *, interval: float = RUNNER_INTERVAL_S, device: str | None = None, allow_unsandboxed: bool = False,
        wall_seconds: float = 1800, memory_gb: float = 6.0,
    ) -> RunnerProcess:  # fmt: skip
        """Starts this account's compute-to-data runner and endpoint as their own process
        (`cove runner start --listen …`), as the owner would on their premises.

        It serves the datasets this account published from this Cove home: claims their
        jobs, trains them with DP in the sandbox and completes them, and serves their
        metadata and results to buyers on a loopback endpoint it announces on-chain. Its
        output is in `.log` of what it returns; `stop_runner()` stops it. Starting it twice
        is harmless.
        """
        if self._runner is not None and self._runner.running:
            return self._runner
        options = ["--memory-gb", str(memory_gb), "--wall-seconds", str(wall_seconds)]
        if device is not None:
            options += ["--device", device]
        if allow_unsandboxed:
            options.append("--allow-unsandboxed")
        self._runner = RunnerProcess(
            self.client, self.rpc_url, self.account_name, self.home, interval=interval, options=options
        )
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
    def runner(self) -> RunnerProcess | None:
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
