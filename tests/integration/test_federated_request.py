"""A federated request on a real anvil, without Flower: three owners publish, one data scientist
asks for one model over their datasets. `request_federation` opens a FederatedRounds federation
of one ComputeJobs job per dataset, each dataset's ledger charged for all local steps of all
rounds; every refusal (a dataset's budget, mismatched schemas, one dataset, one given twice)
comes before any credit of any dataset is spent. (The Flower run itself, `train_federated`,
is tested end to end with real runners in tests/e2e.)"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import PATIENTS_SCHEMA, make_table

from exchange.accounts import dev_account
from exchange.catalog import dataset_view
from exchange.client import CoveClient
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import CoveError, InputError, PrivacyError, SpecError, TransactionReverted
from exchange.federated import request as federated_request
from exchange.federated import run as federated
from exchange.federated.arrays import model_digest
from exchange.federated.request import (
    FederationError,
    check_shared_columns,
    naming_dataset,
    request_federation,
)  # fmt: skip
from exchange.federated.server import initial_arrays, read_federation
from exchange.jobs import curve_hash_of, request_job, requested_job
from exchange.market import buy_credits
from exchange.ml.accounting import DpParams, compose, epsilon_fixed
from exchange.ml.spec import FederationSpec, ModelSpec
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.units import CREDIT

OWNERS, BUYER, OTHER_AGGREGATOR = (0, 2, 4), 1, 3
SUPERLINK = "127.0.0.1:9092"  # never dialled here: no runner runs in these tests


def spec_of(rounds: int | None, **dp: Any) -> ModelSpec:
    spec = ModelSpec.parse(json.dumps({
        "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "expected_batch_size": 20,
        "epochs": 1, "dp": {"delta": 1e-5, "max_grad_norm": 1.0, **(dp or {"noise_multiplier": 1.5})},
    }))  # fmt: skip
    if rounds is None:
        return spec
    return spec.model_copy(update={"federation": FederationSpec(rounds=rounds, superlink=SUPERLINK)})


def publish(owner: CoveClient, folder: Path, seed: int, *, schema: DatasetSchema = PATIENTS_SCHEMA,
            budget: str = "20", per_job_cap: str = "10") -> int:  # fmt: skip
    path = folder / f"site-{seed}.csv"
    make_table(rows=120, seed=seed).to_csv(path, index=False)
    terms = parse_terms(budget=budget, per_job_cap=per_job_cap, free_cap=5)
    return publish_dataset(owner, path, name=f"site {seed}", terms=terms, schema=schema).dataset_id


def credits(client: CoveClient, dataset_id: int) -> int:
    token = client.datatoken(dataset_view(client, dataset_id).datatoken)
    return int(client.session.call(token.functions.balanceOf(client.session.sender))) // CREDIT


def ledger(client: CoveClient, dataset_id: int) -> tuple[int, ...]:
    return tuple(client.session.call(client.jobs.functions.curveOf(dataset_id)))


def job_count(client: CoveClient) -> int:
    return int(client.session.call(client.jobs.functions.jobCount()))


def federation_count(client: CoveClient) -> int:
    contract = client.session.contract("FederatedRounds", client.deployment.federated_rounds)
    return int(client.session.call(contract.functions.federationCount()))


def spent_nothing(buyer: CoveClient, before: dict[str, Any], datasets: list[int]) -> None:
    assert job_count(buyer) == before["jobs"]
    assert federation_count(buyer) == before["federations"]
    assert {d: credits(buyer, d) for d in datasets} == before["credits"]
    assert {d: ledger(buyer, d) for d in datasets} == before["ledgers"]


def snapshot(buyer: CoveClient, datasets: list[int]) -> dict[str, Any]:
    return {"jobs": job_count(buyer), "federations": federation_count(buyer),
            "credits": {d: credits(buyer, d) for d in datasets}, "ledgers": {d: ledger(buyer, d) for d in datasets}}  # fmt: skip


@pytest.fixture
def sites(client_for, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Three owners' datasets (#1, #2, #3; #3 with a budget of ε 6); the buyer holds two credits of each."""
    owners = [client_for(i) for i in OWNERS]
    datasets = [publish(o, tmp_path, seed) for o, seed in zip(owners[:2], (1, 2), strict=True)]
    datasets.append(publish(owners[2], tmp_path, 3, budget="6", per_job_cap="6"))
    buyer = client_for(BUYER)
    for dataset_id in datasets:
        buy_credits(buyer, dataset_id, 2)
    return SimpleNamespace(owners=owners, buyer=buyer, datasets=datasets, folder=tmp_path)


