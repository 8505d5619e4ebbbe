"""Merkle trees that OpenZeppelin's MerkleProof verifies.

Leaves are double-hashed (`keccak256(bytes.concat(keccak256(abi.encode(value))))`, the
OpenZeppelin standard leaf, which rules out second-preimage attacks with inner nodes) and
pairs are hashed in sorted order, so a proof needs no left/right flags.

Why a Merkle root and not an on-chain mapping for allowlists: publishing stores one
32-byte root whatever the list's length (a mapping costs ~22k gas per address), and a
buyer's proof costs only calldata (log2(n) words).
"""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_checksum_address


def address_leaf(address: str) -> bytes:
    return keccak(keccak(encode(["address"], [to_checksum_address(address)])))


def bytes32_leaf(value: bytes) -> bytes:
    return keccak(keccak(encode(["bytes32"], [value])))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


class MerkleTree:
    """A tree over distinct leaves; an odd node at the end of a level moves up unpaired."""

    def __init__(self, leaves: list[bytes]):
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.layers = [sorted(set(leaves))]
        while len(self.layers[-1]) > 1:
            level = self.layers[-1]
            parents = [_hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                parents.append(level[-1])
            self.layers.append(parents)

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, leaf: bytes) -> list[bytes] | None:
        """Sibling hashes from `leaf` to the root, or None when `leaf` is not in the tree."""
        try:
            index = self.layers[0].index(leaf)
        except ValueError:
            return None
        proof = []
        for level in self.layers[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """What MerkleProof.verify computes on-chain."""
    node = leaf
    for sibling in proof:
        node = _hash_pair(node, sibling)
    return node == root
