// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ComputeJobs, Job, JobStatus} from "./ComputeJobs.sol";

/**
 * @notice A federated training run over several compute jobs, one per dataset.
 * @dev Three storage slots: `consumer` alone; `aggregator`, `rounds` and `committed` packed
 * together, so that {FederatedRounds.commitRound} reads and bumps one slot; the initial model.
 */
struct Federation {
    /// Who opened the federation: the consumer of every one of its jobs.
    address consumer;
    /// Who commits the rounds (the account of the aggregator that runs the federation's server).
    address aggregator;
    /// Rounds the federation runs; at least 1.
    uint16 rounds;
    /// Rounds committed so far (0 to `rounds`).
    uint16 committed;
    /// Digest of the model every client starts from (round 0).
    bytes32 initialModelDigest;
}

/**
 * @title FederatedRounds
 * @notice Groups ordinary {ComputeJobs} jobs, one per dataset, into a federation, and records
 * its aggregated model round by round.
 *
 * A consumer requests one job per dataset in {ComputeJobs} (each spends a credit of its dataset
 * and is charged to that dataset's privacy ledger there, as any job), then opens a federation
 * of those jobs naming an aggregator and a number of rounds. The aggregator commits each
 * round's aggregated model, in order, until the last round; a runner checks the federation
 * here before its dataset's job joins it. Nothing here moves credits or touches the ledgers:
 * each job's privacy charge, runner and outcome stay in {ComputeJobs}.
 *
 * @dev Deployed by the Cove hub's constructor next to its {ComputeJobs}. It only reads
 * {ComputeJobs.jobOf} (a view), so there is no reentrancy to guard.
 * Storage: per federation, the {Federation} record (three slots) and its job ids as 64-bit
 * lanes, four to a slot (job ids count from 1, so the first zero lane ends the list); per
 * job, its federation id in a 64-bit lane, four jobs to a slot (jobs are numbered in request
 * order, so the jobs of one federation often share a slot); per round, the model digest (one
 * slot) and the updates root (one more slot, written only when nonzero).
 */
