"""Provenance records: canonical hashing, EIP-712 signing, and the buyer's checks."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from exchange.accounts import dev_account
from exchange.errors import ProvenanceError
from exchange.provenance import (
    ProvenanceRecord,
    SignedProvenance,
    all_passed,
    check,
    epsilon_of_curve,
    record_hash,
    sha256_hex,
    sign,
    typed_data,
    verify_signature,
)
from exchange.storage.canonical import canonical_json
from exchange.storage.cid import compute_cid

RUNNER = dev_account(2)
STRANGER = dev_account(5)
WEIGHTS = b"safetensors plaintext bytes"
SPEC_HASH = "0x" + keccak(b"spec").hex()
ORDERS = (1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000, 20000, 24000,
          32000, 48000, 64000, 80000, 96000, 128000, 160000, 192000, 256000, 512000, 1024000)
CURVE = tuple(30_000_000 * o // 1000 for o in ORDERS)  # a plausible Gaussian-like curve
DELTA = 10**13  # 1e-5
STARTED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def record_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "chain_id": 31337,
        "compute_jobs": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "job_id": 7,
        "dataset_id": 3,
        "dataset_commitment": "0x" + "ab" * 32,
        "spec_hash": SPEC_HASH,
        "runner": RUNNER.address,
        "dp": {"noise_multiplier": 1_100_000, "sample_rate": 10_000_000, "steps": 300,
               "clip_norm": 1_000_000, "epochs": 3},
        "rdp_orders": ORDERS,
        "rdp_curve": CURVE,
        "epsilon": epsilon_of_curve(ORDERS, CURVE, DELTA),
        "delta": DELTA,
        "library_versions": {"torch": "2.5.1", "opacus": "1.6.0", "cove": "0.1.0"},
        "device": "cpu",
        "sandbox": "unshare",
        "public_rows": 469,
        "weights_hash": sha256_hex(WEIGHTS),
        "weights_cid": str(compute_cid(b"encrypted weights")),
    }
    fields.update(changes)
    return fields


@pytest.fixture
def record() -> ProvenanceRecord:
    return ProvenanceRecord(**record_fields())


@pytest.fixture
def signed(record: ProvenanceRecord) -> SignedProvenance:
    return sign(record, RUNNER)


def run_checks(signed: SignedProvenance, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "expected_runner": RUNNER.address,
        "onchain_provenance_hash": record_hash(signed.record),
        "weights_plaintext": WEIGHTS,
        "spec_hash": SPEC_HASH,
    }
    arguments.update(overrides)
    return {c.name: c for c in check(signed, **arguments)}


# --- hashing ------------------------------------------------------------------------------


def test_record_hash_is_keccak_of_canonical_json(record: ProvenanceRecord) -> None:
    expected = keccak(canonical_json(json.loads(record.canonical_bytes())))
    assert record_hash(record) == "0x" + expected.hex()
    assert b" " not in record.canonical_bytes()  # canonical: no whitespace, sorted keys


def test_equal_records_hash_equal_whatever_the_input_spelling() -> None:
    a = ProvenanceRecord(**record_fields())
    b = ProvenanceRecord(**record_fields(
        spec_hash=SPEC_HASH.upper().replace("0X", "0x"),
        runner=RUNNER.address.lower(),
        rdp_orders=list(ORDERS),
    ))
    assert record_hash(a) == record_hash(b)


def test_the_record_holds_no_floats(record: ProvenanceRecord) -> None:
    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(record.canonical_bytes()))


@pytest.mark.parametrize(
    "changes",
    [
        {"rdp_curve": CURVE[:-1]},
        {"rdp_orders": (1000, *ORDERS[1:])},
        {"public_rows": 0},
        {"started_at": STARTED},  # no time of any kind: durations depend on the private rows
        {"spec_hash": "0x1234"},
        {"runner": "0xnot-an-address"},
        {"weights_cid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"},
        {"sandbox": "docker"},
        {"delta": 0},
        {"dp": {"noise_multiplier": 0, "sample_rate": 1, "steps": 1, "clip_norm": 1, "epochs": 1}},
        {"unexpected": 1},
    ],
)
def test_malformed_records_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ProvenanceRecord(**record_fields(**changes))


# --- signing ------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(signed: SignedProvenance) -> None:
    assert verify_signature(signed) == RUNNER.address
    again = SignedProvenance.from_bytes(signed.canonical_bytes())
    assert again == signed
    assert verify_signature(again) == RUNNER.address


def test_the_signature_is_standard_eip712(signed: SignedProvenance) -> None:
    data = typed_data(signed.record)
    assert data["domain"] == {
        "name": "Cove Provenance",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": signed.record.compute_jobs,
    }
    assert data["message"]["recordHash"] == record_hash(signed.record)
    recovered = Account.recover_message(encode_typed_data(full_message=data),
                                        signature=signed.signature)
    assert recovered == RUNNER.address


def test_only_the_named_runner_may_sign(record: ProvenanceRecord) -> None:
    with pytest.raises(ProvenanceError, match="cannot sign"):
        sign(record, STRANGER)


TAMPERED: dict[str, Any] = {
    "chain_id": 1,
    "compute_jobs": "0x" + "22" * 20,
    "job_id": 8,
    "dataset_id": 4,
    "dataset_commitment": "0x" + "cd" * 32,
    "spec_hash": "0x" + "00" * 31 + "01",
    "runner": STRANGER.address,
    "dp": {"noise_multiplier": 900_000, "sample_rate": 10_000_000, "steps": 300,
           "clip_norm": 1_000_000, "epochs": 3},
    "rdp_orders": (1600, *ORDERS[1:]),
    "rdp_curve": (1, *CURVE[1:]),
    "epsilon": 1,
    "delta": DELTA * 10,
    "library_versions": {"torch": "2.5.1", "opacus": "0.0.1-patched", "cove": "0.1.0"},
    "device": "cuda:0",
    "sandbox": "none",
    "public_rows": 470,
    "weights_hash": sha256_hex(b"other weights"),
    "weights_cid": str(compute_cid(b"other blob")),
    "federation": {  # a single-dataset record claimed as a federated part
        "federated_rounds": "0x" + "33" * 20, "federation_id": 1, "rounds": 1,
        "round_models": ("0x" + "44" * 32,), "updates": ("0x" + "55" * 32,),
    },
}


def test_every_field_is_covered_by_the_tamper_list() -> None:
    fields = set(ProvenanceRecord.model_fields) - {"version", "accountant"}  # single-valued
    assert fields == set(TAMPERED)


@pytest.mark.parametrize("field", sorted(TAMPERED))
def test_tampering_any_field_breaks_hash_and_signature(
    signed: SignedProvenance, field: str
) -> None:
    forged_record = ProvenanceRecord(**record_fields(**{field: TAMPERED[field]}))
    forged = SignedProvenance(record=forged_record, signature=signed.signature)
    assert record_hash(forged_record) != record_hash(signed.record)
    assert verify_signature(forged) != RUNNER.address
    results = run_checks(forged, onchain_provenance_hash=record_hash(signed.record))
    assert not results["signature"].passed
    assert not results["record_hash"].passed


def test_tampering_the_stored_json_is_detected(signed: SignedProvenance) -> None:
    document = json.loads(signed.canonical_bytes())
    document["record"]["device"] = "cpu (honest, really)"
    forged = SignedProvenance.from_bytes(json.dumps(document).encode())
    assert verify_signature(forged) != RUNNER.address


@pytest.mark.parametrize("signature", ["0x", "0x1234", "0x" + "00" * 65, "not hex"])
def test_malformed_signatures_are_errors(record: ProvenanceRecord, signature: str) -> None:
    with pytest.raises(ProvenanceError):
        verify_signature(SignedProvenance(record=record, signature=signature))
    checks = run_checks(SignedProvenance(record=record, signature=signature))
    assert not checks["signature"].passed


def test_from_bytes_refuses_garbage() -> None:
    with pytest.raises(ProvenanceError, match="not a well-formed"):
        SignedProvenance.from_bytes(b"{not json")
    with pytest.raises(ProvenanceError, match="not a well-formed"):
        SignedProvenance.from_bytes(b'{"record": {}, "signature": "0x"}')


# --- checks -------------------------------------------------------------------------------


def test_all_checks_pass_for_an_honest_record(signed: SignedProvenance) -> None:
    checks = check(
        signed,
        expected_runner=RUNNER.address.lower(),
        onchain_provenance_hash=bytes.fromhex(record_hash(signed.record)[2:]),
        weights_plaintext=WEIGHTS,
        spec_hash=bytes.fromhex(SPEC_HASH[2:]),
        ledger_epsilon=signed.record.epsilon,
        ledger_curve=CURVE,
        job_id=7,
    )
    assert [c.name for c in checks] == [
        "signature", "record_hash", "weights_hash", "spec_hash", "epsilon", "ledger_epsilon",
        "ledger_curve", "job_id",
    ]
    assert all_passed(checks), [c.reason for c in checks if not c.passed]


def test_wrong_signer_is_detected(record: ProvenanceRecord) -> None:
    # A stranger signs the runner's record with the stranger's key, bypassing `sign`.
    signature = STRANGER.sign_message(encode_typed_data(full_message=typed_data(record))).signature
    forged = SignedProvenance(record=record, signature="0x" + bytes(signature).hex())
    results = run_checks(forged)
    assert not results["signature"].passed
    assert STRANGER.address in results["signature"].reason
    assert results["record_hash"].passed  # the record itself is intact


def test_record_signed_by_another_runner_is_not_the_datasets(signed: SignedProvenance) -> None:
    results = run_checks(signed, expected_runner=STRANGER.address)
    assert not results["signature"].passed
    assert "not by the dataset's runner" in results["signature"].reason


def test_a_runner_signing_a_record_that_names_someone_else_fails() -> None:
    record = ProvenanceRecord(**record_fields(runner=STRANGER.address))
    stolen = STRANGER.sign_message(encode_typed_data(full_message=typed_data(record))).signature
    signed = SignedProvenance(record=record, signature="0x" + bytes(stolen).hex())
    # signed by STRANGER, names STRANGER; the dataset's runner is RUNNER
    assert not run_checks(signed)["signature"].passed


def test_onchain_hash_mismatch_fails_only_that_check(signed: SignedProvenance) -> None:
    results = run_checks(signed, onchain_provenance_hash="0x" + "00" * 32)
    assert not results["record_hash"].passed
    assert "not to the provenance hash on chain" in results["record_hash"].reason
    assert [n for n, c in results.items() if not c.passed] == ["record_hash"]


def test_malformed_onchain_hash_fails_cleanly(signed: SignedProvenance) -> None:
    assert not run_checks(signed, onchain_provenance_hash="0xzz")["record_hash"].passed


def test_wrong_weights_fail_the_weights_check(signed: SignedProvenance) -> None:
    results = run_checks(signed, weights_plaintext=WEIGHTS + b"\x00")
    assert not results["weights_hash"].passed
    assert [n for n, c in results.items() if not c.passed] == ["weights_hash"]


def test_wrong_spec_fails_the_spec_check(signed: SignedProvenance) -> None:
    results = run_checks(signed, spec_hash="0x" + keccak(b"another spec").hex())
    assert not results["spec_hash"].passed
    assert signed.record.spec_hash in results["spec_hash"].reason
    assert [n for n, c in results.items() if not c.passed] == ["spec_hash"]


def test_understated_epsilon_fails_even_when_signed() -> None:
    honest = epsilon_of_curve(ORDERS, CURVE, DELTA)
    lying = sign(ProvenanceRecord(**record_fields(epsilon=honest // 2)), RUNNER)
    results = run_checks(lying)
    assert results["signature"].passed and results["record_hash"].passed
    assert not results["epsilon"].passed
    assert "its RDP curve gives" in results["epsilon"].reason


def test_ledger_epsilon_and_curve_mismatch_fail(signed: SignedProvenance) -> None:
    results = run_checks(signed, ledger_epsilon=signed.record.epsilon + 5,
                         ledger_curve=(CURVE[0] + 1, *CURVE[1:]))
    assert not results["ledger_epsilon"].passed
    assert "the ledger charged" in results["ledger_epsilon"].reason
    assert not results["ledger_curve"].passed
    assert results["epsilon"].passed


def test_wrong_job_id_fails(signed: SignedProvenance) -> None:
    results = run_checks(signed, job_id=8)
    assert not results["job_id"].passed and "not job 8" in results["job_id"].reason


def test_epsilon_conversion_agrees_with_the_runners_accountant() -> None:
    accounting = pytest.importorskip("exchange.ml.accounting")
    orders = tuple(int(o * 1000) for o in accounting.ORDERS)
    for sigma, q, steps in [(1.1, 0.01, 300), (0.8, 0.05, 1000), (4.0, 0.2, 50)]:
        curve = accounting.fixed_curve(accounting.rdp_curve(sigma, q, steps))
        expected = accounting.epsilon_fixed(curve, 1e-5)
        assert epsilon_of_curve(orders, curve, 10**13) == expected


def test_without_the_weights_every_other_check_is_made(signed: SignedProvenance) -> None:
    # What anyone but the buyer can check (the market page): all but the decrypted weights' hash.
    public = run_checks(signed, weights_plaintext=None)
    assert "weights_hash" not in public and all_passed(list(public.values()))
    assert set(run_checks(signed)) == set(public) | {"weights_hash"}
    # Control: a record that is not the one on chain still fails without the weights.
    tampered = run_checks(signed, weights_plaintext=None, onchain_provenance_hash="0x" + "00" * 32)
    assert not tampered["record_hash"].passed
