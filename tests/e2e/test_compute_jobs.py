"""Compute-to-data jobs end to end on a real anvil: request, train, fetch, verify, refuse.

The headline: two jobs on one dataset are trained by the owner's runner in the sandbox,
fetched and verified by the buyer, and give models that beat chance; the on-chain ledger
then holds exactly the privacy Opacus' own accountant gives for the two runs together, and
a third job that would exceed the budget is refused by the chain itself.

Then the attacks and bad inputs, each refused with a reason and leaving the chain, the
buyer's credits and the privacy ledger as they should be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn
from web3.logs import DISCARD

from compute_to_data.runner import Runner, RunnerLimits
from compute_to_data.state import RunnerState, Stage
from exchange.accounts import dev_account
from exchange.catalog import dataset_view
from exchange.client import CoveClient
from exchange.crypto import public_key_of
from exchange.datasets.dp_count import DEFAULT_COUNT_NOISE, count_noise_micro
from exchange.datasets.schema import DatasetSchema
from exchange.errors import (
    ContentUnavailable,
    InputError,
    ModuleRefused,
    PrivacyError,
    SpecError,
    TransactionReverted,
)
from exchange.jobs import fetch_result, job_events, job_info, request_job, requested_job, verify
from exchange.market import ZERO_ADDRESS, buy_credits
from exchange.ml.accounting import ORDERS, DpParams, compose, count_release_curve, epsilon_fixed
from exchange.ml.model import build_model, encode_features, encode_target, validate_module
from exchange.ml.spec import ModelSpec
from exchange.ml.weights import load_model_file, load_weights, model_file_bytes
from exchange.policy import model_family_hash, parse_terms
from exchange.policy_update import set_policy
from exchange.provenance import SignedProvenance, sign
from exchange.publish import publish_dataset
from exchange.storage import Cid, LocalDirectoryStore
from exchange.units import CREDIT
from conftest import PATIENTS_SCHEMA

pytestmark = pytest.mark.chain

DELTA = 1e-5
FEATURES = ("age", "bmi", "smoker")
# CPU keeps the runs comparable anywhere; unsandboxed only where no sandbox can be made.
LIMITS = RunnerLimits(device="cpu", allow_unsandboxed=True, wall_seconds=300)


# --------------------------------------------------------------------------- helpers


def signal_table(rows: int, seed: int) -> pd.DataFrame:
    """conftest's patient table, but with a diagnosis that depends on the features.

    (conftest's `make_table` draws the diagnosis at random, so nothing could beat chance.)
    Smokers, older and heavier patients are more often malignant; the best possible
    accuracy is about 0.9, chance is 0.5.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 80, rows)
    bmi = rng.normal(25, 4, rows).round(2)
    smoker = rng.integers(0, 2, rows).astype(bool)
    score = 5.0 * (smoker - 0.5) + 0.06 * (age - 50) + 0.15 * (bmi - 25)
    malignant = rng.random(rows) < 1 / (1 + np.exp(-score))
    return pd.DataFrame(
        {"age": age, "bmi": bmi, "smoker": smoker, "diagnosis": np.where(malignant, "malignant", "benign")}
    )