@pytest.mark.chain
def test_request_federation_opens_one_job_per_dataset_each_charged_for_every_round(sites) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    spec = spec_of(3)
    before = {d: ledger(buyer, d) for d in datasets}
    ticket = request_federation(buyer, spec, datasets, init_seed=7)

    # The federation, as the chain records it: the three jobs, the caller as consumer and
    # aggregator, the rounds, and round 0's model digest, recomputable from the seed.
    info = read_federation(buyer, ticket.federation_id)
    assert info.jobs == ticket.job_ids and len(set(info.jobs)) == 3
    assert (info.consumer, info.aggregator, info.rounds, info.committed) == (buyer.session.sender,) * 2 + (3, 0)
    expected = model_digest(initial_arrays(spec, PATIENTS_SCHEMA, 7))
    assert info.initial_digest == ticket.initial_digest == expected
    assert expected != model_digest(initial_arrays(spec, PATIENTS_SCHEMA, 8))  # control: the seed matters
    contract = buyer.session.contract("FederatedRounds", buyer.deployment.federated_rounds)
    assert [buyer.session.call(contract.functions.federationOfJob(j)) for j in ticket.job_ids] == [1, 1, 1]
    assert ticket.dataset_ids == tuple(datasets) and ticket.rounds == 3
    assert len(ticket.tx_hashes) == 4 and ticket.gas_used > ticket.open_gas_used > 0

    for job_id, dataset_id in zip(ticket.job_ids, datasets, strict=True):
        job = buyer.session.call(buyer.jobs.functions.jobOf(job_id))
        assert (job[0], job[1], job[4]) == (buyer.session.sender, dataset_id, 1)  # the buyer's, Requested
        assert credits(buyer, dataset_id) == 1

        # The ledger was charged the accountant's curve for all local steps of all rounds:
        # three times one round's steps, and more than one round alone would cost.
        rows = dataset_view(buyer, dataset_id).rows
        params = DpParams.for_spec(spec, rows)
        assert params.epochs == 3 and params.steps == 3 * DpParams.for_spec(spec_of(1), rows).steps
        curve = params.curve_fixed()
        assert ledger(buyer, dataset_id) == compose([before[dataset_id], curve])  # (saturating, as the ledger adds)
        assert requested_job(buyer, job_id).curve_hash == curve_hash_of(curve)
        own = epsilon_fixed(curve, params.delta)
        assert own > epsilon_fixed(DpParams.for_spec(spec_of(1), rows).curve_fixed(), params.delta)
        assert int(buyer.session.call(buyer.jobs.functions.epsilonOf(list(curve), params.delta_fixed))) == own
        composed = epsilon_fixed(compose([before[dataset_id], curve]), params.delta)
        assert int(buyer.session.call(buyer.jobs.functions.composedEpsilon(dataset_id))) == composed
        assert ticket.epsilons[dataset_id] == own / 10**6
        assert ticket.composed_epsilons[dataset_id] == composed / 10**6

    # The jobs carry the federated spec (its rounds and superlink in its hash).
    carried = requested_job(buyer, ticket.job_ids[0])
    assert ModelSpec.from_wire(carried.spec) == spec and "0x" + carried.spec_hash.hex() == spec.spec_hash()

    # Another aggregator may run it; the datasets' second credits pay for this one.
    other = dev_account(OTHER_AGGREGATOR).address
    second = request_federation(buyer, spec_of(2), datasets[:2], init_seed=1, aggregator=other)
    assert read_federation(buyer, second.federation_id).aggregator == other
    assert read_federation(buyer, second.federation_id).jobs == second.job_ids
    assert second.federation_id == 2 and (credits(buyer, datasets[0]), credits(buyer, datasets[2])) == (0, 1)


