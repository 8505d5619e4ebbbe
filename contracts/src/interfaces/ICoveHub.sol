// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Dataset} from "../modules/DatasetRegistry.sol";
import {Policy} from "../modules/AccessPolicies.sol";

/**
 * @title ICoveHub
 * @notice What {ComputeJobs} needs from the Cove hub that deployed it: the dataset record and
 * policy (view calls), and the two credit hooks that only ComputeJobs may call.
 */
interface ICoveHub {
    /// @notice The full record of `datasetId`; reverts `UnknownDataset` for a missing id.
    function datasetOf(uint256 datasetId) external view returns (Dataset memory);

    /// @notice The current policy of `datasetId` and its version.
    function policyOf(uint256 datasetId) external view returns (Policy memory policy, uint32 version);

    /// @notice The dataset's datatoken, policy version and policy, in one call; reverts
    /// `UnknownDataset` for a missing id and `JobsPaused` while new jobs are paused.
    function jobTermsOf(uint256 datasetId)
        external
        view
        returns (address datatoken, uint32 policyVersion, Policy memory policy);

    /// @notice Burns one credit of `datasetId` from `from`. Only ComputeJobs.
    function spendCredit(uint256 datasetId, address from) external;

    /// @notice Mints one credit of `datasetId` back to `to`. Only ComputeJobs.
    function refundCredit(uint256 datasetId, address to) external;
}
