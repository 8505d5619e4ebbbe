// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @notice The access policy of one dataset. Packed into four storage slots.
 * @dev Privacy figures are fixed point: ε in millionths (1_000_000 = ε 1.0), δ in 1e-18 units.
 */
struct Policy {
    /// Payment token of the price; ignored when the dataset is free (price == 0).
    address paymentToken;
    /// Price of one credit, in the payment token's smallest units; 0 makes the dataset free.
    uint96 price;
    /// Unix time after which no credits can be bought; 0 = never expires.
    uint40 expiry;
    /// Total privacy budget ε of the dataset over all jobs (millionths).
    uint32 budget;
    /// Largest ε one job may spend (millionths); at most `budget`.
    uint32 perJobCap;
    /// δ of every (ε, δ) guarantee on this dataset (1e-18 units); 0 < δ < 1.
    uint64 delta;
    /// Most training epochs one job may ask for.
    uint16 maxEpochs;
    /// Credits one address may take from a free dataset.
    uint16 freeCap;
    /// True when credits buy compute only (no download of the data).
    bool computeOnly;
    /// Merkle root of the buyers allowed (OpenZeppelin double-hashed leaves); 0 = open to all.
    bytes32 allowlistRoot;
    /// Merkle root of the allowed model-family hashes; 0 = any family the runner supports.
    bytes32 modelFamiliesRoot;
}

/**
 * @notice How a dataset's policy is stored: the fields of {Policy} in the same order, plus the
 * flag that pauses new compute jobs, which fits the spare bytes of the second slot. Every
 * compute-job request reads the whole policy, so it reads the flag at no extra cold slot.
 * @dev The flag is not part of the policy: {AccessPolicies.setPolicy} keeps it and does not
 * change it, and it has no version.
 */
struct PolicyRecord {
    address paymentToken;
    uint96 price;
    uint40 expiry;
    uint32 budget;
    uint32 perJobCap;
    uint64 delta;
    uint16 maxEpochs;
    uint16 freeCap;
    bool computeOnly;
    /// True while the policy controller has paused new compute jobs (see {AccessPolicies.setJobsPaused}).
    bool jobsPaused;
    bytes32 allowlistRoot;
    bytes32 modelFamiliesRoot;
}

/**
 * @title AccessPolicies
 * @notice Versioned access policies, one per dataset, and a switch that pauses new compute
 * jobs. Only a dataset's policy controller (its owner, or a timelock for a governed dataset)
 * changes its policy or pauses its jobs.
 */