@pytest.mark.chain
def test_rounds_beyond_one_datasets_budget_are_refused_before_any_credit_is_spent(sites) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    small = datasets[2]  # ε 6 in all, the count's release already on its ledger
    buy_credits(buyer, small, 1)
    request_job(buyer, small, spec_of(None))  # an ordinary job first: ε 2 or so of its budget spent
    rows = dataset_view(buyer, small).rows
    budget = 6 * 10**6

    def composed(rounds: int) -> tuple[int, int]:
        params = DpParams.for_spec(spec_of(rounds), rows)
        curve = params.curve_fixed()
        return epsilon_fixed(curve, params.delta), epsilon_fixed(compose([ledger(buyer, small), curve]), params.delta)

    too_many = next(r for r in range(1, 30) if composed(r)[1] > budget)
    assert too_many >= 2 and composed(too_many)[0] <= budget  # the budget refuses it, not the per-job cap
    before = snapshot(buyer, datasets)
    with pytest.raises(PrivacyError) as refused:
        request_federation(buyer, spec_of(too_many), datasets, init_seed=3)
    message = str(refused.value)
    assert f"Dataset #{small} has not enough privacy budget left" in message, message
    assert f"#{datasets[0]}" not in message and f"#{datasets[1]}" not in message
    # The first two datasets' jobs were priced, fitted and accepted: nothing of theirs was spent.
    spent_nothing(buyer, before, datasets)

    # Control: one round fewer fits every budget, and is charged.
    own, total = composed(too_many - 1)
    ticket = request_federation(buyer, spec_of(too_many - 1), datasets, init_seed=3)
    assert read_federation(buyer, ticket.federation_id).rounds == too_many - 1
    assert [credits(buyer, d) for d in datasets] == [1, 1, 1]
    assert (ticket.epsilons[small], ticket.composed_epsilons[small]) == (own / 10**6, total / 10**6)
    assert int(buyer.session.call(buyer.jobs.functions.composedEpsilon(small))) == total <= budget


@pytest.mark.chain
def test_a_refusal_that_names_no_dataset_is_said_of_its_dataset(sites, client_for) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    capped = publish(client_for(OWNERS[1]), sites.folder, 4, budget="20", per_job_cap="2")
    buy_credits(buyer, capped, 1)
    before = snapshot(buyer, [*datasets, capped])
    with pytest.raises(PrivacyError) as refused:
        request_federation(buyer, spec_of(4), [datasets[0], capped], init_seed=1)
    assert str(refused.value).startswith(f"For dataset #{capped}: this job would spend ε "), str(refused.value)
    assert "per-job cap of ε 2" in str(refused.value)
    # No credit: said of that dataset, before the other's credit is spent.
    stranger = client_for(OTHER_AGGREGATOR)
    buy_credits(stranger, datasets[0], 1)
    with pytest.raises(InputError) as refused:
        request_federation(stranger, spec_of(1), datasets[:2], init_seed=1)
    assert str(refused.value) == (
        f"{stranger.session.sender} holds no credit of dataset #{datasets[1]}; buy one with `cove buy {datasets[1]}`."
    )
    assert credits(stranger, datasets[0]) == 1
    spent_nothing(buyer, before, [*datasets, capped])


