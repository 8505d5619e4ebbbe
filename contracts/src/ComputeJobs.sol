// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {FixedPointMathLib} from "solady/src/utils/FixedPointMathLib.sol";
import {Dataset} from "./modules/DatasetRegistry.sol";
import {Policy} from "./modules/AccessPolicies.sol";
import {ICoveHub} from "./interfaces/ICoveHub.sol";

// Number of Rényi orders the privacy ledger tracks:
// α = 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160, 192, 256, 512, 1024.
uint256 constant RDP_ORDERS = 24;

/**
 * @notice The DP-SGD parameters of a job, as the runner will train with them.
 * @dev Fixed point: noise multiplier and clipping norm in millionths, sampling rate in
 * billionths (1e9 = every row in every step).
 */
struct DpParams {
    /// Noise multiplier σ (1e6 = 1.0); positive.
    uint32 noiseMultiplier;
    /// Poisson sampling rate q (1e9 scale), 0 < q <= 1e9.
    uint32 sampleRate;
    /// Optimizer steps; positive.
    uint32 steps;
    /// Per-sample gradient clipping norm (1e6 = 1.0); positive.
    uint32 clipNorm;
    /// Epochs; between 1 and the policy's maxEpochs.
    uint16 epochs;
}

/// @notice What a consumer sends to {ComputeJobs.request}.
struct JobRequest {
    /// The dataset to train on.
    uint256 datasetId;
    /// Canonical hash of the model spec (keccak256 of its canonical JSON).
    bytes32 specHash;
    /// The spec itself, zlib-compressed canonical JSON: it reaches the runner in the
    /// JobRequested event, so the chain alone carries it and it stays on-chain provenance.
    bytes spec;
    /// DP-SGD parameters.
    DpParams dp;
    /// The job's RDP curve at the ledger's 24 orders: ceil(RDP(α) × 1e9), each positive. It
    /// follows from `dp` (the subsampled Gaussian's RDP), which the runner recomputes.
    uint64[24] rdpCurve;
    /// Hash of the model family (checked against the policy's model-family root).
    bytes32 modelFamily;
    /// Merkle proof of `modelFamily` (empty when the policy allows any family).
    bytes32[] familyProof;
    /// Merkle proof of the consumer on the allowlist (empty for an open dataset).
    bytes32[] allowProof;
    /// Unix time after which the consumer may take the job back if it is not finished.
    uint64 deadline;
    /// The consumer's secp256k1 public key (SEC1: 33 bytes compressed or 65 uncompressed),
    /// which the weights are encrypted to.
    bytes encryptionKey;
}

/// @notice Where a job stands. Completed, Failed and Refunded are final.
enum JobStatus {
    None,
    Requested,
    Accepted,
    Completed,
    Failed,
    Refunded
}

/**
 * @notice The on-chain record of one job: three storage slots while it runs, three more once
 * it completes. The RDP curve itself is kept only as a hash, which JobRequested emits: the
 * curve is a function of the job's DP parameters (emitted too) that anyone can recompute and
 * check against the hash; {ComputeJobs.fail} and {ComputeJobs.refund} take it back as an
 * argument and check it.
 */
struct Job {
    /// Who asked for the job (and paid one credit).
    address consumer;
    /// The dataset trained on.
    uint64 datasetId;
    /// The dataset's policy version when the job was requested.
    uint32 policyVersion;
    /// keccak256(abi.encode(rdpCurve)) of the job's uint64[24] curve.
    bytes32 curveHash;
    /// Where the job stands.
    JobStatus status;
    /// Unix time after which the consumer may take an unfinished job back.
    uint64 deadline;
    /// The runner that accepted the job (0 until accepted).
    address runner;
    /// sha256 digest of the encrypted weights' raw-codec CIDv1.
    bytes32 weightsDigest;
    /// Hash of the plaintext weights file.
    bytes32 weightsHash;
    /// Hash of the signed provenance record.
    bytes32 provenanceHash;
}

/**
 * @title ComputeJobs
 * @notice Escrow, privacy ledger and provenance of Cove's compute-to-data jobs.
 *
 * A consumer requests a job by spending one credit of the dataset; the job's Rényi-DP curve
 * is added to the dataset's ledger in the same call, after checking that the composed
 * (ε, δ) stays within the policy's budget, so the budget is enforced before any training.
 * The dataset's runner accepts the job, trains, and completes it with the hashes of the
 * weights and of the provenance record. A job that the runner fails, or that the consumer
 * takes back after its deadline, released nothing: its credit is re-minted to the consumer
 * and its curve leaves the ledger, unless the runner says it had read private rows: then the
 * failure itself depends on them, and the charge stays.
 *
 * Privacy ledger: per dataset, the sum of the RDP curves of its charged releases at the 24
 * orders α = (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160,
 * 192, 256, 512, 1024), in nano-units (1e9 = RDP 1.0), packed six 42-bit lanes to a slot.
 * The first charge is the dataset's own publication (its DP row count, see {openLedger}).
 * Each lane holds its sum plus one, so the four slots are never zero once the hub opened
 * them at publish: a job's ledger update is then a nonzero-to-nonzero write (5k gas a slot)
 * rather than a fresh one (22k). A lane saturates instead of overflowing: a sum (or an
 * entry) of SATURATED or more marks that order as unusable (infinite RDP) for good, which
 * only ever makes ε larger; the high orders saturate for large curves and matter for small ones.
 * ε at δ is the conversion Opacus uses (Balle et al. 2020, Theorem 21):
 *   ε = min_i max(0, RDP_i + ln((α_i − 1)/α_i) − (ln δ + ln α_i)/(α_i − 1)),
 * computed in wad and reported in millionths rounded up. Every rounding is toward a larger ε.
 *
 * A job taken back after its deadline (even once accepted) counts as having released
 * nothing, so a runner must make the weights available only after its `complete` is mined:
 * `complete` reverts once the job is refunded.
 *
 * @dev Deployed by the Cove hub's constructor, which is its `hub`. The hub calls back only
 * {openLedger}; this contract calls the hub's views and its `spendCredit`/`refundCredit`.
 * The hub and the datatokens are the only contracts it calls, so there is no reentrancy to guard.
 */
