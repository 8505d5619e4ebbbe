"""Merkle allowlists: proofs verify off-chain, and the contract agrees on leaves, roots and proofs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from exchange.accounts import dev_account
from exchange.errors import TransactionReverted
from exchange.market import ZERO_ADDRESS
from exchange.merkle import MerkleTree, address_leaf, bytes32_leaf, verify
from exchange.policy import parse_terms
from exchange.publish import publish_dataset

from conftest import PATIENTS_SCHEMA

DEV = [dev_account(i).address for i in range(10)]
STRANGERS = [Account.from_key(keccak(text=f"stranger {i}")).address for i in range(5)]


def tree_of(addresses: list[str]) -> MerkleTree:
    return MerkleTree([address_leaf(a) for a in addresses])


def test_leaf_is_the_openzeppelin_standard_leaf() -> None:
    address = DEV[3]
    assert address_leaf(address) == keccak(keccak(encode(["address"], [address])))
    assert address_leaf(address.lower()) == address_leaf(address)  # case does not matter
    value = b"\x07" * 32
    assert bytes32_leaf(value) == keccak(keccak(encode(["bytes32"], [value])))
    # an address and the same 32 bytes as a bytes32 encode alike: the leaf depends on the value only
    assert address_leaf(address) == bytes32_leaf(b"\x00" * 12 + bytes.fromhex(address[2:]))
    assert address_leaf(address) != address_leaf(DEV[4])


@pytest.mark.parametrize("size", range(1, 10))
def test_every_member_has_a_proof_that_verifies(size: int) -> None:
    members = DEV[:size]
    tree = tree_of(members)
    depth = (size - 1).bit_length()
    for member in members:
        proof = tree.proof(address_leaf(member))
        assert proof is not None
        assert len(proof) <= depth
        assert verify(proof, tree.root, address_leaf(member))
    if size == 1:
        assert tree.root == address_leaf(members[0]) and tree.proof(address_leaf(members[0])) == []


@pytest.mark.parametrize("size", range(1, 10))
def test_non_members_get_no_proof_and_members_proofs_do_not_transfer(size: int) -> None:
    members = DEV[:size]
    tree = tree_of(members)
    for stranger in STRANGERS:
        assert tree.proof(address_leaf(stranger)) is None
        for member in members:
            proof = tree.proof(address_leaf(member))
            assert not verify(proof, tree.root, address_leaf(stranger))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", range(2, 10))
def test_inner_nodes_are_not_leaves(size: int) -> None:
    """Double-hashed leaves: an inner node cannot pass as a member (second preimage)."""
    tree = tree_of(DEV[:size])
    for level in tree.layers[1:-1]:
        for node in level:
            if node in tree.layers[0]:
                continue  # an odd leaf moved up unpaired
            assert tree.proof(node) is None


def test_root_ignores_order_case_and_duplicates() -> None:
    members = DEV[:7]
    shuffled = members[:]
    random.Random(4).shuffle(shuffled)
    assert tree_of(members).root == tree_of(shuffled).root
    assert tree_of(members).root == tree_of([m.lower() for m in members] + members[:3]).root
    assert tree_of(members).root != tree_of(members[:6]).root


def test_a_tampered_proof_fails() -> None:
    tree = tree_of(DEV[:8])
    proof = tree.proof(address_leaf(DEV[5]))
    assert proof and verify(proof, tree.root, address_leaf(DEV[5]))
    assert not verify(proof[:-1], tree.root, address_leaf(DEV[5]))
    assert not verify([b"\x00" * 32, *proof[1:]], tree.root, address_leaf(DEV[5]))
    assert not verify(proof, tree_of(DEV[:7]).root, address_leaf(DEV[5]))


def test_an_empty_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        MerkleTree([])


# --------------------------------------------------------------------------------------
# against the contract


@pytest.mark.chain
def test_contract_leaf_equals_address_leaf(client_for) -> None:  # type: ignore[no-untyped-def]
    cove = client_for(0).cove
    for address in DEV[:3] + STRANGERS[:2]:
        assert bytes(cove.functions.allowlistLeaf(address).call()) == address_leaf(address)


@pytest.mark.chain
def test_proofs_from_merkle_tree_are_accepted_by_a_real_buy(client_for, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    members = DEV[1:10]  # nine members: a tree four levels deep with an unpaired node
    owner = client_for(0)
    terms = parse_terms(budget="4", per_job_cap="1", free_cap=3, allowlist=members)
    published = publish_dataset(owner, dataset_csv, name="Allowlisted", terms=terms, schema=PATIENTS_SCHEMA)
    dataset_id = published.dataset_id
    struct, _ = owner.cove.functions.policyOf(dataset_id).call()
    tree = tree_of(members)
    assert bytes(struct[9]) == tree.root

    for index in range(1, 10):
        buyer = client_for(index)
        proof = tree.proof(address_leaf(buyer.session.sender))
        assert proof is not None
        buyer.session.transact(buyer.cove.functions.buy(dataset_id, 1, ZERO_ADDRESS, 0, proof))
        assert buyer.cove.functions.freeCreditsTaken(dataset_id, buyer.session.sender).call() == 1

    # the owner is not a member: neither an empty proof nor a member's proof gets it in
    member_proof = tree.proof(address_leaf(DEV[4]))
    for proof in ([], member_proof):
        with pytest.raises(TransactionReverted) as info:
            owner.session.transact(owner.cove.functions.buy(dataset_id, 1, ZERO_ADDRESS, 0, proof))
        assert info.value.error_name == "NotAllowlisted"
        assert f"{DEV[0]} is not on the allowlist of dataset #{dataset_id}" in str(info.value)
    assert owner.cove.functions.freeCreditsTaken(dataset_id, DEV[0]).call() == 0
