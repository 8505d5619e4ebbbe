// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/**
 * @title Vm
 * @notice The few forge cheatcodes Cove's tests use. Selectors follow the cheatcodes'
 * Solidity signatures, so only what is declared here can be called.
 */
interface Vm {
    /// @notice One log captured by {recordLogs}.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    /// @notice Gas figures of the last call, from {lastCallGas}.
    struct Gas {
        uint64 gasLimit;
        uint64 gasTotalUsed;
        uint64 gasMemoryUsed;
        int64 gasRefunded;
        uint64 gasRemaining;
    }

    /// @notice Sets msg.sender for the next call only.
    function prank(address sender) external;
    /// @notice Sets msg.sender for every call until {stopPrank}.
    function startPrank(address sender) external;
    /// @notice Ends a {startPrank}.
    function stopPrank() external;

    /// @notice The next call must revert (with any data).
    function expectRevert() external;
    /// @notice The next call must revert with exactly `revertData`.
    function expectRevert(bytes calldata revertData) external;
    /// @notice The next call must revert with an error whose selector is `selector`
    /// (an error with arguments must then be matched by the full-data overload).
    function expectRevert(bytes4 selector) external;

    /// @notice The next event emitted must match the one emitted right after this call,
    /// comparing topics 1..3 and the data as flagged.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    /// @notice As above, and the event must come from `emitter`.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;

    /// @notice Starts recording every log emitted.
    function recordLogs() external;
    /// @notice The logs recorded since {recordLogs} (and clears them).
    function getRecordedLogs() external returns (Log[] memory logs);

    /// @notice Sets block.timestamp.
    function warp(uint256 timestamp) external;
    /// @notice Sets block.number.
    function roll(uint256 blockNumber) external;
    /// @notice The address of private key `privateKey`.
    function addr(uint256 privateKey) external pure returns (address account);
    /// @notice Signs `digest` with `privateKey` (secp256k1).
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    /// @notice Discards the current fuzz input unless `condition` holds.
    function assume(bool condition) external pure;
    /// @notice Names `account` in traces.
    function label(address account, string calldata newLabel) external;
    /// @notice Gas used by the last call the test made (execution only: no intrinsic cost).
    function lastCallGas() external view returns (Gas memory gas);
    /// @notice Marks `target` and its storage slots cold, as at the start of a transaction.
    function cool(address target) external;
}

/**
 * @title Test
 * @notice A small base for Cove's forge tests: the cheatcode handle and assertions that
 * revert with a readable message. Not a copy of forge-std; only what the suite needs.
 */
abstract contract Test {
    /// @notice The standard HEVM cheatcode address.
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // ------------------------------------------------------------------ assertions

    /// @notice Reverts with `message` unless `condition` holds.
    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) _fail("assertTrue", message, "false");
    }

    /// @notice Reverts unless `condition` holds.
    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "");
    }

    /// @notice Reverts with `message` if `condition` holds.
    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) _fail("assertFalse", message, "true");
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        if (left != right) _fail("assertEq(uint256)", message, _pair(Strings.toString(left), Strings.toString(right)));
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(uint256 left, uint256 right) internal pure {
        assertEq(left, right, "");
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(address left, address right, string memory message) internal pure {
        if (left != right) {
            _fail("assertEq(address)", message, _pair(Strings.toHexString(left), Strings.toHexString(right)));
        }
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(address left, address right) internal pure {
        assertEq(left, right, "");
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        if (left != right) {
            _fail(
                "assertEq(bytes32)",
                message,
                _pair(Strings.toHexString(uint256(left), 32), Strings.toHexString(uint256(right), 32))
            );
        }
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(bytes32 left, bytes32 right) internal pure {
        assertEq(left, right, "");
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(bool left, bool right, string memory message) internal pure {
        if (left != right) _fail("assertEq(bool)", message, _pair(_bool(left), _bool(right)));
    }

    /// @notice Reverts unless `left == right`.
    function assertEq(bool left, bool right) internal pure {
        assertEq(left, right, "");
    }

    /// @notice Reverts unless `left` and `right` are the same string.
    function assertEq(string memory left, string memory right, string memory message) internal pure {
        if (keccak256(bytes(left)) != keccak256(bytes(right))) {
            _fail("assertEq(string)", message, _pair(string.concat('"', left, '"'), string.concat('"', right, '"')));
        }
    }

    /// @notice Reverts unless `left` and `right` are the same string.
    function assertEq(string memory left, string memory right) internal pure {
        assertEq(left, right, "");
    }

    /// @notice Reverts unless `left` and `right` are the same bytes.
    function assertEq(bytes memory left, bytes memory right, string memory message) internal pure {
        if (keccak256(left) != keccak256(right)) {
            _fail("assertEq(bytes)", message, _pair(Strings.toHexString(left), Strings.toHexString(right)));
        }
    }

    /// @notice Reverts unless `left > right`.
    function assertGt(uint256 left, uint256 right, string memory message) internal pure {
        if (left <= right) _fail("assertGt", message, _pair(Strings.toString(left), Strings.toString(right)));
    }

    /// @notice Reverts unless `left >= right`.
    function assertGe(uint256 left, uint256 right, string memory message) internal pure {
        if (left < right) _fail("assertGe", message, _pair(Strings.toString(left), Strings.toString(right)));
    }

    /// @notice Reverts unless `left < right`.
    function assertLt(uint256 left, uint256 right, string memory message) internal pure {
        if (left >= right) _fail("assertLt", message, _pair(Strings.toString(left), Strings.toString(right)));
    }

    /// @notice Reverts unless `left <= right`.
    function assertLe(uint256 left, uint256 right, string memory message) internal pure {
        if (left > right) _fail("assertLe", message, _pair(Strings.toString(left), Strings.toString(right)));
    }

    // ------------------------------------------------------------------ fuzzing

    /**
     * @notice Maps `x` into [`min`, `max`]: values already inside are kept (so the fuzzer's
     * edge cases survive), others wrap around modulo the range's size.
     */
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1; // 0 only for the full range, which returned above
        return min + (x % size);
    }

    // ------------------------------------------------------------------ internals

    function _fail(string memory what, string memory message, string memory detail) private pure {
        revert(string.concat(what, " failed", bytes(message).length == 0 ? "" : ": ", message, " (", detail, ")"));
    }

    function _pair(string memory left, string memory right) private pure returns (string memory) {
        return string.concat("left ", left, ", right ", right);
    }

    function _bool(bool value) private pure returns (string memory) {
        return value ? "true" : "false";
    }
}