def spec_dict(
    *, epochs: int = 3, epsilon: float = 2.0, hidden: int = 16, features: tuple[str, ...] = FEATURES,
    layers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "task": "classification",
        "features": list(features),
        "target": "diagnosis",
        "layers": layers
        or [{"type": "Linear", "out_features": hidden}, {"type": "ReLU"}, {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.05,
        "expected_batch_size": 100,
        "epochs": epochs,
        "dp": {"target_epsilon": epsilon, "delta": DELTA, "max_grad_norm": 1.0},
    }


def make_spec(**changes: Any) -> ModelSpec:
    return ModelSpec.parse(spec_dict(**changes))


def publish(owner: CoveClient, folder: Path, name: str, *, rows: int, seed: int, **terms: Any) -> int:
    path = folder / f"{name}.csv"
    signal_table(rows, seed).to_csv(path, index=False)
    return publish_dataset(owner, path, name=name, terms=parse_terms(**terms), schema=PATIENTS_SCHEMA).dataset_id


def credits(client: CoveClient, dataset_id: int, holder: str | None = None) -> int:
    token = client.datatoken(client.session.call(client.cove.functions.datasetOf(dataset_id))[2])
    balance = client.session.call(token.functions.balanceOf(holder or client.session.sender))
    assert balance % CREDIT == 0
    return balance // CREDIT


def ledger(client: CoveClient, dataset_id: int) -> tuple[int, ...]:
    return tuple(client.session.call(client.jobs.functions.curveOf(dataset_id)))


def job_count(client: CoveClient) -> int:
    return int(client.session.call(client.jobs.functions.jobCount()))


def raw_request(client: CoveClient, dataset_id: int, spec: ModelSpec, *, curve: list[int] | None = None) -> int:
    """Sends `ComputeJobs.request` directly, as an attacker would: none of the SDK's checks.

    The DP parameters are the honest ones for the spec; the curve too unless `curve` is given.
    """
    params = DpParams.for_spec(spec, dataset_view(client, dataset_id).rows)
    now = int(client.session.w3.eth.get_block("latest")["timestamp"])
    request = (
        dataset_id,
        bytes.fromhex(spec.spec_hash()[2:]),
        spec.to_wire(),
        params.to_onchain().as_tuple(),
        list(params.curve_fixed() if curve is None else curve),
        model_family_hash(spec.family),
        [],  # family proof: the policies here allow any family
        [],  # allowlist proof: none
        now + 24 * 3600,
        public_key_of(client.session.account),
    )
    receipt = client.session.transact(client.jobs.functions.request(request))
    return int(client.jobs.events.JobRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])


def reverted(call: Any, *args: Any) -> TransactionReverted:
    with pytest.raises(TransactionReverted) as refused:
        call(*args)
    return refused.value


def count_trainings(runner: Runner) -> list[int]:
    """The ids of the jobs `runner` starts training from now on."""
    trained: list[int] = []
    train = runner._train

    def counted(job: Any, *rest: Any) -> Any:
        trained.append(job.job_id)
        return train(job, *rest)

    runner._train = counted  # type: ignore[method-assign]
    return trained


def accuracy(model: nn.Module, spec: ModelSpec, schema: DatasetSchema, frame: pd.DataFrame) -> float:
    features = encode_features(spec, schema, frame)
    targets, usable = encode_target(spec, schema, frame)
    with torch.no_grad():
        predicted = model(features[torch.from_numpy(usable)]).argmax(dim=1)
    return float((predicted == targets).float().mean())


def flat(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- the headline


def test_two_jobs_are_trained_verified_and_composed_and_a_third_is_refused_on_chain(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    first, second = make_spec(epochs=3, epsilon=2.0), make_spec(epochs=2, epsilon=1.5, hidden=8)
    dataset_id = publish(owner, tmp_path, "cohort", rows=1000, seed=1, budget="2.8", per_job_cap="2.5", free_cap=5)
    # The jobs' DP parameters follow from the public (noisy) row count; the ledger opened with
    # the count's release. Two jobs fit the budget, a third does not.
    rows = dataset_view(owner, dataset_id).rows
    publication = count_release_curve(count_noise_micro(DEFAULT_COUNT_NOISE))
    assert ledger(owner, dataset_id) == publication
    curves = [DpParams.for_spec(s, rows).curve_fixed() for s in (first, second, first)]
    two, three = (epsilon_fixed(compose([publication, *curves[:n]]), DELTA) for n in (2, 3))
    assert two <= 2_800_000 < three and epsilon_fixed(curves[2], DELTA) <= 2_500_000
    buy_credits(buyer, dataset_id, 3)

    tickets = [request_job(buyer, dataset_id, spec) for spec in (first, second)]
    assert [t.job_id for t in tickets] == [1, 2]
    assert credits(buyer, dataset_id) == 1
    assert tickets[1].composed_epsilon * 10**6 == pytest.approx(two)

    runner = Runner(owner, LIMITS)
    trained = count_trainings(runner)
    assert sorted(runner.poll()) == [1, 2]
    assert trained == [1, 2]
    assert runner.poll() == [] and trained == [1, 2]  # nothing is trained twice

    schema = dataset_view(buyer, dataset_id).metadata.schema_  # type: ignore[union-attr]
    held_out = signal_table(2000, seed=99)  # never seen by the runner
    records = []
    for ticket, spec in zip(tickets, (first, second), strict=True):
        assert job_info(buyer, ticket.job_id).status == "completed"
        result = fetch_result(buyer, ticket.job_id)
        assert result.verified, [c for c in result.checks if not c.passed]
        assert {c.name for c in result.checks} == {
            "signature", "record_hash", "weights_hash", "spec_hash", "epsilon", "ledger_epsilon",
            "ledger_curve", "job_id", "dataset_commitment", "weights_cid",
        }  # fmt: skip
        assert result.spec == spec
        record = result.provenance.record
        assert record.runner == owner.session.sender and record.job_id == ticket.job_id
        assert record.dp.model_dump() == DpParams.for_spec(spec, rows).to_onchain().model_dump()
        assert record.epsilon == round(ticket.epsilon * 10**6)
        from_file = load_model_file(model_file_bytes(result.weights, result.spec, schema))
        direct = load_weights(spec, schema, result.weights)
        for a, b in zip(from_file.parameters(), direct.parameters(), strict=True):
            assert torch.equal(a, b)
        assert accuracy(from_file, spec, schema, held_out) > 0.7  # chance is 0.5
        records.append(record)

    # The ledger equals Opacus' accountant over the two runs, computed here from the
    # provenance records' parameters alone. The chain charges each curve rounded up to
    # 1e-9 and reports ε rounded up to 1e-6, so it may only sit above, by under 1e-6.
    accountant = RDPAccountant()
    accountant.history = [(r.dp.noise_multiplier / 1e6, r.dp.sample_rate / 1e9, r.dp.steps) for r in records]
    accountant.history.append((DEFAULT_COUNT_NOISE, 1.0, 1))  # the count: one Gaussian release, q = 1
    expected = accountant.get_epsilon(delta=DELTA, alphas=list(ORDERS))
    onchain = buyer.session.call(buyer.jobs.functions.composedEpsilon(dataset_id))
    assert onchain == two
    assert abs(onchain / 1e6 - expected) <= 1e-6
    assert onchain / 1e6 >= expected - 1e-12
    assert ledger(buyer, dataset_id) == compose([publication, *(r.rdp_curve for r in records)])

    # A third job would exceed the budget: the SDK refuses it before any transaction ...
    before = (job_count(buyer), credits(buyer, dataset_id), ledger(buyer, dataset_id))
    with pytest.raises(PrivacyError, match=r"has not enough privacy budget left: it has spent ε 2\.4\d* of ε 2\.8"):
        request_job(buyer, dataset_id, first)
    # ... and the chain refuses it when sent directly, with the honest curve.
    refusal = reverted(raw_request, buyer, dataset_id, first)
    assert refusal.error_name == "BudgetExceeded"
    assert refusal.error_args == (dataset_id, three, 2_800_000)
    assert "not enough privacy budget left" in str(refusal)
    assert (job_count(buyer), credits(buyer, dataset_id), ledger(buyer, dataset_id)) == before == (2, 1, before[2])


# --------------------------------------------------------------------------- refusals


def test_bad_specs_and_forced_requests_are_refused_before_anything_is_spent(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, stranger = client_for(0), client_for(1), client_for(3)
    dataset_id = publish(owner, tmp_path, "open", rows=600, seed=2, budget="20", per_job_cap="2.5",
                         max_epochs=5, free_cap=5)  # fmt: skip
    buy_credits(buyer, dataset_id, 3)
    empty = ledger(owner, dataset_id)
    assert empty == count_release_curve(count_noise_micro(DEFAULT_COUNT_NOISE))  # the row count's release only

    def nothing_spent() -> None:
        assert job_count(owner) == 0
        assert credits(buyer, dataset_id) == 3
        assert ledger(owner, dataset_id) == empty

    # A layer off the allow-list cannot even be written down.
    conv = [{"type": "Conv2d", "out_features": 2}, {"type": "Linear", "out_features": 2}]
    with pytest.raises(SpecError, match="layers.0 names a layer type that is not allowed; use one of Linear, ReLU"):
        ModelSpec.parse(spec_dict(layers=conv))

    # A column the dataset does not have: refused by the SDK before any transaction.
    ghost = make_spec(features=("age", "weight"))
    with pytest.raises(SpecError, match="feature column 'weight' that the dataset does not have; its columns are: age"):
        request_job(buyer, dataset_id, ghost)
    nothing_spent()

    # ε above the per-job cap: the SDK says so; forced, the chain says so.
    greedy = make_spec(epsilon=3.0)
    # (the noise search lands just below ε 3, or on it, depending on the dataset's noisy row count)
    with pytest.raises(PrivacyError, match=r"This job would spend ε (2\.99\d*|3), above the per-job cap of ε 2\.5; lower target_epsilon to at most 2\.5"):
        request_job(buyer, dataset_id, greedy)
    refusal = reverted(raw_request, buyer, dataset_id, greedy)
    assert refusal.error_name == "JobEpsilonAboveCap"
    assert refusal.error_args[1] == 2_500_000 and refusal.error_args[0] > 2_500_000
    assert "above the per-job cap of ε 2.5" in str(refusal)
    nothing_spent()

    # More epochs than the policy allows.
    long = make_spec(epochs=8)
    with pytest.raises(SpecError, match="trains 8 epochs; dataset #1 allows at most 5"):
        request_job(buyer, dataset_id, long)
    refusal = reverted(raw_request, buyer, dataset_id, long)
    assert refusal.error_name == "InvalidEpochs" and refusal.error_args == (8, 5)
    assert "asks for 8 epochs; the policy allows 1 to 5" in str(refusal)
    nothing_spent()

    # No credit.
    with pytest.raises(InputError, match=f"{stranger.session.sender} holds no credit of dataset #1; buy one"):
        request_job(stranger, dataset_id, make_spec())
    refusal = reverted(raw_request, stranger, dataset_id, make_spec())
    assert refusal.error_name == "NoCredit" and refusal.error_args == (dataset_id, stranger.session.sender)
    nothing_spent()

    # An allowlisted dataset (dev2 only): dev1 can neither buy nor request.
    member = dev_account(2).address
    gated = publish(owner, tmp_path, "gated", rows=600, seed=3, budget="20", per_job_cap="2.5", free_cap=5,
                    allowlist=[member])  # fmt: skip
    with pytest.raises(InputError, match=f"{buyer.session.sender} is not on the allowlist of dataset #{gated}"):
        buy_credits(buyer, gated, 1)
    refusal = reverted(buyer.session.transact, buyer.cove.functions.buy(gated, 1, ZERO_ADDRESS, 0, []))
    assert refusal.error_name == "NotAllowlisted"
    refusal = reverted(raw_request, buyer, gated, make_spec())
    assert refusal.error_name == "NotAllowlisted" and refusal.error_args == (gated, buyer.session.sender)
    assert "is not on the allowlist" in str(refusal)
    assert credits(buyer, gated) == 0
    buy_credits(client_for(2), gated, 1)  # the member can
    assert credits(owner, gated, member) == 1
    nothing_spent()


def test_modules_with_buffers_or_frozen_parameters_are_refused() -> None:
    schema = DatasetSchema.model_validate({
        "columns": [
            {"name": "age", "kind": "integer", "nullable": False, "minimum": 20, "maximum": 79},
            {"name": "diagnosis", "kind": "categorical", "nullable": False, "categories": ["benign", "malignant"]},
        ]
    })  # fmt: skip
    with pytest.raises(ModuleRefused, match=r"'1' \(BatchNorm1d\) holds buffers \(running_mean, running_var"):
        validate_module(nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)))
    leaky = nn.Linear(1, 2)
    leaky.register_buffer("rows", torch.zeros(8), persistent=False)  # could smuggle rows out
    with pytest.raises(ModuleRefused, match="holds buffers .rows.; modules with buffers are refused"):
        validate_module(nn.Sequential(leaky))
    frozen = nn.Linear(1, 2)
    frozen.bias.requires_grad_(False)
    with pytest.raises(ModuleRefused, match=r"has frozen parameters \(bias\); every parameter must be trained"):
        validate_module(nn.Sequential(frozen))

    # The spec language cannot express either: no BatchNorm, no LayerNorm without its
    # affine parameters, no way to freeze a parameter.
    for layers, fragment in (
        ([{"type": "BatchNorm1d"}, {"type": "Linear", "out_features": 2}], "names a layer type that is not allowed"),
        ([{"type": "LayerNorm", "elementwise_affine": False}, {"type": "Linear", "out_features": 2}], "layers.0.elementwise_affine is invalid"),
        ([{"type": "Linear", "out_features": 2, "requires_grad": False}], "unknown field 'layers.0.requires_grad'"),
    ):  # fmt: skip
        with pytest.raises(SpecError, match=fragment):
            ModelSpec.parse({**spec_dict(features=("age",)), "layers": layers})
    # Every layer the language has builds a model the gate accepts.
    every = [{"type": t} for t in ("LayerNorm", "ReLU", "GELU", "Tanh", "Sigmoid")]
    model = build_model(ModelSpec.parse(spec_dict(features=("age",), layers=[
        {"type": "Linear", "out_features": 4}, *every, {"type": "Linear", "out_features": 2}])), schema)  # fmt: skip
    validate_module(model)
    assert not list(model.buffers()) and all(p.requires_grad for p in model.parameters())


def test_a_tampered_curve_is_accepted_by_the_chain_then_failed_by_the_runner(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    dataset_id = publish(owner, tmp_path, "open", rows=600, seed=2, budget="20", per_job_cap="2.5", free_cap=5)
    buy_credits(buyer, dataset_id, 2)
    spec = make_spec()
    honest = DpParams.for_spec(spec, 600).curve_fixed()
    tampered = [v + 1 for v in honest]  # a nano more at every order: still under the cap
    before = ledger(owner, dataset_id)

    job_id = raw_request(buyer, dataset_id, spec, curve=tampered)
    assert ledger(owner, dataset_id) == compose([before, tuple(tampered)])
    assert credits(buyer, dataset_id) == 1

    runner = Runner(owner, LIMITS)
    trained = count_trainings(runner)
    assert runner.poll() == [job_id]
    assert trained == []  # refused before the sandbox
    assert job_info(buyer, job_id).status == "failed"
    reason = job_events(buyer, job_id)["reason"]
    assert reason == "The request's RDP curve does not match its DP parameters."
    assert runner.state.get(job_id).stage is Stage.FAILED  # type: ignore[union-attr]
    assert credits(buyer, dataset_id) == 2  # refunded
    assert ledger(owner, dataset_id) == before  # released
    assert job_events(buyer, job_id)["completion"] is None


def test_one_worker_trains_a_job_and_tampered_results_are_caught_at_fetch(
    client_for, cove, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer = client_for(0), client_for(1)
    dataset_id = publish(owner, tmp_path, "open", rows=600, seed=2, budget="20", per_job_cap="2.5", free_cap=5)
    buy_credits(buyer, dataset_id, 1)
    job_id = request_job(buyer, dataset_id, make_spec(epochs=1)).job_id

    # Two workers of the same owner (their own state files) both saw the job requested. While
    # the first one holds it, the second one's `accept` is refused and it stands aside.
    first = Runner(owner, LIMITS, state=RunnerState(tmp_path / "worker-a.sqlite"))
    second = Runner(owner, LIMITS, state=RunnerState(tmp_path / "worker-b.sqlite"))
    second.state.see(job_id, dataset_id)
    trained_by_second = count_trainings(second)
    seen: dict[str, Any] = {}
    train = first._train

    def train_while_the_other_worker_polls(job: Any, *rest: Any) -> Any:
        seen["accept again"] = reverted(owner.session.transact, owner.jobs.functions.accept(job_id))
        seen["second polled"] = second.poll()
        seen.setdefault("trained", []).append(job.job_id)
        return train(job, *rest)

    first._train = train_while_the_other_worker_polls  # type: ignore[method-assign]
    assert first.poll() == [job_id]
    assert seen["trained"] == [job_id] and trained_by_second == []
    assert seen["accept again"].error_name == "JobAlreadyAccepted"
    assert seen["accept again"].error_args == (job_id, owner.session.sender)
    assert seen["second polled"] == []
    other = second.state.get(job_id)
    assert other is not None and other.stage is Stage.FAILED
    assert other.reason.startswith("not ours to run:") and "already accepted" in other.reason  # type: ignore[union-attr]
    assert first.state.get(job_id).stage is Stage.COMPLETED  # type: ignore[union-attr]
    assert second.poll() == [] and trained_by_second == []

    result = fetch_result(buyer, job_id)
    assert result.verified

    # Verification itself: altered weights, or a record altered after signing, fail checks.
    info = job_info(buyer, job_id)
    requested = requested_job(buyer, job_id)
    altered_weights = result.weights[:-1] + bytes([result.weights[-1] ^ 1])
    failed = {c.name for c in verify(buyer, info, requested, result.provenance, altered_weights) if not c.passed}  # type: ignore[arg-type]
    assert failed == {"weights_hash"}
    record = result.provenance.record
    cheaper = record.model_copy(update={"epsilon": record.epsilon - 1})
    unsigned = SignedProvenance(record=cheaper, signature=result.provenance.signature)
    failed = {c.name for c in verify(buyer, info, requested, unsigned, result.weights) if not c.passed}  # type: ignore[arg-type]
    assert {"signature", "record_hash", "ledger_epsilon"} <= failed
    forger = dev_account(3)
    forged = sign(record.model_copy(update={"runner": forger.address}), forger)
    checks = verify(buyer, info, requested, forged, result.weights)  # type: ignore[arg-type]
    signature = next(c for c in checks if c.name == "signature")
    assert not signature.passed and signature.reason.startswith(f"The record was signed by {forger.address}")

    # The stored results overwritten on disk: fetching names the damage and `cove fetch`
    # writes no model file.
    store = LocalDirectoryStore(owner.home.storage)
    completed = job_events(buyer, job_id)["completion"]
    for cid in (Cid.parse(record.weights_cid), Cid.from_raw_digest(bytes.fromhex(completed["provenanceDigest"][2:]))):
        path = store.path_for(cid)
        original = path.read_bytes()
        path.chmod(0o600)
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ContentUnavailable, match=f"its copy in this home's cache is damaged .{path}."):
            fetch_result(buyer, job_id)
        model = tmp_path / "model.safetensors"
        fetched = cove("fetch", str(job_id), "-a", "dev1", "-o", str(model))
        assert fetched.exit_code != 0 and not model.exists()
        assert f"({cid}) could not be fetched (its copy in this home's cache is damaged" in flat(fetched.stderr)
        assert cove("verify", str(job_id), "-a", "dev1").exit_code != 0
        path.write_bytes(original)
        assert fetch_result(buyer, job_id).verified


def test_a_foreign_runner_serves_nothing_and_a_policy_change_fails_the_job(
    client_for, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    owner, buyer, stranger = client_for(0), client_for(1), client_for(3)
    terms = dict(budget="20", per_job_cap="2.5", max_epochs=5, free_cap=5)
    dataset_id = publish(owner, tmp_path, "open", rows=600, seed=2, **terms)
    buy_credits(buyer, dataset_id, 1)
    before = ledger(owner, dataset_id)
    job_id = request_job(buyer, dataset_id, make_spec(epochs=3)).job_id

    # Not the dataset's runner: the chain refuses its accept, and its runner serves nothing.
    refusal = reverted(stranger.session.transact, stranger.jobs.functions.accept(job_id))
    assert refusal.error_name == "NotJobRunner"
    assert refusal.error_args == (job_id, stranger.session.sender, owner.session.sender)
    assert f"Only runner {owner.session.sender} may do this for job #{job_id}" in str(refusal)
    foreign = Runner(stranger, LIMITS)
    assert foreign.poll() == []
    assert foreign.state.get(job_id) is None
    assert job_info(buyer, job_id).status == "requested"

    # The owner lowers max epochs below the job's before the runner gets to it.
    set_policy(owner, dataset_id, parse_terms(**{**terms, "max_epochs": 2}))
    runner = Runner(owner, LIMITS)
    trained = count_trainings(runner)
    assert runner.poll() == [job_id]
    assert trained == []
    assert job_info(buyer, job_id).status == "failed"
    reason = job_events(buyer, job_id)["reason"]
    assert reason == "The current policy allows at most 2 epochs; the spec asks 3."
    assert credits(buyer, dataset_id) == 1
    assert ledger(owner, dataset_id) == before
