// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title ICoveHubInfo
 * @notice What a client needs to find its way around a Cove hub it knows only by address.
 * The hub answers ERC-165 `supportsInterface` for this interface's id, so a client can tell
 * a Cove hub from any other contract before relying on it.
 */
interface ICoveHubInfo {
    /// @notice The ComputeJobs contract the hub deployed (jobs, escrow, privacy ledger).
    function computeJobs() external view returns (address);

    /// @notice The FederatedRounds contract the hub deployed (federations of jobs, their rounds).
    function federatedRounds() external view returns (address);

    /// @notice The block the hub was deployed in: the first block to read its events from.
    function deploymentBlock() external view returns (uint256);

    /// @notice The payment token new datasets are priced in unless they name another
    /// (address(0) when the deployer named none).
    function defaultPaymentToken() external view returns (address);

    /// @notice The public endpoint URL of `runner` (empty when it set none).
    function endpointOf(address runner) external view returns (string memory);
}
