// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Cove} from "../../src/Cove.sol";

/**
 * @title MockERC20
 * @notice A payment token anyone may mint without limit, so fuzz tests can fund buyers with
 * any cost a uint96 price times a uint64 credit count can reach. Has no permit.
 */
contract MockERC20 is ERC20 {
    constructor() ERC20("Mock Dollar", "mUSD") {}

    /// @notice Mints `amount` to `to`; unrestricted.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/**
 * @title FalseReturningToken
 * @notice A non-reverting, non-compliant token whose `transferFrom` returns false and moves
 * nothing; SafeERC20 must turn that into a revert.
 */
contract FalseReturningToken is ERC20 {
    constructor() ERC20("False", "FALSE") {}

    /// @notice Mints `amount` to `to`; unrestricted.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Always fails softly.
    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }
}

/**
 * @title ReentrantToken
 * @notice A payment token that, when armed, calls back into {Cove.buy} from inside
 * `transferFrom`, to show the market's reentrancy guard holds.
 */
contract ReentrantToken is ERC20 {
    Cove private immutable _cove;
    uint256 private _datasetId;
    bool private _armed;

    constructor(Cove cove) ERC20("Reentrant", "RE") {
        _cove = cove;
    }

    /// @notice Mints `amount` to `to`; unrestricted.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next `transferFrom` re-enter `buy` on `datasetId`.
    function arm(uint256 datasetId) external {
        _datasetId = datasetId;
        _armed = true;
    }

    /// @notice Re-enters the hub when armed (the revert bubbles up unchanged).
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (_armed) {
            _armed = false;
            _cove.buy(_datasetId, 1, address(this), type(uint256).max, new bytes32[](0));
        }
        return super.transferFrom(from, to, value);
    }
}
