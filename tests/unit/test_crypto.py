"""ECIES to a buyer's key, and recovering that key from a transaction the buyer signed."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_keys import keys

from exchange.accounts import dev_account
from exchange.chain.anvil import ChainInfo
from exchange.chain.session import connect
from exchange.crypto import (
    OVERHEAD_BYTES,
    decrypt_with,
    encrypt_to,
    public_key_of,
    recover_public_key_from_tx,
)
from exchange.errors import ChainError, DecryptionError, InputError

BUYER = dev_account(1)
OTHER = dev_account(2)
WEIGHTS = os.urandom(10_000)


def test_public_key_is_compressed_secp256k1_of_the_account() -> None:
    key = public_key_of(BUYER)
    assert len(key) == 33 and key[0] in (2, 3)
    derived = keys.PublicKey.from_compressed_bytes(key)
    assert derived.to_checksum_address() == BUYER.address
    assert public_key_of(bytes(BUYER.key)) == key


@pytest.mark.parametrize("size", [0, 1, 31, 32, 1000, 1 << 20])
def test_round_trip(size: int) -> None:
    data = os.urandom(size)
    sealed = encrypt_to(public_key_of(BUYER), data)
    assert len(sealed) == size + OVERHEAD_BYTES
    assert decrypt_with(BUYER, sealed) == data
    assert decrypt_with(bytes(BUYER.key), sealed) == data


def test_uncompressed_and_bare_public_keys_work_too() -> None:
    public = keys.PrivateKey(bytes(BUYER.key)).public_key
    for key in (b"\x04" + public.to_bytes(), public.to_bytes()):
        assert decrypt_with(BUYER, encrypt_to(key, WEIGHTS)) == WEIGHTS


def test_encryption_is_randomised() -> None:
    key = public_key_of(BUYER)
    assert encrypt_to(key, WEIGHTS) != encrypt_to(key, WEIGHTS)


def test_wrong_key_is_a_decryption_error() -> None:
    sealed = encrypt_to(public_key_of(BUYER), WEIGHTS)
    with pytest.raises(DecryptionError, match="another key or has been altered"):
        decrypt_with(OTHER, sealed)


@pytest.mark.parametrize(
    "position",
    [1, 40, 65, 70, 81, 90, OVERHEAD_BYTES, OVERHEAD_BYTES + 5000, -1],
    ids=["ephemeral-key", "ephemeral-key-mid", "nonce", "nonce-mid", "tag", "tag-mid",
         "ciphertext-first", "ciphertext-mid", "ciphertext-last"],
)
def test_any_flipped_bit_is_detected(position: int) -> None:
    sealed = bytearray(encrypt_to(public_key_of(BUYER), WEIGHTS))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        decrypt_with(BUYER, bytes(sealed))


@pytest.mark.parametrize("cut", [0, 10, OVERHEAD_BYTES - 1])
def test_truncated_data_is_a_decryption_error(cut: int) -> None:
    sealed = encrypt_to(public_key_of(BUYER), WEIGHTS)
    with pytest.raises(DecryptionError):
        decrypt_with(BUYER, sealed[:cut])


def test_truncated_ciphertext_is_detected() -> None:
    sealed = encrypt_to(public_key_of(BUYER), WEIGHTS)
    with pytest.raises(DecryptionError):
        decrypt_with(BUYER, sealed[:-1])


@pytest.mark.parametrize(
    "key", [b"", b"\x02" + b"\x00" * 32, b"\x05" + b"\x11" * 32, b"\x04" + b"\x00" * 64, b"x" * 20]
)
def test_invalid_public_keys_are_refused(key: bytes) -> None:
    with pytest.raises(InputError, match="not a valid secp256k1 public key"):
        encrypt_to(key, WEIGHTS)


def test_invalid_private_key_is_refused() -> None:
    with pytest.raises(InputError):
        decrypt_with(b"short", encrypt_to(public_key_of(BUYER), WEIGHTS))


# --- recovering a buyer's key from a transaction ------------------------------------------


def _send_signed(w3, account, **fields) -> bytes:  # type: ignore[no-untyped-def]
    tx = {
        "to": OTHER.address,
        "value": 1,
        "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        **fields,
    }
    raw = account.sign_transaction(tx).raw_transaction
    tx_hash = w3.eth.send_raw_transaction(raw)
    w3.eth.wait_for_transaction_receipt(tx_hash)
    return bytes(tx_hash)


@pytest.mark.chain
def test_recover_public_key_from_transactions(chain: ChainInfo) -> None:
    w3 = connect(chain.rpc_url)
    fee = w3.eth.gas_price * 2
    # as anvil signs eth_sendTransaction for its unlocked dev accounts: type 2. Mined before the
    # next nonce is read: anvil answers eth_sendTransaction before the block holding it exists.
    anvil_signed = w3.eth.send_transaction({"from": BUYER.address, "to": OTHER.address, "value": 1})
    w3.eth.wait_for_transaction_receipt(anvil_signed)
    hashes = {
        "anvil": bytes(anvil_signed),
        "type-2": _send_signed(w3, BUYER, maxFeePerGas=fee, maxPriorityFeePerGas=1),
        "type-1": _send_signed(w3, BUYER, gasPrice=fee, accessList=[]),
        "legacy": _send_signed(w3, BUYER, gasPrice=fee),
    }
    assert w3.eth.get_transaction(hashes["anvil"])["type"] == 2
    assert w3.eth.get_transaction(hashes["legacy"])["type"] == 0
    for kind, tx_hash in hashes.items():
        w3.eth.wait_for_transaction_receipt(tx_hash)
        key = recover_public_key_from_tx(w3, tx_hash)
        assert key == public_key_of(BUYER), kind
        assert recover_public_key_from_tx(w3, "0x" + tx_hash.hex()) == key
    # the recovered key is usable: the buyer decrypts what was sealed to it
    sealed = encrypt_to(recover_public_key_from_tx(w3, hashes["anvil"]), WEIGHTS)
    assert decrypt_with(BUYER, sealed) == WEIGHTS


@pytest.mark.chain
def test_unknown_transaction_is_a_chain_error(chain: ChainInfo) -> None:
    w3 = connect(chain.rpc_url)
    with pytest.raises(ChainError, match="is known to the chain"):
        recover_public_key_from_tx(w3, b"\x12" * 32)


def test_a_stranger_key_is_not_the_buyers() -> None:
    stranger = Account.create()
    assert public_key_of(stranger) != public_key_of(BUYER)
