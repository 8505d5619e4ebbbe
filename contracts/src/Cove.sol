// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DatasetRegistry, DatasetParams, Dataset} from "./modules/DatasetRegistry.sol";
import {AccessPolicies, Policy, PolicyRecord} from "./modules/AccessPolicies.sol";
import {Market} from "./modules/Market.sol";
import {RunnerEndpoints} from "./modules/RunnerEndpoints.sol";
import {ICoveHubInfo} from "./interfaces/ICoveHubInfo.sol";
import {Datatoken} from "./tokens/Datatoken.sol";
import {ComputeJobs} from "./ComputeJobs.sol";
import {FederatedRounds} from "./FederatedRounds.sol";

/**
 * @title Cove
 * @notice The Cove hub: dataset registry (ERC-721), access policies and market in one
 * deployment, so publishing is one transaction and a purchase makes no cross-contract call
 * besides the payment and the mint. Each concern lives in its own module. Compute jobs, their
 * escrow and the privacy ledger live in {ComputeJobs}, which this hub deploys and which alone
 * may spend and refund credits. Federated jobs (one ComputeJobs job per dataset, trained
 * together round by round) are grouped and their rounds recorded in {FederatedRounds}, which
 * this hub deploys too. Runners publish where their endpoints are in {RunnerEndpoints}.
 *
 * A party that knows only the hub's address learns the rest from the hub itself (see
 * {ICoveHubInfo}, answered through ERC-165): its ComputeJobs and FederatedRounds, the block to
 * read events from and the default payment token.
 */
contract Cove is DatasetRegistry, AccessPolicies, Market, RunnerEndpoints, ICoveHubInfo {
    /// @inheritdoc ICoveHubInfo
    address public immutable computeJobs;

    /// @inheritdoc ICoveHubInfo
    address public immutable federatedRounds;

    /// @inheritdoc ICoveHubInfo
    uint256 public immutable deploymentBlock;

    /// @inheritdoc ICoveHubInfo
    address public immutable defaultPaymentToken;

    /// @notice Only the hub's ComputeJobs contract may do this.
    error NotComputeJobs(address caller);

    /// @param paymentToken The default payment token of new datasets (address(0): none).
    constructor(address paymentToken) {
        address jobs = address(new ComputeJobs());
        computeJobs = jobs;
        federatedRounds = address(new FederatedRounds(jobs));
        deploymentBlock = block.number;
        defaultPaymentToken = paymentToken;
    }

    /// @notice ERC-165: the hub is an ERC-721 (its datasets) and a Cove hub ({ICoveHubInfo}).
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(ICoveHubInfo).interfaceId || super.supportsInterface(interfaceId);
    }

    /// @inheritdoc ICoveHubInfo
    function endpointOf(address runner) public view override(RunnerEndpoints, ICoveHubInfo) returns (string memory) {
        return super.endpointOf(runner);
    }

    /**
     * @notice Publishes a dataset in one transaction: mints its NFT to the caller, clones
     * its datatoken, sets its first policy and opens its privacy ledger in {ComputeJobs},
     * charged with the release of its noisy row count.
     * @param params Metadata digest, hiding commitment, noisy rows and their noise, runner and controller.
     * @param policy The access policy (see {Policy}); validated as in {setPolicy}.
     * @param listsDigest Digest of the allowlist / model-family lists document (0 if none).
     * @return datasetId The new dataset's id (also its NFT id).
     * @return datatoken The dataset's credit token.
     */
    function publish(DatasetParams calldata params, Policy calldata policy, bytes32 listsDigest)
        external
        returns (uint256 datasetId, address datatoken)
    {
        (datasetId, datatoken) = _registerDataset(msg.sender, params);
        _setPolicy(datasetId, policy, listsDigest);
        ComputeJobs(computeJobs).openLedger(datasetId, params.countNoise, policy.delta, policy.budget);
    }

    /**
     * @notice What a new compute job on `datasetId` is checked against, in one call: the
     * dataset's datatoken, its current policy and that policy's version.
     * @dev Reverts UnknownDataset for a missing id, and JobsPaused while the policy controller
     * has paused new jobs (see {setJobsPaused}): there are no terms for a new job then.
     * {ComputeJobs.request} reads this rather than {datasetOf} and {policyOf}, which read four
     * more cold slots between them, and lets its revert through.
     */
    function jobTermsOf(uint256 datasetId)
        external
        view
        returns (address datatoken, uint32 policyVersion, Policy memory policy)
    {
        Dataset storage dataset = _requireDataset(datasetId);
        PolicyRecord storage stored = _policies[datasetId];
        if (stored.jobsPaused) revert JobsPaused(datasetId);
        return (dataset.datatoken, dataset.policyVersion, _policyOfRecord(stored));
    }

    /**
     * @notice Burns one credit (1e18 units) of `datasetId` from `from`, for a compute job.
     * @dev Only {computeJobs}, which checked the balance and the request first.
     */
    function spendCredit(uint256 datasetId, address from) external {
        if (msg.sender != computeJobs) revert NotComputeJobs(msg.sender);
        Datatoken(_requireDataset(datasetId).datatoken).burn(from, CREDIT);
    }

    /**
     * @notice Re-mints one credit (1e18 units) of `datasetId` to `to`, for a compute job that
     * failed or was taken back after its deadline.
     * @dev Only {computeJobs}.
     */
    function refundCredit(uint256 datasetId, address to) external {
        if (msg.sender != computeJobs) revert NotComputeJobs(msg.sender);
        Datatoken(_requireDataset(datasetId).datatoken).mint(to, CREDIT);
    }

    function _requirePolicyController(uint256 datasetId) internal view override {
        _requirePolicyControllerOf(datasetId);
    }

    function _policyVersion(uint256 datasetId) internal view override returns (uint32) {
        return _requireDataset(datasetId).policyVersion;
    }

    function _publicRows(uint256 datasetId) internal view override returns (uint64) {
        return _requireDataset(datasetId).rows;
    }

    function _bumpPolicyVersion(uint256 datasetId) internal override returns (uint32 version) {
        Dataset storage dataset = _datasets[datasetId];
        version = dataset.policyVersion + 1;
        dataset.policyVersion = version;
    }

    function _saleParties(uint256 datasetId) internal view override returns (address owner, address datatoken) {
        datatoken = _requireDataset(datasetId).datatoken;
        owner = _ownerOf(datasetId);
    }

    function _policyStorage(uint256 datasetId) internal view override returns (PolicyRecord storage) {
        return _policies[datasetId];
    }

    function _mintCredits(address datatoken, address to, uint256 amount) internal override {
        Datatoken(datatoken).mint(to, amount);
    }
}