@pytest.mark.chain
def test_datasets_whose_column_schemas_differ_are_refused(sites, client_for) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    columns = {c.name: c for c in PATIENTS_SCHEMA.columns}
    older = DatasetSchema(columns=[columns["age"].model_copy(update={"maximum": 120}),
                                   *(c for c in PATIENTS_SCHEMA.columns if c.name != "age")])  # fmt: skip
    other = publish(client_for(OWNERS[2]), sites.folder, 5, schema=older)
    buy_credits(buyer, other, 1)
    before = snapshot(buyer, [*datasets, other])
    with pytest.raises(SpecError) as refused:
        request_federation(buyer, spec_of(2), [*datasets[:2], other], init_seed=1)
    assert str(refused.value) == (
        f"Dataset #{other}'s column 'age' is in [18, 120], but dataset #{datasets[0]}'s is in [18, 100]; "
        "a federation needs the same public schema for every column the spec uses."
    )
    spent_nothing(buyer, before, [*datasets, other])
    # A spec that leaves the differing column out federates them.
    without_age = spec_of(2).model_copy(update={"features": ("bmi", "smoker")})
    ticket = request_federation(buyer, without_age, [datasets[0], other], init_seed=1)
    assert ticket.dataset_ids == (datasets[0], other)


@pytest.mark.chain
def test_one_dataset_one_given_twice_or_no_federation_is_refused_before_anything(sites) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    before = snapshot(buyer, datasets)
    with pytest.raises(InputError, match=r"^A federation trains on at least 2 datasets, not 1; "):
        request_federation(buyer, spec_of(2), datasets[:1], init_seed=1)
    with pytest.raises(InputError) as refused:
        request_federation(buyer, spec_of(2), [datasets[0], datasets[1], datasets[0]], init_seed=1)
    assert str(refused.value) == f"Dataset #{datasets[0]} is given twice; a federation trains on each dataset once."
    with pytest.raises(SpecError, match="needs a spec with a federation part"):
        request_federation(buyer, spec_of(None), datasets, init_seed=1)
    with pytest.raises(CoveError, match="There is no dataset #99"):
        request_federation(buyer, spec_of(2), [datasets[0], 99], init_seed=1)
    with pytest.raises(InputError, match="is not an account address"):
        request_federation(buyer, spec_of(2), datasets, init_seed=1, aggregator="0x" + "00" * 20)
    spent_nothing(buyer, before, datasets)


