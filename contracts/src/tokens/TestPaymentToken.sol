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
    /// @notice The most one faucet call mints: 10,000 whole tokens.
    uint256 public immutable FAUCET_LIMIT;

    uint8 private immutable _decimals;

    /// @notice `requested` is above the per-call faucet limit.
    error FaucetLimitExceeded(uint256 requested, uint256 limit);

    /// @param name_ The token's name, also its EIP-712 domain name (e.g. "Cove Test Dollar").
    /// @param symbol_ Its symbol (e.g. "tUSD").
    /// @param decimals_ Its decimals: 18 like most tokens, 6 like USDC.
    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        _decimals = decimals_;
        FAUCET_LIMIT = 10_000 * 10 ** decimals_;
    }

    /// @notice The token's decimals, as set at deployment.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Mints `amount` (at most FAUCET_LIMIT) to the caller.
    function faucet(uint256 amount) external {
        if (amount > FAUCET_LIMIT) revert FaucetLimitExceeded(amount, FAUCET_LIMIT);
        _mint(msg.sender, amount);
    }
}
