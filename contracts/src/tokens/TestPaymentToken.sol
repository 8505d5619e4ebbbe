// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/**
 * @title TestPaymentToken
 * @notice A stand-in payment token for local chains and demos: anyone may mint themselves
 * a bounded amount. Supports EIP-2612 permit, so a buyer can approve and buy in one transaction.
 * @dev Never deploy this on a chain where the token is meant to have value.
 */
contract TestPaymentToken is ERC20, ERC20Permit {
    /// @notice The most one faucet call mints.
    uint256 public constant FAUCET_LIMIT = 10_000 ether;

    /// @notice `requested` is above the per-call faucet limit.
    error FaucetLimitExceeded(uint256 requested, uint256 limit);

    constructor() ERC20("Cove Test Dollar", "tUSD") ERC20Permit("Cove Test Dollar") {}

    /// @notice Mints `amount` (at most FAUCET_LIMIT) to the caller.
    function faucet(uint256 amount) external {
        if (amount > FAUCET_LIMIT) revert FaucetLimitExceeded(amount, FAUCET_LIMIT);
        _mint(msg.sender, amount);
    }
}
