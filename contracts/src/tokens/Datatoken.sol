// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/**
 * @title Datatoken
 * @notice The ERC-20 job credits of one Cove dataset. One whole token (1e18 units) is one
 * compute-job credit.
 * @dev Deployed once as a template by the Cove hub; every dataset gets an ERC-1167 clone
 * whose immutable argument is its dataset id. The template's `hub` immutable lives in the
 * template's code, so every clone shares it at no storage cost, and the clone needs no
 * initialisation transaction. Only the hub mints and burns.
 */
contract Datatoken is ERC20 {
    /// @notice The Cove hub that created this token and is its only minter.
    address public immutable hub;

    /// @notice The caller is not the Cove hub.
    error DatatokenUnauthorized(address caller);

    constructor() ERC20("", "") {
        hub = msg.sender;
    }

    /// @notice The dataset whose credits this token counts (read from the clone's code).
    function datasetId() public view returns (uint256) {
        return abi.decode(Clones.fetchCloneArgs(address(this)), (uint256));
    }

    /// @notice "Cove dataset #<id> credit".
    function name() public view override returns (string memory) {
        return string.concat("Cove dataset #", Strings.toString(datasetId()), " credit");
    }

    /// @notice "COVE<id>".
    function symbol() public view override returns (string memory) {
        return string.concat("COVE", Strings.toString(datasetId()));
    }

    /// @notice Mints `amount` units to `to`. Only the hub, when credits are bought or refunded.
    function mint(address to, uint256 amount) external {
        if (msg.sender != hub) revert DatatokenUnauthorized(msg.sender);
        _mint(to, amount);
    }

    /// @notice Burns `amount` units of `from`. Only the hub, when a compute job spends a credit.
    function burn(address from, uint256 amount) external {
        if (msg.sender != hub) revert DatatokenUnauthorized(msg.sender);
        _burn(from, amount);
    }
}
