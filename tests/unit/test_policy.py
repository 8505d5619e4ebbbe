"""PolicyTerms: validation with one clear sentence per problem, and exact fixed-point round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from exchange.accounts import dev_account
from exchange.errors import InputError, PolicyError
from exchange.merkle import MerkleTree, address_leaf, bytes32_leaf
from exchange.policy import ZERO32, PolicyTerms, model_family_hash, parse_terms

TOKEN = dev_account(9).address  # any checksummed address will do as a token here
ADDRESSES = [dev_account(i).address for i in range(4)]


def priced(**changes: object) -> PolicyTerms:
    return parse_terms(**({"price": "2.5", "payment_token": TOKEN, "budget": "8", "per_job_cap": "2"} | changes))


def refused(**fields: object) -> str:
    with pytest.raises(PolicyError) as info:
        parse_terms(**fields)
    message = str(info.value)
    assert "\n" not in message and message.endswith("."), message
    assert "validation error" not in message.lower() and "pydantic" not in message.lower(), message
    return message


BASE = {"price": "1", "payment_token": TOKEN, "budget": "2", "per_job_cap": "1"}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"price": "-1"}, "The price must not be negative (got -1)"),
        ({"price": "abc"}, "The price must be a number, not 'abc'"),
        ({"price": "inf"}, "price must be a finite number"),
        ({"price": "NaN"}, "price must be a finite number"),
        ({"budget": "0"}, "The privacy budget must be greater than 0"),
        ({"budget": "-1"}, "The privacy budget must be greater than 0"),
        ({"budget": "x"}, "The privacy budget must be a number, not 'x'"),
        ({"per_job_cap": "3"}, "The per-job privacy cap (ε 3) must be positive and at most the budget (ε 2)"),
        ({"per_job_cap": "0"}, "The per-job privacy cap (ε 0) must be positive"),
        ({"per_job_cap": "-0.5"}, "must be positive"),
        ({"delta": "0"}, "δ must lie strictly between 0 and 1, not 0"),
        ({"delta": "1"}, "δ must lie strictly between 0 and 1, not 1"),
        ({"max_epochs": 0}, "The policy must allow at least one epoch"),
        ({"max_epochs": 70000}, "The max epochs must be between 0 and 65535"),
        ({"price": "0", "free_cap": 0}, "A free dataset needs a per-address credit cap above 0"),
        ({"price": "0", "free_cap": 70000}, "The free cap must be between 0 and 65535"),
        ({"payment_token": None}, "A priced dataset needs a payment token"),
        ({"payment_token": "0x1234"}, "The payment token '0x1234' is not a valid address"),
        ({"allowlist": ["0x123"]}, "Allowlist entry 1 ('0x123') is not a valid address"),
        ({"allowlist": [ADDRESSES[0], " nope "]}, "Allowlist entry 2 ('nope') is not a valid address"),
        ({"model_families": ["mlp", "  "]}, "A model family name must not be empty"),
        ({"budget": "4295", "per_job_cap": "1"}, "The privacy budget must be at most ε 4294.967295"),
        ({"budget": "4294.9672951", "per_job_cap": "1"}, "The privacy budget must be at most ε 4294.967295"),
        ({"budget": "1e999999999", "per_job_cap": "1"}, "The privacy budget must be at most ε 4294.967295"),
    ],
)
def test_invalid_terms_are_refused_with_one_sentence(changes: dict[str, object], fragment: str) -> None:
    assert fragment in refused(**(BASE | changes))


def test_other_invalid_fields_still_give_a_policy_error() -> None:
    message = refused(**(BASE | {"max_epochs": "many"}))
    assert "max_epochs" in message
    message = refused(**(BASE | {"surprise": 1}))
    assert "surprise" in message
    assert issubclass(PolicyError, InputError)


def test_checks_run_in_the_contracts_order() -> None:
    # Several problems at once: the first one AccessPolicies.checkPolicy checks is reported.
    assert "price must not be negative" in refused(price="-1", budget="0", per_job_cap="0")
    assert "privacy budget must be greater than 0" in refused(price="1", payment_token=TOKEN, budget="0", per_job_cap="5")


def test_normalisation() -> None:
    terms = priced(
        payment_token=TOKEN.lower(),
        allowlist=[ADDRESSES[2].lower(), ADDRESSES[0], ADDRESSES[2]],
        model_families=[" MLP", "mlp"],
        expiry=datetime(2031, 5, 6, 7, 8, 9),
    )
    assert terms.payment_token == TOKEN
    assert terms.allowlist == tuple(sorted({ADDRESSES[0], ADDRESSES[2]}))  # checksummed, deduplicated, sorted
    assert terms.model_families == ("mlp",)  # trimmed, lower-cased, deduplicated
    assert terms.expiry == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)  # naive means UTC
    with pytest.raises(PolicyError, match="A priced dataset needs a payment token"):
        priced(payment_token="")  # "" means no token
    assert parse_terms(budget="1", per_job_cap="1", free_cap=3).is_free
    assert not priced().is_free
    # One name given as a string is one entry, never its characters.
    assert priced(model_families="MLP").model_families == ("mlp",)
    assert priced(allowlist=ADDRESSES[1]).allowlist == (ADDRESSES[1],)


def test_to_onchain_is_exact_fixed_point() -> None:
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    terms = priced(price="2.5", budget="1.5", per_job_cap="0.000001", delta="1e-5", max_epochs=7, expiry=expiry,
                   compute_only=False)  # fmt: skip
    token, price, onchain_expiry, budget, cap, delta, epochs, free_cap, compute_only, allow_root, family_root = (
        terms.to_onchain(18)
    )
    assert token == TOKEN
    assert price == 2_500_000_000_000_000_000
    assert budget == 1_500_000  # never 1_499_999
    assert cap == 1
    assert delta == 10**13
    assert onchain_expiry == int(expiry.timestamp())
    assert (epochs, free_cap, compute_only) == (7, 0, False)
    assert allow_root == family_root == ZERO32
    assert priced(price="2.5").to_onchain(6)[1] == 2_500_000


def test_free_terms_on_chain() -> None:
    terms = parse_terms(budget="3", per_job_cap="1", free_cap=5)
    struct = terms.to_onchain(18)
    assert struct[0] == "0x" + "00" * 20 and struct[1] == 0 and struct[2] == 0 and struct[7] == 5


def test_roots_on_chain_are_merkle_roots_of_the_lists() -> None:
    terms = priced(allowlist=ADDRESSES, model_families=["mlp"])
    struct = terms.to_onchain(18)
    assert struct[9] == MerkleTree([address_leaf(a) for a in ADDRESSES]).root
    assert struct[10] == MerkleTree([bytes32_leaf(model_family_hash("mlp"))]).root
    assert terms.lists_document() == {"allowlist": sorted(ADDRESSES), "model_families": ["mlp"]}
    assert priced().lists_document() is None
    assert model_family_hash(" MLP ") == model_family_hash("mlp")


@pytest.mark.parametrize(
    ("changes", "decimals", "fragment"),
    [
        ({"price": "0.0000001"}, 6, "price has more decimals than the chain stores (1/1000000)"),
        ({"price": "1e-19"}, 18, "price has more decimals than the chain stores"),
        ({"budget": "1.0000001", "per_job_cap": "1"}, 18, "privacy budget has more decimals than the chain stores"),
        ({"per_job_cap": "0.0000005"}, 18, "per-job privacy cap has more decimals than the chain stores"),
        ({"delta": "1e-19"}, 18, "δ has more decimals than the chain stores"),
        ({"price": str(2**96)}, 0, "The price is too large for the chain to store"),
        ({"price": "79228162514.264337593543950336"}, 18, "The price is too large for the chain to store"),
        ({"price": "1e999999999"}, 18, "The price is too large for the chain to store"),
        ({"price": "1." + "1" * 150}, 18, "price has more decimals than the chain stores"),
        ({"per_job_cap": "1e-999999999"}, 18, "per-job privacy cap has more decimals than the chain stores"),
    ],
)
def test_precision_the_chain_cannot_store_is_refused(changes: dict[str, object], decimals: int, fragment: str) -> None:
    terms = priced(**changes)
    with pytest.raises(PolicyError) as info:
        terms.to_onchain(decimals)
    assert fragment in str(info.value)
    assert str(info.value).endswith(".")


def test_round_trip_through_the_chain_form_is_exact() -> None:
    terms = priced(
        price="79228162514.264337593543950335",  # uint96 max at 18 decimals: 29 significant digits
        budget="4294.967295",
        per_job_cap="0.000001",
        delta="0.000000000000000001",
        max_epochs=65535,
        expiry=datetime(2040, 2, 29, 23, 59, 59, tzinfo=UTC),
        allowlist=ADDRESSES,
        model_families=["mlp"],
        compute_only=False,
    )
    struct = terms.to_onchain(18)
    back = PolicyTerms.from_onchain(struct, 18, terms.lists_document())
    assert back == terms
    assert back.to_onchain(18) == struct
    assert back.model_dump() == terms.model_dump()


def test_round_trip_with_an_expiry_in_another_time_zone() -> None:
    expiry = datetime(2032, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    terms = priced(expiry=expiry)
    back = PolicyTerms.from_onchain(terms.to_onchain(18), 18, None)
    assert back.expiry == expiry and back.expiry.tzinfo == UTC


@given(
    price=st.integers(0, 2**96 - 1),
    decimals=st.sampled_from([0, 2, 6, 18]),
    budget=st.integers(1, 2**32 - 1),
    cap_share=st.floats(0, 1),
    delta=st.integers(1, 10**18 - 1),
    epochs=st.integers(1, 2**16 - 1),
    free_cap=st.integers(1, 2**16 - 1),
    compute_only=st.booleans(),
    expiry=st.one_of(st.just(0), st.integers(1, 253402300799)),  # up to 9999-12-31T23:59:59Z
)
def test_any_valid_chain_struct_round_trips(
    price: int, decimals: int, budget: int, cap_share: float, delta: int, epochs: int, free_cap: int,
    compute_only: bool, expiry: int,
) -> None:  # fmt: skip
    cap = max(1, int(budget * cap_share))
    token = "0x" + "00" * 20 if price == 0 else TOKEN
    struct = (token, price, expiry, budget, cap, delta, epochs, free_cap, compute_only, ZERO32, ZERO32)
    terms = PolicyTerms.from_onchain(struct, decimals, None)
    assert terms.to_onchain(decimals) == struct
    # and the decoded terms pass the same validation a user's input does
    assert parse_terms(**terms.model_dump()) == terms


def test_from_onchain_reads_checksummed_token_and_lists() -> None:
    struct = priced().to_onchain(18)
    lowered = (struct[0].lower(), *struct[1:])
    terms = PolicyTerms.from_onchain(lowered, 18, {"allowlist": [ADDRESSES[1]], "model_families": ["mlp"]})
    assert terms.payment_token == to_checksum_address(TOKEN)
    assert terms.allowlist == (ADDRESSES[1],) and terms.model_families == ("mlp",)
    assert terms.price == Decimal("2.5") and terms.budget == Decimal(8) and terms.per_job_cap == Decimal(2)


def test_largest_values_are_exact() -> None:
    """29-digit prices exceed Decimal's default 28-digit precision; conversions must not round."""
    price = 2**96 - 1
    struct = priced().to_onchain(18)
    struct = (struct[0], price, *struct[2:])
    terms = PolicyTerms.from_onchain(struct, 18, None)
    assert terms.price == Decimal("79228162514.264337593543950335")
    assert terms.to_onchain(18)[1] == price
    assert priced(price="12345678901.234567890123456789").to_onchain(18)[1] == 12345678901234567890123456789
    assert priced(budget="4294.967295", per_job_cap="4294.967295").to_onchain(18)[3:5] == (2**32 - 1, 2**32 - 1)



def test_an_expiry_beyond_year_9999_reads_as_never() -> None:
    struct = ("0x" + "00" * 20, 0, 2**40 - 1, 1_000_000, 1_000_000, 10**13, 5, 1, True, b"\0" * 32, b"\0" * 32)
    assert PolicyTerms.from_onchain(struct, 18, None).expiry is None


def test_an_expiry_not_after_the_chains_clock_is_refused_before_anything_is_sent() -> None:
    expiry = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    terms = priced(expiry=expiry)
    with pytest.raises(PolicyError, match=r"The expiry 2031-05-06 07:08:09 UTC is already past; choose a later one\."):
        terms.check_expiry(int(expiry.timestamp()))  # the chain refuses an expiry equal to its clock too
    terms.check_expiry(int(expiry.timestamp()) - 1)  # control: one second before, it stands
    priced().check_expiry(2**40)  # no expiry: never past
