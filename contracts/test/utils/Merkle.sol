// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title Merkle
 * @notice Builds Merkle trees the way OpenZeppelin's MerkleProof verifies them: each parent
 * is keccak256 of its two children in sorted order; a node without a sibling moves up as is.
 * Leaves are given already hashed.
 */
library Merkle {
    /// @notice keccak256 of `a` and `b`, smaller first (OpenZeppelin's commutative pair hash).
    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @notice The root over `leaves` (at least one).
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        require(leaves.length > 0, "Merkle: no leaves");
        bytes32[] memory layer = leaves;
        while (layer.length > 1) layer = _parents(layer);
        return layer[0];
    }

    /// @notice The proof (siblings from the leaf up) for `leaves[index]`.
    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory path) {
        require(index < leaves.length, "Merkle: index out of range");
        path = new bytes32[](256);
        uint256 depth;
        bytes32[] memory layer = leaves;
        while (layer.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < layer.length) path[depth++] = layer[sibling];
            layer = _parents(layer);
            index /= 2;
        }
        assembly ("memory-safe") {
            mstore(path, depth)
        }
    }

    function _parents(bytes32[] memory layer) private pure returns (bytes32[] memory next) {
        next = new bytes32[]((layer.length + 1) / 2);
        for (uint256 i; i < next.length; ++i) {
            uint256 left = 2 * i;
            next[i] = left + 1 < layer.length ? hashPair(layer[left], layer[left + 1]) : layer[left];
        }
    }
}