abstract contract AccessPolicies {
    uint256 internal constant DELTA_ONE = 1e18;

    mapping(uint256 datasetId => PolicyRecord) internal _policies;

    /// @notice A dataset's policy was set; `version` counts from 1. `listsDigest` is the
    /// sha256 digest of the raw CIDv1 of the JSON document listing the allowlist and the
    /// model families behind the two Merkle roots (0 when both lists are empty).
    event PolicyUpdated(uint256 indexed datasetId, uint32 indexed version, Policy policy, bytes32 listsDigest);
    /// @notice New compute jobs on `datasetId` were paused (`paused` true) or allowed again.
    event JobsPausedSet(uint256 indexed datasetId, bool paused);

    /// @notice The privacy budget must be positive.
    error InvalidPrivacyBudget();
    /// @notice The per-job cap must be positive and at most the budget.
    error InvalidPerJobCap(uint32 perJobCap, uint32 budget);
    /// @notice δ must lie strictly between 0 and 1.
    error InvalidDelta(uint64 delta);
    /// @notice δ must be below 1/n for the dataset's public row count n.
    error DeltaNotBelowOneOverRows(uint64 delta, uint64 rows);
    /// @notice At least one epoch must be allowed.
    error InvalidMaxEpochs();
    /// @notice A priced dataset needs a payment token.
    error MissingPaymentToken();
    /// @notice A free dataset needs a positive per-address credit cap.
    error MissingFreeCap();
    /// @notice The expiry lies in the past.
    error ExpiryInPast(uint40 expiry, uint256 nowTimestamp);
    /// @notice New compute jobs on `datasetId` are paused by its policy controller.
    error JobsPaused(uint256 datasetId);

    /**
     * @notice Replaces the policy of `datasetId` and bumps its version.
     * @dev Only the dataset's policy controller.
     */
    function setPolicy(uint256 datasetId, Policy calldata policy, bytes32 listsDigest) external {
        _requirePolicyController(datasetId);
        _setPolicy(datasetId, policy, listsDigest);
    }

    /// @notice The current policy of `datasetId` and its version.
    function policyOf(uint256 datasetId) external view returns (Policy memory policy, uint32 version) {
        version = _policyVersion(datasetId);
        policy = _policyOfRecord(_policies[datasetId]);
    }

    /**
     * @notice Pauses (`paused` true) or resumes new compute jobs on `datasetId`: while paused,
     * `ComputeJobs.request` reverts JobsPaused. Jobs already requested run on (accept,
     * complete, fail and refund are unaffected), and credits can still be bought. Setting the
     * current value again is allowed and emits the event again.
     * @dev Only the dataset's policy controller (for a governed dataset: its timelock, so a
     * proposal). Independent of the policy: no version bump, and {setPolicy} keeps it.
     */
    function setJobsPaused(uint256 datasetId, bool paused) external {
        _requirePolicyController(datasetId);
        _policies[datasetId].jobsPaused = paused;
        emit JobsPausedSet(datasetId, paused);
    }

    /// @notice Whether new compute jobs on `datasetId` are paused (see {setJobsPaused}).
    function jobsPaused(uint256 datasetId) external view returns (bool) {
        _policyVersion(datasetId); // reverts UnknownDataset for a missing id
        return _policies[datasetId].jobsPaused;
    }

    /**
     * @notice Reverts with the policy setter's error when `policy` is invalid for a dataset of
     * `rows` public rows. Lets callers (the CLI, a governance proposal) refuse a bad policy
     * before it is sent.
     * @param policy The policy.
     * @param rows The dataset's public row count: δ must be below 1/rows (a δ of 1/n or more
     * lets a mechanism publish a row outright with probability δ per row).
     */
    function checkPolicy(Policy calldata policy, uint64 rows) public view {
        if (policy.budget == 0) revert InvalidPrivacyBudget();
        if (policy.perJobCap == 0 || policy.perJobCap > policy.budget) {
            revert InvalidPerJobCap(policy.perJobCap, policy.budget);
        }
        if (policy.delta == 0 || policy.delta >= DELTA_ONE) revert InvalidDelta(policy.delta);
        if (uint256(policy.delta) * rows >= DELTA_ONE) revert DeltaNotBelowOneOverRows(policy.delta, rows);
        if (policy.maxEpochs == 0) revert InvalidMaxEpochs();
        if (policy.price == 0) {
            if (policy.freeCap == 0) revert MissingFreeCap();
        } else if (policy.paymentToken == address(0)) {
            revert MissingPaymentToken();
        }
        if (policy.expiry != 0 && policy.expiry <= block.timestamp) {
            revert ExpiryInPast(policy.expiry, block.timestamp);
        }
    }

    function _setPolicy(uint256 datasetId, Policy calldata policy, bytes32 listsDigest) internal {
        checkPolicy(policy, _publicRows(datasetId));
        // Field by field, so that the record's jobsPaused flag is kept.
        PolicyRecord storage stored = _policies[datasetId];
        stored.paymentToken = policy.paymentToken;
        stored.price = policy.price;
        stored.expiry = policy.expiry;
        stored.budget = policy.budget;
        stored.perJobCap = policy.perJobCap;
        stored.delta = policy.delta;
        stored.maxEpochs = policy.maxEpochs;
        stored.freeCap = policy.freeCap;
        stored.computeOnly = policy.computeOnly;
        stored.allowlistRoot = policy.allowlistRoot;
        stored.modelFamiliesRoot = policy.modelFamiliesRoot;
        emit PolicyUpdated(datasetId, _bumpPolicyVersion(datasetId), policy, listsDigest);
    }

    /// @dev The {Policy} part of a stored record (everything but the jobs-paused flag).
    function _policyOfRecord(PolicyRecord storage stored) internal view returns (Policy memory) {
        return Policy({
            paymentToken: stored.paymentToken,
            price: stored.price,
            expiry: stored.expiry,
            budget: stored.budget,
            perJobCap: stored.perJobCap,
            delta: stored.delta,
            maxEpochs: stored.maxEpochs,
            freeCap: stored.freeCap,
            computeOnly: stored.computeOnly,
            allowlistRoot: stored.allowlistRoot,
            modelFamiliesRoot: stored.modelFamiliesRoot
        });
    }

    /// @dev Reverts unless the caller controls the policy of `datasetId`.
    function _requirePolicyController(uint256 datasetId) internal view virtual;

    function _policyVersion(uint256 datasetId) internal view virtual returns (uint32);

    /// @dev The public (noisy) row count of `datasetId`.
    function _publicRows(uint256 datasetId) internal view virtual returns (uint64);

    /// @dev Increments and returns the policy version of `datasetId`.
    function _bumpPolicyVersion(uint256 datasetId) internal virtual returns (uint32);
}
