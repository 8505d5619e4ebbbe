"""describe_revert: raw revert data (custom errors, Panic, Error(string)) to one readable sentence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from exchange.accounts import dev_account
from exchange.chain.artifacts import error_specs
from exchange.chain.reverts import _MESSAGES, describe_revert
from exchange.errors import ChainError, TransactionReverted

OWNER, BUYER = dev_account(0).address, dev_account(1).address


def payload(signature: str, types: list[str], values: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def sentence(data: bytes | str) -> TransactionReverted:
    error = describe_revert(data)
    assert isinstance(error, TransactionReverted) and isinstance(error, ChainError)
    message = str(error)
    assert "\n" not in message and message.endswith("."), message
    assert not "a" <= message[0] <= "z", message
    return error


def test_not_policy_controller_names_both_addresses_checksummed() -> None:
    data = payload("NotPolicyController(uint256,address,address)", ["uint256", "address", "address"],
                   [3, BUYER.lower(), OWNER.lower()])  # fmt: skip
    error = sentence(data)
    assert str(error) == (
        f"Only the policy controller of dataset #3 ({OWNER}) may change it, not {BUYER}; use the controller's account."
    )
    assert error.error_name == "NotPolicyController"
    assert error.error_args == (3, BUYER, OWNER)


def test_hex_strings_and_bytes_decode_alike() -> None:
    data = payload("UnknownDataset(uint256)", ["uint256"], [42])
    assert str(sentence(data)) == str(sentence("0x" + data.hex())) == str(sentence(data.hex()))
    assert str(sentence(data)) == "There is no dataset #42; list them with `cove datasets`."


@pytest.mark.parametrize(
    ("signature", "types", "values", "expected"),
    [
        ("NotAllowlisted(uint256,address)", ["uint256", "address"], [7, BUYER.lower()],
         f"{BUYER} is not on the allowlist of dataset #7; ask its owner to add you."),
        ("FreeCapExceeded(uint256,uint16,uint256)", ["uint256", "uint16", "uint256"], [2, 5, 5],
         "Dataset #2 gives at most 5 free credits per address and you already took 5."),
        ("CommitmentAlreadyPublished(bytes32,uint256)", ["bytes32", "uint256"], [b"\x01" * 32, 9],
         "This data is already published as dataset #9; publish different data or manage that dataset instead."),
        ("InvalidPerJobCap(uint32,uint32)", ["uint32", "uint32"], [5_000_000, 2_500_000],
         "The per-job privacy cap (ε 5) must be positive and at most the budget (ε 2.5)."),
        ("InvalidDelta(uint64)", ["uint64"], [10**18], "δ must lie strictly between 0 and 1, not 1."),
        ("InvalidPrivacyBudget()", [], [], "The privacy budget must be greater than 0."),
        ("ZeroCredits()", [], [], "Buy at least one credit."),
        ("MissingFreeCap()", [], [], "A free dataset needs a per-address credit cap above 0."),
        ("ExpiryInPast(uint40,uint256)", ["uint40", "uint256"],
         [int(datetime(2020, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()), 1_700_000_000],
         "The expiry 2020-03-04 05:06:07 UTC is already past; choose a later one."),
        ("PolicyExpired(uint256,uint40)", ["uint256", "uint40"],
         [4, int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())],
         "Dataset #4 stopped selling credits at 2030-01-01 00:00:00 UTC."),
        ("CostAboveMaximum(uint256,uint256)", ["uint256", "uint256"], [300, 200],
         "The price changed: the purchase now costs 300 units, above your maximum of 200; "
         "check `cove policy show` and try again."),
        ("MissingDatasetField(string)", ["string"], ["commitment"], "The dataset's commitment is missing."),
        ("ERC20InsufficientBalance(address,uint256,uint256)", ["address", "uint256", "uint256"], [BUYER.lower(), 1, 2],
         f"{BUYER} holds 1 units of the payment token but 2 are needed; get more (on a local chain: `cove faucet`)."),
        ("ERC20InsufficientAllowance(address,uint256,uint256)", ["address", "uint256", "uint256"],
         [OWNER.lower(), 0, 5],
         f"The allowance to {OWNER} is 0 units but 5 are needed; approve more or let `cove buy` approve."),
        ("FaucetLimitExceeded(uint256,uint256)", ["uint256", "uint256"], [20000 * 10**18, 10000 * 10**18],
         "The faucet gives at most 10000 tokens per call."),
    ],
)  # fmt: skip
def test_custom_errors_read_as_sentences(signature: str, types: list[str], values: list[object], expected: str) -> None:
    error = sentence(payload(signature, types, values))
    assert str(error) == expected
    assert error.error_name == signature.split("(")[0]


def test_an_error_without_a_phrase_names_itself_and_its_arguments() -> None:
    error = sentence(payload("ERC721InvalidOwner(address)", ["address"], [BUYER.lower()]))
    assert error.error_name == "ERC721InvalidOwner"
    assert str(error) == f"The transaction reverted with ERC721InvalidOwner('{BUYER}',)."


def test_error_string() -> None:
    error = sentence(payload("Error(string)", ["string"], ["Ownable: caller is not the owner"]))
    assert str(error) == "The transaction reverted: Ownable: caller is not the owner."
    assert error.error_name == "Error" and error.error_args == ("Ownable: caller is not the owner",)
    assert str(sentence(payload("Error(string)", ["string"], ["done."]))) == "The transaction reverted: done."


@pytest.mark.parametrize(
    ("code", "what"),
    [(0x01, "an assertion failed"), (0x11, "an arithmetic overflow"), (0x12, "a division by zero"),
     (0x32, "panic code 0x32")],
)  # fmt: skip
def test_panics(code: int, what: str) -> None:
    error = sentence(payload("Panic(uint256)", ["uint256"], [code]))
    assert str(error) == f"The contract stopped on {what}."
    assert error.error_name == "Panic" and error.error_args == (code,)


@pytest.mark.parametrize("data", [b"", "", "0x", None, b"\x01\x02"])
def test_no_reason(data: bytes | str | None) -> None:
    error = sentence(data)  # type: ignore[arg-type]
    assert str(error) == "The transaction reverted without a reason."
    assert error.error_name is None


def test_unknown_selector() -> None:
    error = sentence(bytes.fromhex("deadbeef") + encode(["uint256"], [1]))
    assert str(error) == "The transaction reverted with unknown error 0xdeadbeef."
    assert error.error_name is None


@pytest.mark.parametrize(
    "data",
    [
        function_signature_to_4byte_selector("UnknownDataset(uint256)") + b"\x00" * 5,
        function_signature_to_4byte_selector("Error(string)") + b"\x00" * 3,
        function_signature_to_4byte_selector("Panic(uint256)"),
    ],
)
def test_truncated_payloads_still_give_a_sentence(data: bytes) -> None:
    error = sentence(data)
    assert "reverted" in str(error) or "stopped" in str(error)


def test_every_phrased_error_exists_in_the_artifacts() -> None:
    """A renamed Solidity error must not silently lose its sentence."""
    names = {spec.name for spec in error_specs().values()}
    assert set(_MESSAGES) <= names, set(_MESSAGES) - names


def test_selectors_do_not_collide() -> None:
    specs = error_specs()
    by_signature = {f"{s.name}({','.join(s.input_types)})": selector for selector, s in specs.items()}
    assert len(by_signature) == len(specs)
    for signature, selector in by_signature.items():
        assert function_signature_to_4byte_selector(signature) == selector
