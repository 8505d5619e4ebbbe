"""Encryption to a buyer's key: ECIES over secp256k1 with AES-256-GCM (eciespy).

Trained weights leave the owner's machine only encrypted to the buyer's public key, the
same secp256k1 key that controls the buyer's Ethereum account. A buyer who never
registered a key can still be served: `recover_public_key_from_tx` recovers the key from
any transaction the buyer signed (the job request, say).

Wire format (eciespy's default, interoperable with eciesjs), pinned here so a library
upgrade cannot change it silently: 65-byte uncompressed ephemeral public key, 16-byte
AES-GCM nonce, 16-byte tag, then the ciphertext. The shared secret goes through
HKDF-SHA256 over the ephemeral key and the shared point, both uncompressed.
"""

from __future__ import annotations

import ecies
import rlp
from ecies.config import Config
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from exchange.errors import ChainError, DecryptionError, InputError

_CONFIG = Config(
    elliptic_curve="secp256k1",
    is_ephemeral_key_compressed=False,
    is_hkdf_key_compressed=False,
    symmetric_algorithm="aes-256-gcm",
    symmetric_nonce_length=16,
)
# Ephemeral key + nonce + tag: anything shorter cannot be an encrypted blob.
OVERHEAD_BYTES = 65 + 16 + 16

PrivateKeyLike = LocalAccount | bytes


def _private_key_bytes(key: PrivateKeyLike) -> bytes:
    raw = bytes(key.key) if isinstance(key, LocalAccount) else bytes(key)
    if len(raw) != 32:
        raise InputError("A private key must be 32 bytes.")
    return raw


def public_key_of(account: PrivateKeyLike) -> bytes:
    """The compressed (33-byte) secp256k1 public key of an account or raw private key."""
    return keys.PrivateKey(_private_key_bytes(account)).public_key.to_compressed_bytes()


def _check_public_key(public_key: bytes) -> bytes:
    """Accepts compressed (33), uncompressed (65) or bare (64) keys; returns compressed."""
    raw = bytes(public_key)
    try:
        if len(raw) == 33:
            return keys.PublicKey.from_compressed_bytes(raw).to_compressed_bytes()
        if len(raw) == 65 and raw[0] == 4:
            raw = raw[1:]
        if len(raw) == 64:
            return keys.PublicKey(raw).to_compressed_bytes()
    except (ValidationError, ValueError):
        pass
    raise InputError("The public key is not a valid secp256k1 public key.")


def encrypt_to(public_key: bytes, data: bytes) -> bytes:
    """`data` encrypted so that only the holder of `public_key`'s private key can read it."""
    return ecies.encrypt(_check_public_key(public_key), bytes(data), _CONFIG)


def decrypt_with(private_key: PrivateKeyLike, data: bytes) -> bytes:
    """The plaintext of `data`; DecryptionError if the key is wrong or the data was altered."""
    secret = _private_key_bytes(private_key)
    if len(data) < OVERHEAD_BYTES:
        raise DecryptionError("The encrypted data is too short to be an ECIES message.")
    try:
        return ecies.decrypt(secret, bytes(data), _CONFIG)
    except ValueError:
        # eciespy says "MAC check failed" for both causes; they cannot be told apart.
        raise DecryptionError(
            "The data cannot be decrypted: it was encrypted to another key or has been altered."
        ) from None


def _standard_v(v: int) -> int:
    """A signature's recovery id (0 or 1) from any of the v encodings Ethereum uses."""
    if v in (0, 1):
        return v  # typed transactions: yParity
    if v in (27, 28):
        return v - 27  # legacy, before EIP-155
    return (v - 35) % 2  # legacy with EIP-155: v = chain_id * 2 + 35 + parity


def _legacy_signing_hash_and_vrs(raw: bytes) -> tuple[bytes, tuple[int, int, int]]:
    """A legacy transaction's signing hash, rebuilt from its RLP fields (EIP-155)."""
    fields = rlp.decode(raw)
    if not isinstance(fields, list) or len(fields) != 9:
        raise ValueError("not a signed legacy transaction")
    unsigned = fields[:6]  # nonce, gasPrice, gas, to, value, data
    v, r, s = (int.from_bytes(f, "big") for f in fields[6:])
    if v >= 35:  # EIP-155: the chain id is signed too, with two empty fields
        unsigned += [(v - 35) // 2, b"", b""]
    return keccak(rlp.encode(unsigned)), (v, r, s)


def _signing_hash_and_vrs(raw: bytes) -> tuple[bytes, tuple[int, int, int]]:
    if raw and raw[0] <= 0x7F:  # EIP-2718 typed envelope: access-list, dynamic-fee, ...
        typed = TypedTransaction.from_bytes(HexBytes(raw))
        v, r, s = typed.vrs()
        return typed.hash(), (v, r, s)
    return _legacy_signing_hash_and_vrs(raw)


def recover_public_key_from_tx(w3: Web3, tx_hash: bytes | str) -> bytes:
    """The compressed public key of the account that signed transaction `tx_hash`.

    Works for legacy, access-list and dynamic-fee (type 2) transactions. The raw signed
    transaction is checked to hash to `tx_hash` and the recovered key to belong to the
    transaction's sender, so a node cannot substitute a key of its choosing.
    """
    wanted = HexBytes(tx_hash)
    try:
        raw = bytes(w3.eth.get_raw_transaction(wanted))
        sender = w3.eth.get_transaction(wanted)["from"]
    except TransactionNotFound:
        raise ChainError(f"No transaction {wanted.to_0x_hex()} is known to the chain.") from None
    except Web3RPCError:
        raise ChainError(
            "The chain's node cannot return raw transactions (eth_getRawTransactionByHash)."
        ) from None
    if keccak(raw) != bytes(wanted):
        raise ChainError(f"The node returned a different transaction for {wanted.to_0x_hex()}.")
    try:
        message_hash, (v, r, s) = _signing_hash_and_vrs(raw)
        public_key = keys.Signature(vrs=(_standard_v(v), r, s)).recover_public_key_from_msg_hash(
            message_hash
        )
    except (BadSignature, ValidationError, ValueError, TypeError, rlp.DecodingError):
        raise ChainError(f"Transaction {wanted.to_0x_hex()} carries no usable signature.") from None
    if public_key.to_checksum_address() != to_checksum_address(sender):
        raise ChainError(f"The key recovered from {wanted.to_0x_hex()} is not its sender's.")
    return public_key.to_compressed_bytes()