contract ComputeJobs {
    /// @notice The Cove hub: the dataset registry, policies and credits.
    address public immutable hub;

    /// @notice One credit is one whole datatoken.
    uint256 public constant CREDIT = 1e18;

    /// @notice The longest spec a request may carry, in bytes (compressed).
    uint256 public constant MAX_SPEC_BYTES = 16_384;

    uint256 private constant SAMPLE_RATE_ONE = 1e9;
    uint256 private constant DELTA_ONE = 1e18;
    uint256 private constant WAD = 1e18;
    uint256 private constant NANO_TO_WAD = 1e9;
    uint256 private constant WAD_PER_MICRO = 1e12;
    uint256 private constant UINT64_MASK = 0xffffffffffffffff;
    uint256 private constant LANE_BITS = 42;
    uint256 private constant LANES_PER_WORD = 6;
    uint256 private constant LANE_MASK = (1 << 42) - 1;
    /// @notice A curve entry this large (or a ledger sum reaching it) stands for infinite RDP
    /// at that order; `curveOf` reports such orders as type(uint64).max.
    uint256 public constant SATURATED = (1 << 42) - 2;
    /// @dev Six lanes of value 1 (sum 0): an opened, empty ledger slot.
    uint256 private constant EMPTY_LEDGER_WORD = 1 | (1 << 42) | (1 << 84) | (1 << 126) | (1 << 168) | (1 << 210);

    uint256 private _nextJobId = 1;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 datasetId => uint256[4]) private _ledger;

    // ------------------------------------------------------------------ events

    /// @notice The privacy ledger of `datasetId` was opened when the dataset was published,
    /// charged with its row count's release: a Gaussian mechanism of noise `countNoise`
    /// (millionths), ε `epsilon` (millionths) at the policy's δ.
    event LedgerOpened(uint256 indexed datasetId, uint32 countNoise, uint256 epsilon);
    /// @notice `consumer` spent a credit of `datasetId` on job `jobId`; its curve (hashed as
    /// `curveHash`: keccak256(abi.encode(rdpCurve)), a function of `dp`) was added to the ledger.
    event JobRequested(
        uint256 indexed jobId,
        uint256 indexed datasetId,
        address indexed consumer,
        bytes32 specHash,
        bytes spec,
        DpParams dp,
        bytes32 curveHash,
        bytes32 modelFamily,
        uint64 deadline,
        bytes encryptionKey
    );
    /// @notice `runner` claimed job `jobId`.
    event JobAccepted(uint256 indexed jobId, address indexed runner);
    /// @notice Job `jobId` finished: the weights and provenance record these hashes name were released.
    event JobCompleted(
        uint256 indexed jobId, bytes32 weightsDigest, bytes32 weightsHash, bytes32 provenanceHash, bytes32 provenanceDigest
    );
    /// @notice The runner failed job `jobId`; its credit was refunded. Its curve left the ledger
    /// unless `chargeKept`: the runner had read private rows, so the failure itself is a release.
    event JobFailed(uint256 indexed jobId, string reason, bool chargeKept);
    /// @notice `consumer` took job `jobId` back after its deadline; its credit was refunded and
    /// its curve left the ledger.
    event JobRefunded(uint256 indexed jobId, address indexed consumer);

    // ------------------------------------------------------------------ errors

    /// @notice Only the Cove hub may do this.
    error NotHub(address caller);
    /// @notice The ledger of `datasetId` is already open.
    error LedgerAlreadyOpen(uint256 datasetId);
    /// @notice No dataset has this id (same error as the hub's).
    error UnknownDataset(uint256 datasetId);
    /// @notice The policy controller of `datasetId` paused new jobs (raised by the hub's
    /// `jobTermsOf`; same error as the hub's).
    error JobsPaused(uint256 datasetId);
    /// @notice δ must lie strictly between 0 and 1 (1e-18 units; same error as the hub's).
    error InvalidDelta(uint64 delta);
    /// @notice The dataset's policy expired at `expiry` (same error as the hub's).
    error PolicyExpired(uint256 datasetId, uint40 expiry);
    /// @notice The consumer is not on the dataset's allowlist (same error as the hub's).
    error NotAllowlisted(uint256 datasetId, address buyer);
    /// @notice The policy of `datasetId` does not allow `modelFamily` (or the proof is wrong).
    error ModelFamilyNotAllowed(uint256 datasetId, bytes32 modelFamily);
    /// @notice Epochs must lie between 1 and the policy's `maxEpochs`.
    error InvalidEpochs(uint16 epochs, uint16 maxEpochs);
    /// @notice The noise multiplier must be positive.
    error ZeroNoiseMultiplier();
    /// @notice The sampling rate must lie in (0, 1e9].
    error InvalidSampleRate(uint32 sampleRate);
    /// @notice At least one step is needed.
    error ZeroSteps();
    /// @notice The clipping norm must be positive.
    error ZeroClipNorm();
    /// @notice The RDP curve is zero at order index `order` (only no noise, or a false curve, gives 0).
    error ZeroRdpEntry(uint256 order);
    /// @notice The job alone would spend `epsilon` (millionths), above the policy's per-job cap.
    error JobEpsilonAboveCap(uint256 epsilon, uint32 perJobCap);
    /// @notice With this job the dataset's composed ε would be `epsilon` (millionths), above its budget.
    error BudgetExceeded(uint256 datasetId, uint256 epsilon, uint32 budget);
    /// @notice A dataset's row count must be released with positive noise.
    error ZeroCountNoise();
    /// @notice The deadline must lie in the future.
    error DeadlineInPast(uint64 deadline, uint256 nowTimestamp);
    /// @notice The encryption key is not a SEC1 secp256k1 public key (33 bytes 0x02/0x03, 65 bytes 0x04).
    error InvalidEncryptionKey(uint256 length, bytes1 prefix);
    /// @notice `consumer` holds no credit of `datasetId`.
    error NoCredit(uint256 datasetId, address consumer);
    /// @notice No job has this id.
    error JobNotFound(uint256 jobId);
    /// @notice Job `jobId` was already accepted by `runner`.
    error JobAlreadyAccepted(uint256 jobId, address runner);
    /// @notice Job `jobId` was not accepted yet.
    error JobNotAccepted(uint256 jobId);
    /// @notice Job `jobId` is already over (completed, failed or refunded).
    error JobClosed(uint256 jobId, JobStatus status);
    /// @notice Only `runner` may do this to job `jobId`.
    error NotJobRunner(uint256 jobId, address caller, address runner);
    /// @notice Only `consumer` may take job `jobId` back.
    error NotJobConsumer(uint256 jobId, address caller, address consumer);
    /// @notice Job `jobId`'s deadline passed; it can only be failed or refunded.
    error DeadlinePassed(uint256 jobId, uint64 deadline);
    /// @notice Job `jobId` can be taken back only after its deadline.
    error DeadlineNotPassed(uint256 jobId, uint64 deadline);
    /// @notice The curve given is not the one job `jobId` was requested with.
    error CurveMismatch(uint256 jobId);
    /// @notice A completed job needs all three result hashes.
    error EmptyResultHash();
    /// @notice The spec must be 1 to MAX_SPEC_BYTES bytes long, not `length`.
    error InvalidSpecLength(uint256 length, uint256 maxLength);

    constructor() {
        hub = msg.sender;
    }

    // ------------------------------------------------------------------ hub hook

    /**
     * @notice Opens the privacy ledger of a newly published dataset, charged with the release
     * of its row count: the published count is the true one plus Gaussian (discrete Gaussian)
     * noise of standard deviation `countNoise`, a mechanism of sensitivity 1 under add/remove
     * of one row, whose RDP is α/(2σ²) (see {countReleaseCurve}). Only the hub, from `publish`.
     * @param datasetId The dataset just registered.
     * @param countNoise σ of the count's noise, in millionths; positive.
     * @param delta The policy's δ (1e-18 units).
     * @param budget The policy's budget ε (millionths): the publication alone must fit it.
     */
    function openLedger(uint256 datasetId, uint32 countNoise, uint64 delta, uint32 budget) external {
        if (msg.sender != hub) revert NotHub(msg.sender);
        uint256[4] storage ledger = _ledger[datasetId];
        if (ledger[0] != 0) revert LedgerAlreadyOpen(datasetId);
        (uint256[4] memory words, uint256 epsilonWad) = _countReleaseLedger(countNoise, delta);
        uint256 spent = _toMicro(epsilonWad);
        if (spent > budget) revert BudgetExceeded(datasetId, spent, budget);
        _ledger[datasetId] = words;
        emit LedgerOpened(datasetId, countNoise, spent);
    }

    /**
     * @notice The RDP curve of releasing a count with Gaussian noise of standard deviation
     * `countNoise` (millionths): α/(2σ²) at each order, in nano-units rounded up; orders whose
     * value reaches SATURATED are type(uint64).max (infinite).
     */
    function countReleaseCurve(uint32 countNoise) external pure returns (uint64[RDP_ORDERS] memory curve) {
        (uint256[4] memory words,) = _countReleaseLedger(countNoise, uint64(DELTA_ONE - 1)); // any δ: ε unused
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 lane = _lane(words, i);
            curve[i] = lane == LANE_MASK ? type(uint64).max : uint64(lane - 1);
        }
    }

    // ------------------------------------------------------------------ jobs

    /**
     * @notice Requests a training job: checks the request against the dataset's current
     * policy and privacy budget, spends one of the caller's credits, adds the job's RDP curve
     * to the dataset's ledger and records the job. Reverts JobsPaused while the dataset's
     * policy controller has paused new jobs.
     * @param r The request (see {JobRequest}).
     * @return jobId The new job's id (from 1).
     */
    function request(JobRequest calldata r) external returns (uint256 jobId) {
        (uint256[4] memory ledger, uint32 version) = _checkRequest(r);

        uint256 datasetId = r.datasetId;
        _ledger[datasetId] = ledger;
        jobId = _nextJobId++;
        Job storage job = _jobs[jobId];
        job.consumer = msg.sender;
        // casting to 'uint64' is safe because dataset ids count up from 1 and this one exists
        // forge-lint: disable-next-line(unsafe-typecast)
        job.datasetId = uint64(datasetId);
        job.policyVersion = version;
        bytes32 curveHash = _curveHash(r.rdpCurve);
        job.curveHash = curveHash;
        job.status = JobStatus.Requested;
        job.deadline = r.deadline;
        _emitRequested(jobId, r, curveHash);
        ICoveHub(hub).spendCredit(datasetId, msg.sender);
    }

    /**
     * @notice Claims job `jobId` for training. Only the dataset's registered runner (read now),
     * only while the job is Requested and before its deadline; exactly once.
     * @param jobId The job to claim.
     */
    function accept(uint256 jobId) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        if (status != JobStatus.Requested) {
            if (status == JobStatus.Accepted) revert JobAlreadyAccepted(jobId, job.runner);
            _revertNotOpen(jobId, status);
        }
        uint64 deadline = job.deadline;
        if (block.timestamp > deadline) revert DeadlinePassed(jobId, deadline);
        address runner = ICoveHub(hub).datasetOf(job.datasetId).runner;
        if (msg.sender != runner) revert NotJobRunner(jobId, msg.sender, runner);

        job.status = JobStatus.Accepted;
        job.runner = msg.sender;
        emit JobAccepted(jobId, msg.sender);
    }

    /**
     * @notice Completes job `jobId` with the hashes of what it released. Only the runner that
     * accepted it, only while Accepted. The credit was spent at request; nothing else moves.
     * @param jobId The job.
     * @param weightsDigest sha256 digest of the root block of the encrypted weights' CIDv1
     * (raw codec for a single-chunk file, dag-pb above 256 KiB).
     * @param weightsHash Hash of the plaintext weights file.
     * @param provenanceHash Hash of the runner-signed provenance record.
     * @param provenanceDigest sha256 digest of the signed provenance document's raw-codec
     * CIDv1: where to fetch it. Emitted, not stored (the hash above is what binds it).
     */
    function complete(
        uint256 jobId,
        bytes32 weightsDigest,
        bytes32 weightsHash,
        bytes32 provenanceHash,
        bytes32 provenanceDigest
    ) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        if (status != JobStatus.Accepted) {
            if (status == JobStatus.Requested) revert JobNotAccepted(jobId);
            _revertNotOpen(jobId, status);
        }
        address runner = job.runner;
        if (msg.sender != runner) revert NotJobRunner(jobId, msg.sender, runner);
        if (weightsDigest == 0 || weightsHash == 0 || provenanceHash == 0 || provenanceDigest == 0) {
            revert EmptyResultHash();
        }

        job.status = JobStatus.Completed;
        job.weightsDigest = weightsDigest;
        job.weightsHash = weightsHash;
        job.provenanceHash = provenanceHash;
        emit JobCompleted(jobId, weightsDigest, weightsHash, provenanceHash, provenanceDigest);
    }

    /**
     * @notice Fails job `jobId`: the consumer's credit is re-minted. Its curve leaves the ledger
     * only if no private row was read: once the runner read private rows, whether and how the
     * job failed may depend on them, so the failure is itself a release and stays charged.
     * Only the runner that accepted it, or the dataset's runner while it is still Requested.
     * @param jobId The job.
     * @param reason Why (public; must not quote private data).
     * @param curve The job's RDP curve (its hash is in JobRequested; it follows from the DP parameters).
     * @param rowsRead Whether the runner had read private rows (then the charge stays).
     */
    function fail(uint256 jobId, string calldata reason, uint64[24] calldata curve, bool rowsRead) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        address runner;
        if (status == JobStatus.Accepted) runner = job.runner;
        else if (status == JobStatus.Requested) runner = ICoveHub(hub).datasetOf(job.datasetId).runner;
        else _revertNotOpen(jobId, status);
        if (msg.sender != runner) revert NotJobRunner(jobId, msg.sender, runner);

        uint256 datasetId = _close(jobId, job, JobStatus.Failed, curve, !rowsRead);
        emit JobFailed(jobId, reason, rowsRead);
        ICoveHub(hub).refundCredit(datasetId, job.consumer);
    }

    /**
     * @notice Takes job `jobId` back after its deadline: the credit is re-minted to the
     * consumer. Only the consumer, only after the deadline, only while the job is Requested
     * or Accepted. A Requested job's curve leaves the ledger; an Accepted job's stays charged,
     * because only its runner (through {fail}) can say that it released nothing.
     * @param jobId The job.
     * @param curve The job's RDP curve (its hash is in JobRequested; it follows from the DP parameters).
     */
    function refund(uint256 jobId, uint64[24] calldata curve) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        if (status != JobStatus.Requested && status != JobStatus.Accepted) _revertNotOpen(jobId, status);
        address consumer = job.consumer;
        if (msg.sender != consumer) revert NotJobConsumer(jobId, msg.sender, consumer);
        uint64 deadline = job.deadline;
        if (block.timestamp <= deadline) revert DeadlineNotPassed(jobId, deadline);

        uint256 datasetId = _close(jobId, job, JobStatus.Refunded, curve, status == JobStatus.Requested);
        emit JobRefunded(jobId, consumer);
        ICoveHub(hub).refundCredit(datasetId, consumer);
    }

    // ------------------------------------------------------------------ views

    /// @notice The record of job `jobId`; reverts JobNotFound for an unknown id.
    function jobOf(uint256 jobId) external view returns (Job memory job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.None) revert JobNotFound(jobId);
    }

    /// @notice Number of jobs requested so far (ids run from 1 to this number).
    function jobCount() external view returns (uint256) {
        return _nextJobId - 1;
    }

    /// @notice The ledger's Rényi orders α, in wad (1.5e18, 2e18, ..., 1024e18).
    function rdpOrders() external pure returns (uint256[RDP_ORDERS] memory alphas) {
        uint256[RDP_ORDERS] memory doubled = _doubledOrders();
        for (uint256 i; i < RDP_ORDERS; ++i) alphas[i] = doubled[i] * (WAD / 2);
    }

    /**
     * @notice The composed RDP curve of `datasetId`: its publication's charge plus the curves
     * of its charged jobs, in nano-units; a saturated order is type(uint64).max (infinite).
     */
    function curveOf(uint256 datasetId) public view returns (uint64[RDP_ORDERS] memory curve) {
        uint256[4] memory words = _ledger[datasetId];
        if (words[0] == 0) revert UnknownDataset(datasetId);
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 lane = _lane(words, i);
            // Every lane holds its sum plus one.
            curve[i] = lane == LANE_MASK ? type(uint64).max : uint64(lane - 1);
        }
    }

    /**
     * @notice The ε (in millionths, rounded up) the dataset's jobs have composed to, at the
     * policy's current δ: the figure checked against the budget.
     */
    function composedEpsilon(uint256 datasetId) external view returns (uint256 epsilonMicro) {
        (Policy memory policy,) = ICoveHub(hub).policyOf(datasetId);
        return epsilonOf(curveOf(datasetId), policy.delta);
    }

    /**
     * @notice The ε (in millionths, rounded up) of one RDP curve at `delta`, by the Opacus
     * conversion (see the contract's description).
     * An all-zero curve (no job) is ε 0; any other curve gets the conversion, floored at 0;
     * entries of SATURATED or more are infinite, and a curve with no finite entry has
     * ε type(uint256).max.
     * @param curve RDP at the 24 orders, in nano-units.
     * @param delta δ in 1e-18 units, 0 < δ < 1e18.
     */
    function epsilonOf(uint64[RDP_ORDERS] memory curve, uint64 delta) public pure returns (uint256 epsilonMicro) {
        int256[RDP_ORDERS] memory bias = _orderBiases(delta);
        // No privacy loss at all (an empty ledger) is ε 0, not the conversion's slack.
        if (_isZero(curve)) return 0;
        return _toMicro(_minEpsilonWad(curve, bias));
    }

    // ------------------------------------------------------------------ request checks

    /**
     * @dev Every check of {request}, in the order their errors take precedence. Returns the
     * ledger with the job's curve added and the policy version the job runs under.
     */
    function _checkRequest(JobRequest calldata r) private view returns (uint256[4] memory ledger, uint32 version) {
        uint256 datasetId = r.datasetId;
        address datatoken;
        Policy memory policy;
        (datatoken, version, policy) = ICoveHub(hub).jobTermsOf(datasetId); // UnknownDataset, JobsPaused
        _checkAccess(r, policy);
        _checkParams(r.dp, policy.maxEpochs);
        ledger = _chargedLedger(datasetId, r.rdpCurve, policy);
        if (r.spec.length == 0 || r.spec.length > MAX_SPEC_BYTES) revert InvalidSpecLength(r.spec.length, MAX_SPEC_BYTES);
        if (r.deadline <= block.timestamp) revert DeadlineInPast(r.deadline, block.timestamp);
        _checkEncryptionKey(r.encryptionKey);
        if (IERC20(datatoken).balanceOf(msg.sender) < CREDIT) revert NoCredit(datasetId, msg.sender);
    }

    /// @dev Emits JobRequested for `r` (a function of its own to keep the stack shallow).
    function _emitRequested(uint256 jobId, JobRequest calldata r, bytes32 curveHash) private {
        emit JobRequested(
            jobId,
            r.datasetId,
            msg.sender,
            r.specHash,
            r.spec,
            r.dp,
            curveHash,
            r.modelFamily,
            r.deadline,
            r.encryptionKey
        );
    }

    /// @dev The policy is live, admits the caller and allows the model family.
    function _checkAccess(JobRequest calldata r, Policy memory policy) private view {
        if (policy.expiry != 0 && block.timestamp > policy.expiry) revert PolicyExpired(r.datasetId, policy.expiry);
        if (
            policy.allowlistRoot != 0
                && !MerkleProof.verifyCalldata(r.allowProof, policy.allowlistRoot, _leaf(bytes32(uint256(uint160(msg.sender)))))
        ) revert NotAllowlisted(r.datasetId, msg.sender);
        if (
            policy.modelFamiliesRoot != 0
                && !MerkleProof.verifyCalldata(r.familyProof, policy.modelFamiliesRoot, _leaf(r.modelFamily))
        ) revert ModelFamilyNotAllowed(r.datasetId, r.modelFamily);
    }

    /// @dev The DP parameters are in range.
    function _checkParams(DpParams calldata dp, uint16 maxEpochs) private pure {
        if (dp.epochs == 0 || dp.epochs > maxEpochs) revert InvalidEpochs(dp.epochs, maxEpochs);
        if (dp.noiseMultiplier == 0) revert ZeroNoiseMultiplier();
        if (dp.sampleRate == 0 || dp.sampleRate > SAMPLE_RATE_ONE) revert InvalidSampleRate(dp.sampleRate);
        if (dp.steps == 0) revert ZeroSteps();
        if (dp.clipNorm == 0) revert ZeroClipNorm();
    }

    /// @dev The key is a SEC1-encoded secp256k1 point: 0x02/0x03 + 32 bytes, or 0x04 + 64 bytes.
    function _checkEncryptionKey(bytes calldata key) private pure {
        bytes1 prefix = key.length == 0 ? bytes1(0) : key[0];
        bool valid = key.length == 33 ? (prefix == 0x02 || prefix == 0x03) : (key.length == 65 && prefix == 0x04);
        if (!valid) revert InvalidEncryptionKey(key.length, prefix);
    }

    /**
     * @dev The ledger of `datasetId` with `curve` added, after checking the curve's entries,
     * the job's own ε against the per-job cap and the composed ε against the budget.
     */
    function _chargedLedger(uint256 datasetId, uint64[RDP_ORDERS] calldata curve, Policy memory policy)
        private
        view
        returns (uint256[4] memory words)
    {
        words = _ledger[datasetId];
        if (words[0] == 0) revert UnknownDataset(datasetId); // the hub opens every ledger at publish
        int256[RDP_ORDERS] memory bias = _orderBiases(policy.delta);
        uint256 jobEpsilon = type(uint256).max;
        uint256 composedEpsilon_ = type(uint256).max;
        uint256 zeroAt = RDP_ORDERS; // RDP_ORDERS: none
        // Per order i: add the job's entry to its (biased) lane, saturating, and take the
        // order's ε for the job alone and for the new sum where they are finite; keep the
        // minimum of each. In assembly because the checked Solidity loop costs about 25k gas
        // more. No value can overflow: entries are below 2^64 (checked here) and lanes below
        // 2^42, so entry · 1e9 < 2^94, and |bias_i| < 2^127.
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, RDP_ORDERS) { i := add(i, 1) } {
                let rdp := calldataload(add(curve, shl(5, i)))
                // Not a uint64: malformed calldata, refused as the ABI decoder refuses it.
                if gt(rdp, UINT64_MASK) { revert(0, 0) }
                if iszero(rdp) {
                    zeroAt := i
                    break
                }
                let word := add(words, shl(5, div(i, LANES_PER_WORD)))
                let shift := mul(LANE_BITS, mod(i, LANES_PER_WORD))
                let lane := and(shr(shift, mload(word)), LANE_MASK)
                if lt(lane, LANE_MASK) {
                    lane := add(lane, rdp)
                    if or(iszero(lt(rdp, SATURATED)), iszero(lt(lane, LANE_MASK))) { lane := LANE_MASK }
                    mstore(word, or(and(mload(word), not(shl(shift, LANE_MASK))), shl(shift, lane)))
                }
                let orderBias := mload(add(bias, shl(5, i)))
                if lt(rdp, SATURATED) {
                    let epsilon := add(mul(rdp, NANO_TO_WAD), orderBias)
                    if slt(epsilon, 0) { epsilon := 0 }
                    if lt(epsilon, jobEpsilon) { jobEpsilon := epsilon }
                }
                if lt(lane, LANE_MASK) {
                    // The lane holds the sum plus one.
                    let epsilon := add(mul(sub(lane, 1), NANO_TO_WAD), orderBias)
                    if slt(epsilon, 0) { epsilon := 0 }
                    if lt(epsilon, composedEpsilon_) { composedEpsilon_ := epsilon }
                }
            }
        }
        if (zeroAt < RDP_ORDERS) revert ZeroRdpEntry(zeroAt);
        uint256 jobMicro = _toMicro(jobEpsilon);
        if (jobMicro > policy.perJobCap) revert JobEpsilonAboveCap(jobMicro, policy.perJobCap);
        uint256 composedMicro = _toMicro(composedEpsilon_);
        if (composedMicro > policy.budget) revert BudgetExceeded(datasetId, composedMicro, policy.budget);
    }

    // ------------------------------------------------------------------ closing

    /// @dev Ends a job that released nothing: checks its curve, sets `status`, takes the
    /// curve off the ledger. Returns the dataset id.
    function _close(
        uint256 jobId,
        Job storage job,
        JobStatus status,
        uint64[RDP_ORDERS] calldata curve,
        bool release
    ) private returns (uint256 datasetId) {
        if (_curveHash(curve) != job.curveHash) revert CurveMismatch(jobId);
        job.status = status;
        datasetId = job.datasetId;
        if (!release) return datasetId;
        uint256[4] memory words = _ledger[datasetId];
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 lane = _lane(words, i);
            // A saturated order stays saturated: its true sum is no longer known. (An entry of
            // SATURATED or more saturated its lane at request.)
            if (lane == LANE_MASK) continue;
            // The curve was added at request, so the lane holds at least its entry plus one;
            // the checked subtraction would stop a broken ledger rather than borrow across lanes.
            _setLane(words, i, lane - curve[i]);
        }
        _ledger[datasetId] = words;
    }

    /**
     * @dev keccak256(abi.encode(curve)) without the decoder's per-entry copy: the hash of the
     * 24 calldata words as they are. A word that is not a clean uint64 hashes differently
     * from every valid curve, so it can only fail the comparison with a stored hash (and
     * {request} refuses such words before it stores one).
     */
    function _curveHash(uint64[RDP_ORDERS] calldata curve) private pure returns (bytes32 hash) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, curve, 0x300)
            hash := keccak256(ptr, 0x300)
        }
    }

    /// @dev Reverts for a job that is unknown or over.
    function _revertNotOpen(uint256 jobId, JobStatus status) private pure {
        if (status == JobStatus.None) revert JobNotFound(jobId);
        revert JobClosed(jobId, status);
    }

    // ------------------------------------------------------------------ RDP → (ε, δ)

    /**
     * @dev Per-order constants in wad, for α_i = a/2 with a = 3, 4, 5, 6, 8, 10, 12, 16, 20,
     * 24, 32, 40, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 1024, 2048 ({_doubledOrders}):
     *   offset_i  = ln α_i/(α_i − 1) − ln((α_i − 1)/α_i), rounded down;
     *   inverse_i = 1/(α_i − 1), rounded up;
     * so that ε_i = RDP_i + ln(1/δ)·inverse_i − offset_i. Computed with 60-digit decimals by
     *   python3 -c "from decimal import Decimal as D,getcontext as g;g().prec=60;A=[3,4,5,6,8,10,12,16,20,24,32,40,48,64,96,128,160,192,256,320,384,512,1024,2048];print([int(((D(a)/2).ln()/(D(a)/2-1)-((D(a)/2-1)/(D(a)/2)).ln())*10**18) for a in A]);print([-(-2*10**18//(a-2)) for a in A])"
     */
    function _orderConstants()
        private
        pure
        returns (uint256[RDP_ORDERS] memory offset, uint256[RDP_ORDERS] memory inverse)
    {
        offset = [
            uint256(1909542504884438455), 1386294361119890618, 1121686111682094059, 954771252442219227,
            749780192825077800, 625503029422734849, 540673450639565626, 430594470007356327,
            361203303768275821, 312911981515811612, 249377769286889920, 208963414048286901,
            180735867912184868, 143546630662958576, 103419388153319383, 81762374164324436,
            68047473785010518, 58517070303798943, 46048140169054374, 38188945184877326,
            32748097761401840, 25659693221056181, 14163106509070489, 7752671911364690
        ];
        inverse = [
            uint256(2000000000000000000), 1000000000000000000, 666666666666666667, 500000000000000000,
            333333333333333334, 250000000000000000, 200000000000000000, 142857142857142858,
            111111111111111112, 90909090909090910, 66666666666666667, 52631578947368422,
            43478260869565218, 32258064516129033, 21276595744680852, 15873015873015874,
            12658227848101266, 10526315789473685, 7874015748031497, 6289308176100629,
            5235602094240838, 3921568627450981, 1956947162426615, 977517106549365
        ];
    }

    /**
     * @dev The packed ledger of a count released with noise σ = `countNoise` / 1e6, and its ε
     * (wad) at `delta`. Order i's entry is a_i / (4σ²) × 1e9 = a_i × 1e21 / (4 countNoise²),
     * rounded up; lanes hold entry + 1, or LANE_MASK from SATURATED on. In assembly, one loop
     * for the entries, the lanes and ε: the checked version costs about 30k gas more. Nothing
     * overflows: a_i × 1e21 < 2^82, entries below SATURATED times 1e9 are below 2^72, and
     * |bias_i| < 2^127.
     */
    function _countReleaseLedger(uint32 countNoise, uint64 delta)
        private
        pure
        returns (uint256[4] memory words, uint256 epsilonWad)
    {
        if (countNoise == 0) revert ZeroCountNoise();
        uint256 denominator = 4 * uint256(countNoise) * uint256(countNoise);
        int256[RDP_ORDERS] memory bias = _orderBiases(delta);
        uint256[RDP_ORDERS] memory doubled = _doubledOrders();
        epsilonWad = type(uint256).max;
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, RDP_ORDERS) { i := add(i, 1) } {
                let at := shl(5, i)
                let entry := div(sub(add(mul(mload(add(doubled, at)), 1000000000000000000000), denominator), 1), denominator)
                let lane := LANE_MASK
                if lt(entry, SATURATED) {
                    lane := add(entry, 1)
                    let epsilon := add(mul(entry, NANO_TO_WAD), mload(add(bias, at)))
                    if slt(epsilon, 0) { epsilon := 0 }
                    if lt(epsilon, epsilonWad) { epsilonWad := epsilon }
                }
                let word := add(words, shl(5, div(i, LANES_PER_WORD)))
                mstore(word, or(mload(word), shl(mul(LANE_BITS, mod(i, LANES_PER_WORD)), lane)))
            }
        }
    }

    /// @dev The orders doubled (a_i = 2α_i), so that they are integers.
    function _doubledOrders() private pure returns (uint256[RDP_ORDERS] memory doubled) {
        doubled = [
            uint256(3), 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 1024, 2048
        ];
    }

    /**
     * @dev Per order, the part of ε_i that does not depend on the curve, in wad:
     * bias_i = ceil(ln(1/δ) · inverse_i / 1e18) − offset_i, so that ε_i = RDP_i·1e9 + bias_i.
     * ln(1/δ) comes from solady's lnWad plus one wei, so that it never comes out low.
     */
    function _orderBiases(uint64 delta) private pure returns (int256[RDP_ORDERS] memory bias) {
        if (delta == 0 || delta >= DELTA_ONE) revert InvalidDelta(delta);
        // 0 < δ < 1, so ln δ < 0; |ln δ| <= ln 1e18 < 42e18.
        uint256 lnInvDelta = uint256(-FixedPointMathLib.lnWad(int256(uint256(delta)))) + 1;
        (uint256[RDP_ORDERS] memory offset, uint256[RDP_ORDERS] memory inverse) = _orderConstants();
        // lnInvDelta < 2^66 and inverse_i, offset_i < 2^61: nothing overflows, and the
        // difference is exact as a two's-complement int256.
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, RDP_ORDERS) { i := add(i, 1) } {
                let at := shl(5, i)
                let term := div(add(mul(lnInvDelta, mload(add(inverse, at))), sub(WAD, 1)), WAD)
                mstore(add(bias, at), sub(term, mload(add(offset, at))))
            }
        }
    }

    /**
     * @dev min over the finite orders of max(0, curve_i · 1e9 + bias_i): the curve's ε in wad
     * (type(uint256).max when no order is finite).
     * @param curve RDP in nano-units (at most 2^64 − 1 each, so curve_i · 1e9 < 2^95).
     * @param bias From {_orderBiases} (|bias_i| < 2^127).
     */
    function _minEpsilonWad(uint64[RDP_ORDERS] memory curve, int256[RDP_ORDERS] memory bias)
        private
        pure
        returns (uint256 best)
    {
        best = type(uint256).max;
        // Plain loop in assembly: the checked version costs about ten times the gas. No value
        // can overflow (bounds above); a negative order ε is floored at 0.
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, RDP_ORDERS) { i := add(i, 1) } {
                let at := shl(5, i)
                let rdp := mload(add(curve, at))
                if lt(rdp, SATURATED) {
                    let epsilon := add(mul(rdp, NANO_TO_WAD), mload(add(bias, at)))
                    if slt(epsilon, 0) { epsilon := 0 }
                    if lt(epsilon, best) { best := epsilon }
                }
            }
        }
    }

    /// @dev Wad to millionths, rounded up; infinite (type(uint256).max) stays infinite.
    function _toMicro(uint256 wad) private pure returns (uint256) {
        if (wad == type(uint256).max) return wad;
        return (wad + WAD_PER_MICRO - 1) / WAD_PER_MICRO;
    }

    /// @dev True when every entry of `curve` is 0.
    function _isZero(uint64[RDP_ORDERS] memory curve) private pure returns (bool) {
        for (uint256 i; i < RDP_ORDERS; ++i) if (curve[i] != 0) return false;
        return true;
    }

    /// @dev Lane `i` (biased by one) of a packed ledger.
    function _lane(uint256[4] memory words, uint256 i) private pure returns (uint256) {
        return (words[i / LANES_PER_WORD] >> ((i % LANES_PER_WORD) * LANE_BITS)) & LANE_MASK;
    }

    /// @dev Sets lane `i` of a packed ledger to `value` (below 2^42).
    function _setLane(uint256[4] memory words, uint256 i, uint256 value) private pure {
        uint256 shift = (i % LANES_PER_WORD) * LANE_BITS;
        uint256 at = i / LANES_PER_WORD;
        words[at] = (words[at] & ~(LANE_MASK << shift)) | (value << shift);
    }

    /// @dev OpenZeppelin's double-hashed standard Merkle leaf of one 32-byte value.
    function _leaf(bytes32 value) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(value))));
    }
}