contract FederatedRounds {
    /// @notice The ComputeJobs contract whose jobs federations group.
    address public immutable computeJobs;

    /// @notice The fewest jobs a federation groups.
    uint256 public constant MIN_JOBS = 2;
    /// @notice The most jobs a federation groups.
    uint256 public constant MAX_JOBS = 16;

    uint256 private constant LANE_BITS = 64;
    uint256 private constant LANES_PER_WORD = 4;
    uint256 private constant LANE_MASK = type(uint64).max;

    uint256 private _nextFedId = 1;
    mapping(uint256 fedId => Federation) private _federations;
    mapping(uint256 fedId => uint256[4]) private _jobWords;
    mapping(uint256 jobWord => uint256) private _federationWords;
    mapping(uint256 fedId => mapping(uint256 round => bytes32)) private _modelDigests;
    mapping(uint256 fedId => mapping(uint256 round => bytes32)) private _updatesRoots;

    // ------------------------------------------------------------------ events

    /// @notice `consumer` opened federation `fedId` of `jobIds` (one per dataset), run by
    /// `aggregator` for `rounds` rounds from the model of digest `initialModelDigest`.
    event FederationOpened(
        uint256 indexed fedId,
        address indexed consumer,
        address indexed aggregator,
        uint16 rounds,
        uint256[] jobIds,
        bytes32 initialModelDigest
    );
    /// @notice The aggregator of federation `fedId` committed round `round`: the aggregated
    /// model of digest `modelDigest`, from the client updates whose Merkle root is
    /// `updatesRoot` (0 when secure aggregation hides the individual updates).
    event RoundCommitted(uint256 indexed fedId, uint16 indexed round, bytes32 modelDigest, bytes32 updatesRoot);

    // ------------------------------------------------------------------ errors

    /// @notice A federation needs at least MIN_JOBS jobs, not `count`.
    error TooFewJobs(uint256 count);
    /// @notice A federation groups at most `maxJobs` jobs, not `count`.
    error TooManyJobs(uint256 count, uint256 maxJobs);
    /// @notice A federation runs at least one round.
    error ZeroRounds();
    /// @notice A federation needs an aggregator.
    error ZeroAggregator();
    /// @notice A model digest must not be zero.
    error EmptyDigest();
    /// @notice Job `jobId` is `status`: only a Requested or Accepted job can join a federation.
    error JobNotOpen(uint256 jobId, JobStatus status);
    /// @notice Job `jobId` belongs to `consumer`; only its consumer may federate it (same error as ComputeJobs').
    error NotJobConsumer(uint256 jobId, address caller, address consumer);
    /// @notice Two of the jobs train on dataset `datasetId`: a federation has one job per dataset.
    error DuplicateDataset(uint256 datasetId);
    /// @notice Job `jobId` is already in federation `fedId`.
    error AlreadyFederated(uint256 jobId, uint256 fedId);
    /// @notice No federation has this id.
    error UnknownFederation(uint256 fedId);
    /// @notice Only `aggregator` commits the rounds of federation `fedId`.
    error NotAggregator(uint256 fedId, address caller, address aggregator);
    /// @notice Federation `fedId` takes round `expected` next (of `rounds`), not `round`.
    error RoundOutOfRange(uint256 fedId, uint16 round, uint16 expected, uint16 rounds);

    /// @param computeJobs_ The ComputeJobs contract whose jobs federations group.
    constructor(address computeJobs_) {
        computeJobs = computeJobs_;
    }

    // ------------------------------------------------------------------ federations

    /**
     * @notice Opens a federation of the caller's jobs `jobIds`, one per dataset, each still
     * Requested or Accepted and in no other federation, for `aggregator` to run for `rounds`
     * rounds from the model of digest `initialModelDigest`.
     * @dev Reverts JobNotFound (from {ComputeJobs.jobOf}) for an unknown job id.
     * @param jobIds The jobs, MIN_JOBS to MAX_JOBS of them, on pairwise distinct datasets.
     * @param aggregator The account that will commit the rounds; not zero.
     * @param rounds The number of rounds; at least 1.
     * @param initialModelDigest Digest of the model the clients start from; not zero.
     * @return fedId The new federation's id (they count from 1).
     */
    function open(uint256[] calldata jobIds, address aggregator, uint16 rounds, bytes32 initialModelDigest)
        external
        returns (uint256 fedId)
    {
        uint256 count = jobIds.length;
        if (count < MIN_JOBS) revert TooFewJobs(count);
        if (count > MAX_JOBS) revert TooManyJobs(count, MAX_JOBS);
        if (rounds == 0) revert ZeroRounds();
        if (aggregator == address(0)) revert ZeroAggregator();
        if (initialModelDigest == 0) revert EmptyDigest();

        fedId = _nextFedId;
        uint256[4] memory jobWords;
        uint256[] memory datasets = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            uint256 jobId = jobIds[i];
            Job memory job = ComputeJobs(computeJobs).jobOf(jobId); // reverts JobNotFound
            if (job.status != JobStatus.Requested && job.status != JobStatus.Accepted) {
                revert JobNotOpen(jobId, job.status);
            }
            if (job.consumer != msg.sender) revert NotJobConsumer(jobId, msg.sender, job.consumer);
            uint256 datasetId = job.datasetId;
            for (uint256 j; j < i; ++j) if (datasets[j] == datasetId) revert DuplicateDataset(datasetId);
            datasets[i] = datasetId;
            uint256 current = federationOfJob(jobId);
            if (current != 0) revert AlreadyFederated(jobId, current);
            // jobOf found the job, so jobId is below ComputeJobs' counter and fits 64 bits; as
            // does fedId, a counter of transactions.
            _setFederationOfJob(jobId, fedId);
            jobWords[i / LANES_PER_WORD] |= jobId << ((i % LANES_PER_WORD) * LANE_BITS);
        }

        _nextFedId = fedId + 1;
        _federations[fedId] = Federation({
            consumer: msg.sender,
            aggregator: aggregator,
            rounds: rounds,
            committed: 0,
            initialModelDigest: initialModelDigest
        });
        uint256[4] storage stored = _jobWords[fedId];
        for (uint256 w; w * LANES_PER_WORD < count; ++w) stored[w] = jobWords[w];
        emit FederationOpened(fedId, msg.sender, aggregator, rounds, jobIds, initialModelDigest);
    }

    /**
     * @notice Commits round `round` of federation `fedId`: the aggregated model of digest
     * `modelDigest`. Only the federation's aggregator; rounds are committed in order, 1 to
     * `rounds`, each once.
     * @param fedId The federation.
     * @param round The round: one past the last committed, at most the federation's `rounds`.
     * @param modelDigest Digest of the round's aggregated model; not zero.
     * @param updatesRoot Merkle root of the clients' update commitments for the round, or 0
     * when secure aggregation hides them.
     */
    function commitRound(uint256 fedId, uint16 round, bytes32 modelDigest, bytes32 updatesRoot) external {
        Federation storage federation = _federations[fedId];
        address aggregator = federation.aggregator;
        if (aggregator == address(0)) revert UnknownFederation(fedId);
        if (msg.sender != aggregator) revert NotAggregator(fedId, msg.sender, aggregator);
        uint16 rounds = federation.rounds;
        // In 256 bits: a complete federation of type(uint16).max rounds expects one more.
        uint256 expected = uint256(federation.committed) + 1;
        if (round != expected || round > rounds) {
            revert RoundOutOfRange(fedId, round, _clampRound(expected), rounds);
        }
        if (modelDigest == 0) revert EmptyDigest();

        federation.committed = round;
        _modelDigests[fedId][round] = modelDigest;
        if (updatesRoot != 0) _updatesRoots[fedId][round] = updatesRoot;
        emit RoundCommitted(fedId, round, modelDigest, updatesRoot);
    }

    // ------------------------------------------------------------------ views

    /// @notice The record of federation `fedId`; reverts UnknownFederation for an unknown id.
    function federationOf(uint256 fedId) external view returns (Federation memory federation) {
        federation = _federations[fedId];
        if (federation.consumer == address(0)) revert UnknownFederation(fedId);
    }

    /// @notice The jobs of federation `fedId`, in the order it was opened with; reverts
    /// UnknownFederation for an unknown id.
    function jobsOf(uint256 fedId) external view returns (uint256[] memory jobIds) {
        if (_federations[fedId].consumer == address(0)) revert UnknownFederation(fedId);
        uint256[4] memory words = _jobWords[fedId];
        uint256[] memory all = new uint256[](MAX_JOBS);
        uint256 count;
        for (; count < MAX_JOBS; ++count) {
            uint256 jobId = (words[count / LANES_PER_WORD] >> ((count % LANES_PER_WORD) * LANE_BITS)) & LANE_MASK;
            if (jobId == 0) break; // job ids count from 1
            all[count] = jobId;
        }
        jobIds = new uint256[](count);
        for (uint256 i; i < count; ++i) jobIds[i] = all[i];
    }

    /// @notice The federation job `jobId` is in (0 when none).
    function federationOfJob(uint256 jobId) public view returns (uint256) {
        return (_federationWords[jobId / LANES_PER_WORD] >> ((jobId % LANES_PER_WORD) * LANE_BITS)) & LANE_MASK;
    }

    /**
     * @notice The model digest and updates root of round `round` of federation `fedId`:
     * round 0 gives the initial model digest (and 0); a round not committed yet gives (0, 0).
     * Reverts UnknownFederation for an unknown id.
     */
    function roundDigest(uint256 fedId, uint16 round) external view returns (bytes32 modelDigest, bytes32 updatesRoot) {
        Federation storage federation = _federations[fedId];
        if (federation.consumer == address(0)) revert UnknownFederation(fedId);
        if (round == 0) return (federation.initialModelDigest, 0);
        return (_modelDigests[fedId][round], _updatesRoots[fedId][round]);
    }

    /// @notice Number of federations opened so far (ids run from 1 to this number).
    function federationCount() external view returns (uint256) {
        return _nextFedId - 1;
    }

    // ------------------------------------------------------------------ private

    /// @dev Records `fedId` (below 2^64) as the federation of `jobId` (below 2^64).
    function _setFederationOfJob(uint256 jobId, uint256 fedId) private {
        uint256 shift = (jobId % LANES_PER_WORD) * LANE_BITS;
        uint256 key = jobId / LANES_PER_WORD;
        _federationWords[key] = (_federationWords[key] & ~(LANE_MASK << shift)) | (fedId << shift);
    }

    /// @dev `expected` as a uint16 for the error: one past the last round, which a federation
    /// of type(uint16).max rounds reaches once complete, is reported as type(uint16).max.
    function _clampRound(uint256 expected) private pure returns (uint16) {
        // casting to 'uint16' is safe because the value is at most type(uint16).max
        // forge-lint: disable-next-line(unsafe-typecast)
        return expected > type(uint16).max ? type(uint16).max : uint16(expected);
    }
}