@pytest.mark.parametrize("timeout", ["join_timeout", "stage_timeout", "train_timeout"])
@pytest.mark.parametrize("seconds", [0, -5, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused_before_anything(sites, fake_flower, timeout: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    before = snapshot(buyer, datasets)
    what = timeout.removesuffix("_timeout")
    with pytest.raises(InputError, match=rf"^The {what} timeout is \S+ s; give a positive number of seconds \(--{what}-timeout\)\.$"):
        federated.train_federated(buyer, spec_of(None), datasets, 2, init_seed=1, poll=0, **{timeout: seconds})
    assert fake_flower.instances == []  # no SuperLink started
    spent_nothing(buyer, before, datasets)


@pytest.mark.chain
def test_a_failed_opening_names_the_jobs_it_leaves_open(sites, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets

    def refuse(client: CoveClient, function: Any) -> Any:
        raise TransactionReverted("Job #2 is already in federation #1.", "AlreadyFederated", (2, 1))

    monkeypatch.setattr(federated_request, "_open", refuse)
    with pytest.raises(FederationError) as failed:
        request_federation(buyer, spec_of(2), datasets[:2], init_seed=1)
    message = str(failed.value)
    assert message.startswith("Opening the federation failed (Job #2 is already in federation #1), but jobs "
                              f"#1 (dataset #{datasets[0]}), #2 (dataset #{datasets[1]}) were requested"), message  # fmt: skip
    assert "take them back after their deadline (" in message and "ComputeJobs.refund" in message
    assert message.endswith(".") and "\n" not in message
    assert federation_count(buyer) == 0 and job_count(buyer) == 2


# ---------------------------------------------------------------------------- without a chain


def _view(dataset_id: int, schema: DatasetSchema) -> Any:
    return SimpleNamespace(dataset_id=dataset_id, metadata=SimpleNamespace(schema_=schema))


def _with(name: str, **changes: Any) -> DatasetSchema:
    return DatasetSchema(columns=[c.model_copy(update=changes) if c.name == name else c for c in PATIENTS_SCHEMA.columns])


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        (_with("bmi", nullable=True), "column 'bmi' may be missing, but dataset #1's may not be missing"),
        (_with("diagnosis", categories=["benign", "malignant", "unknown"]),
         "column 'diagnosis' has the categories 'benign', 'malignant', 'unknown', but dataset #1's has the "
         "categories 'benign', 'malignant'"),
        (_with("diagnosis", fallback="malignant"), "column 'diagnosis' falls back to 'malignant', but dataset #1's "
         "falls back to the default"),
        (_with("age", minimum=0), "column 'age' is in [0, 100], but dataset #1's is in [18, 100]"),
    ],
)  # fmt: skip
def test_check_shared_columns_names_the_dataset_and_the_column(schema: DatasetSchema, fragment: str) -> None:
    with pytest.raises(SpecError) as refused:
        check_shared_columns(spec_of(2), [_view(1, PATIENTS_SCHEMA), _view(2, PATIENTS_SCHEMA), _view(3, schema)])
    assert str(refused.value).startswith(f"Dataset #3's {fragment}; "), str(refused.value)


def test_check_shared_columns_ignores_columns_the_spec_does_not_use() -> None:
    extra = DatasetSchema(columns=[*PATIENTS_SCHEMA.columns, ColumnSchema(name="zip", kind="integer", nullable=True,
                                                                          minimum=0, maximum=99999)])  # fmt: skip
    check_shared_columns(spec_of(2), [_view(1, PATIENTS_SCHEMA), _view(2, extra)])
    kinds = DatasetSchema(columns=[c for c in PATIENTS_SCHEMA.columns if c.name != "smoker"]
                          + [ColumnSchema(name="smoker", kind="integer", nullable=False, minimum=0, maximum=1)])  # fmt: skip
    with pytest.raises(SpecError, match=r"^Dataset #2's column 'smoker' is of kind integer, but dataset #1's is of kind boolean; "):
        check_shared_columns(spec_of(2), [_view(1, PATIENTS_SCHEMA), _view(2, kinds)])
    missing = DatasetSchema(columns=[c for c in PATIENTS_SCHEMA.columns if c.name != "bmi"])
    with pytest.raises(SpecError, match=r"^For dataset #2: the spec uses a feature column 'bmi' that the dataset does not have"):
        check_shared_columns(spec_of(2), [_view(1, PATIENTS_SCHEMA), _view(2, missing)])


def test_naming_dataset_keeps_a_sentence_that_names_it() -> None:
    with pytest.raises(PrivacyError, match=r"^Dataset #4 has spent it\.$"):
        with naming_dataset(4):
            raise PrivacyError("Dataset #4 has spent it.")
    with pytest.raises(TransactionReverted) as refused:
        with naming_dataset(4):
            raise TransactionReverted("The chain refused it.", "Nope", (1,))
    assert str(refused.value) == "For dataset #4: the chain refused it." and refused.value.error_name == "Nope"


# ---------------------------------------------------------------------------- the aggregator's flow, Flower faked


class FakeAggregator:
    """Stands in for the SuperLink and the ServerApp: each status poll commits the next round
    on-chain as the aggregator would (keeping its model in the rounds folder first)."""

    instances: list[FakeAggregator] = []
    outcome = "completed"  # or "failed" (after round 1), or "tampered" (a kept model that is not the committed one)

    def __init__(self, home: Path, aggregator_key: str, *, listen: str | None, public_address: str | None) -> None:
        self.home, self.key = home, aggregator_key
        self.rounds_dir = home / "rounds"
        self.fleet_address = public_address or listen or "127.0.0.1:9093"
        self.started = self.stopped = False
        self.settings: Any = None
        self.round = 0
        FakeAggregator.instances.append(self)

    def __enter__(self) -> FakeAggregator:
        self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = True

    def submit(self, settings: Any) -> int:
        from eth_account import Account

        self.settings = settings
        self.client = CoveClient.open(settings.rpc, Account.from_key(self.key), self.home, hub=settings.hub)
        info = read_federation(self.client, settings.federation_id)
        from exchange.jobs import requested_job

        self.spec = ModelSpec.from_wire(requested_job(self.client, info.jobs[0]).spec)
        self.arrays = initial_arrays(self.spec, PATIENTS_SCHEMA, settings.init_seed)
        self.rounds = info.rounds
        return 41

    def status(self, run_id: int) -> Any:
        import numpy as np

        from exchange.federated.aggregator import RunStatus

        assert run_id == 41
        if self.outcome == "failed" and self.round == 1:
            return RunStatus(run_id, "finished:failed")
        if self.round == self.rounds:
            return RunStatus(run_id, "finished:completed")
        self.round += 1
        self.arrays = [a + np.float32(0.01) for a in self.arrays]
        folder = self.rounds_dir / str(self.settings.federation_id)
        folder.mkdir(parents=True, exist_ok=True)
        kept = [a * 2 for a in self.arrays] if self.outcome == "tampered" else self.arrays
        np.savez(folder / f"round-{self.round}.npz", *kept)
        contract = self.client.session.contract("FederatedRounds", self.client.deployment.federated_rounds)
        self.client.session.transact(contract.functions.commitRound(
            self.settings.federation_id, self.round, model_digest(self.arrays), b"\x07" * 32))  # fmt: skip
        return RunStatus(run_id, "running")

    def server_log(self, run_id: int) -> str:
        return "INFO : starting\n\nERROR : round 2 had no aggregate\n"


@pytest.fixture
def fake_flower(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from exchange.federated import aggregator

    FakeAggregator.instances = []
    monkeypatch.setattr(aggregator, "Aggregator", FakeAggregator)
    yield FakeAggregator
    FakeAggregator.outcome = "completed"


@pytest.mark.chain
def test_train_federated_checks_every_round_against_the_chain_and_returns_the_last(sites, fake_flower, chain) -> None:  # type: ignore[no-untyped-def]
    import torch

    from exchange.federated.arrays import model_arrays
    from exchange.ml.weights import load_model_file

    buyer, datasets = sites.buyer, sites.datasets
    seen: list[tuple[int, bytes]] = []
    stages: list[str] = []
    result = federated.train_federated(buyer, spec_of(None), datasets, 3, init_seed=5, poll=0,
                                       on_round=lambda r, d: seen.append((r, d)), on_status=stages.append)  # fmt: skip
    [agg] = fake_flower.instances
    assert agg.started and agg.stopped and agg.home == buyer.home.federations
    # The run's settings: the client's RPC URL and hub, the federation, the seed, the timeouts.
    assert (agg.settings.rpc, agg.settings.hub) == (chain.rpc_url, buyer.deployment.cove)
    assert (agg.settings.federation_id, agg.settings.init_seed) == (result.federation_id, 5)
    assert (agg.settings.join_timeout, agg.settings.stage_timeout, agg.settings.train_timeout) == (120, 120, 600)
    # The jobs carry the spec with the aggregator's superlink and the rounds asked for.
    assert result.spec.federation == FederationSpec(rounds=3, superlink="127.0.0.1:9093")
    assert result.ticket.spec_hash == result.spec.spec_hash() and result.ticket.aggregator == buyer.session.sender

    contract = buyer.session.contract("FederatedRounds", buyer.deployment.federated_rounds)
    onchain = [bytes(buyer.session.call(contract.functions.roundDigest(result.federation_id, r))[0]) for r in (1, 2, 3)]
    assert list(result.round_digests) == onchain and seen == list(enumerate(onchain, start=1))
    assert result.updates_roots == (b"\x07" * 32,) * 3
    assert model_digest(model_arrays(result.module)) == onchain[-1]
    assert all(torch.equal(torch.from_numpy(a), p.detach()) for a, p in zip(agg.arrays, result.module.parameters(), strict=True))
    loaded = load_model_file(result.model_file())
    assert model_digest(model_arrays(loaded)) == onchain[-1]
    assert stages[0].startswith("checking the datasets") and len(stages) >= 4
    assert result.to_dict()["round_digests"] == ["0x" + d.hex() for d in onchain]


@pytest.mark.chain
def test_train_federated_says_how_a_run_failed(sites, fake_flower) -> None:  # type: ignore[no-untyped-def]
    buyer, datasets = sites.buyer, sites.datasets
    fake_flower.outcome = "failed"
    with pytest.raises(FederationError) as failed:
        federated.train_federated(buyer, spec_of(None), datasets[:2], 3, init_seed=1, poll=0)
    assert str(failed.value) == (
        "Federation #1 (jobs #1, #2): the Flower run ended failed; the ServerApp's log ends: "
        "INFO : starting | ERROR : round 2 had no aggregate."
    )
    assert fake_flower.instances[-1].stopped

    fake_flower.outcome = "tampered"
    with pytest.raises(FederationError, match=r"^Federation #2 \(jobs #3, #4\): the model the aggregator kept for "
                                              r"round 1 \(.*round-1\.npz\) does not hash to the digest committed on-chain\.$"):  # fmt: skip
        federated.train_federated(buyer, spec_of(None), datasets[:2], 2, init_seed=1, poll=0)
    assert fake_flower.instances[-1].stopped

    # A refusal comes before the SuperLink starts.
    count = len(fake_flower.instances)
    with pytest.raises(InputError, match="A federation runs 1 to 100 rounds, not 0"):
        federated.train_federated(buyer, spec_of(None), datasets, 0)
    with pytest.raises(SpecError, match=f"dataset #{datasets[0]} allows at most 20"):
        federated.train_federated(buyer, spec_of(None), datasets, 21)
    assert len(fake_flower.instances) == count


@pytest.mark.chain
def test_the_sdk_trains_on_one_dataset_or_one_model_over_several(sites, fake_flower, chain, cove_home: Path) -> None:  # type: ignore[no-untyped-def]
    from exchange.sdk import Cove, Job
    from exchange.sdk.job import Federation

    datasets = sites.datasets
    me = Cove(chain.rpc_url, account="dev1", home=cove_home)
    job = me.train(spec_of(None), dataset=datasets[0])  # as dataset(1).train(spec): one job
    assert isinstance(job, Job) and job.dataset_id == datasets[0] and job.status == "requested"
    assert fake_flower.instances == []

    federation = me.train(spec_of(None).model_dump(mode="json"), datasets=[me.dataset(datasets[1]), datasets[2]],
                          rounds=2, init_seed=3)  # fmt: skip
    assert isinstance(federation, Federation)
    assert federation.datasets == (datasets[1], datasets[2]) and federation.rounds == 2
    assert list(federation.job_ids) == list(read_federation(me.client, federation.id).jobs)
    assert set(federation.epsilons) == {datasets[1], datasets[2]} and all(e > 0 for e in federation.epsilons.values())
    assert len(federation.round_digests) == 2
    assert model_digest([p.detach().numpy() for p in federation.model().parameters()]) == federation.round_digests[-1]
    assert [j.id for j in federation.jobs] == list(federation.job_ids)
    assert f"Federation #{federation.id}" in federation._repr_html_() and "2 rounds" in repr(federation)
    saved = federation.save(sites.folder / "model.safetensors")
    assert saved.stat().st_size > 0

    for arguments, sentence in [
        ({}, "Give dataset= (one dataset) or datasets=[...] and rounds= (one model over several)."),
        ({"dataset": datasets[0], "rounds": 2}, "rounds= trains one model over several datasets; give them as datasets=[...]."),
        ({"datasets": datasets}, "Training over several datasets needs rounds=: how many federated rounds to run."),
        ({"dataset": 1, "datasets": datasets, "rounds": 2}, "Give either dataset= or datasets=, not both."),
    ]:
        with pytest.raises(InputError) as refused:
            me.train(spec_of(None), **arguments)
        assert str(refused.value) == sentence


def test_naming_dataset_is_not_fooled_by_a_longer_id() -> None:
    with pytest.raises(InputError, match=r"^For dataset #1: job #12 is not yours\.$"):
        with naming_dataset(1):
            raise InputError("Job #12 is not yours.")
