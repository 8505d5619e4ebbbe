// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {Cove} from "../src/Cove.sol";
import {ComputeJobs, JobRequest, DpParams, Job, JobStatus, RDP_ORDERS} from "../src/ComputeJobs.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";

/**
 * @title JobsHandler
 * @notice What the invariant fuzzer may do to one dataset: buy credits, request jobs with
 * random Gaussian-shaped curves (some with saturated high orders, some that bring a ledger
 * lane to just below or exactly at SATURATED, some with no finite order at all), accept,
 * complete, fail (with or without rows read, sometimes with a wrong curve), refund, let time
 * pass, and all of these from the wrong account now and then. It keeps a model of every job
 * and of the ledger (ghost state: the publication's charge plus the charged curves, and which
 * orders saturated), predicts each call's outcome (success, or the exact custom error) and
 * counts every difference.
 */
contract JobsHandler is Test {
    Cove internal immutable cove;
    ComputeJobs internal immutable jobs;
    Datatoken internal immutable credits;
    uint256 public immutable id;
    address internal immutable runner;
    uint64 internal immutable delta;
    uint32 internal immutable budget;
    uint32 internal immutable cap;

    uint64 internal constant SATURATED = 4_398_046_511_102; // 2^42 - 2

    address[3] internal actors = [address(0xA1), address(0xA2), address(0xA3)];
    address internal constant OUTSIDER = address(0xBAD);

    struct GhostJob {
        address consumer;
        uint64[RDP_ORDERS] curve;
        JobStatus status;
        uint64 deadline;
        uint256 completions;
        uint256 closes; // fails + refunds
        bool released; // its curve left the ledger (failed without rows read, or refunded before it was accepted)
    }

    GhostJob[] internal _ghost;
    /// The running sum of the publication's charge and the charged curves, as the model sees it
    /// (meaningful only at orders not saturated).
    uint256[RDP_ORDERS] internal _ledger;
    /// The orders whose lane saturated (for good).
    bool[RDP_ORDERS] internal _saturated;
    uint64[RDP_ORDERS] internal _publication;

    uint256 public bought;
    uint256 public requests;
    uint256 public closedJobs;
    uint256 public mismatches;
    /// Successful calls and budget refusals, to see that the fuzzer reaches every path.
    uint256 public accepts;
    uint256 public completes;
    uint256 public fails;
    uint256 public failsKeptCharge;
    uint256 public refunds;
    uint256 public saturatingRequests;
    uint256 public budgetRefusals;
    uint256 public calls;
    string public firstMismatch;

    constructor(
        Cove cove_,
        ComputeJobs jobs_,
        Datatoken credits_,
        uint256 id_,
        address runner_,
        uint64[RDP_ORDERS] memory publication_
    ) {
        cove = cove_;
        jobs = jobs_;
        credits = credits_;
        id = id_;
        runner = runner_;
        (,, Policy memory p) = cove_.jobTermsOf(id_);
        delta = p.delta;
        budget = p.budget;
        cap = p.perJobCap;
        _publication = publication_;
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (publication_[i] >= SATURATED) _saturated[i] = true;
            else _ledger[i] = publication_[i];
        }
    }

    // ------------------------------------------------------------------ views for invariants

    function jobCount() external view returns (uint256) {
        return _ghost.length;
    }

    function ghostJob(uint256 jobId) external view returns (GhostJob memory) {
        return _ghost[jobId - 1];
    }

    function ghostLedger() external view returns (uint256[RDP_ORDERS] memory) {
        return _ledger;
    }

    function ghostSaturated() external view returns (bool[RDP_ORDERS] memory) {
        return _saturated;
    }

    function publication() external view returns (uint64[RDP_ORDERS] memory) {
        return _publication;
    }

    function actor(uint256 i) external view returns (address) {
        return actors[i];
    }

    // ------------------------------------------------------------------ actions

    /// @notice An actor takes 1 to 3 free credits.
    function buy(uint256 actorSeed, uint256 n) external {
        ++calls;
        address a = actors[actorSeed % actors.length];
        n = bound(n, 1, 3);
        vm.prank(a);
        // forge-lint: disable-next-line(unsafe-typecast)
        try cove.buy(id, uint64(n), address(0), 0, new bytes32[](0)) {
            bought += n;
        } catch {
            _mismatch("buy failed");
        }
    }

    /// @notice An actor (or an outsider without credits) requests a job.
    function request(uint256 actorSeed, uint256 rhoSeed, uint256 shapeSeed, uint256 deadlineSeed) external {
        ++calls;
        address consumer = actorSeed % 8 == 7 ? OUTSIDER : actors[actorSeed % actors.length];
        uint64[RDP_ORDERS] memory curve = _curve(rhoSeed, shapeSeed);
        bool saturates;
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (!_saturated[i] && _ledger[i] + curve[i] >= SATURATED) saturates = true;
        }
        JobRequest memory r = _request(curve, uint64(block.timestamp + bound(deadlineSeed, 1 hours, 3 days)));

        bytes memory expected;
        uint256 jobEpsilon = jobs.epsilonOf(curve, delta);
        uint256 composed = jobs.epsilonOf(_plusLedger(curve), delta);
        if (jobEpsilon > cap) {
            expected = abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, jobEpsilon, cap);
        } else if (composed > budget) {
            expected = abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, composed, budget);
            ++budgetRefusals;
        } else if (credits.balanceOf(consumer) < 1e18) {
            expected = abi.encodeWithSelector(ComputeJobs.NoCredit.selector, id, consumer);
        }

        uint256 balance = credits.balanceOf(consumer);
        uint256 supply = credits.totalSupply();
        vm.prank(consumer);
        try jobs.request(r) returns (uint256 jobId) {
            if (expected.length != 0) _mismatch("request succeeded"); // still modelled, so the invariants can report it
            if (jobId != _ghost.length + 1) _mismatch("job id");
            if (credits.balanceOf(consumer) != balance - 1e18) _mismatch("request: balance");
            if (credits.totalSupply() != supply - 1e18) _mismatch("request: supply");
            ++requests;
            GhostJob storage job = _ghost.push();
            job.consumer = consumer;
            job.curve = curve;
            job.status = JobStatus.Requested;
            job.deadline = r.deadline;
            if (saturates) ++saturatingRequests;
            for (uint256 i; i < RDP_ORDERS; ++i) {
                if (_saturated[i]) continue;
                // A lane saturates once its sum reaches SATURATED (an entry of SATURATED or
                // more does so by itself).
                if (_ledger[i] + curve[i] >= SATURATED) _saturated[i] = true;
                else _ledger[i] += curve[i];
            }
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) _mismatch("request: error");
        }
    }

    /// @notice The runner (or, one time in five, someone else) claims a job.
    function accept(uint256 jobSeed, uint256 callerSeed) external {
        ++calls;
        (uint256 jobId, bool known) = _pick(jobSeed);
        address caller = callerSeed % 5 == 0 ? actors[callerSeed % actors.length] : runner;
        bytes memory expected;
        if (!known) {
            expected = abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, jobId);
        } else {
            GhostJob storage job = _ghost[jobId - 1];
            if (job.status == JobStatus.Accepted) {
                expected = abi.encodeWithSelector(ComputeJobs.JobAlreadyAccepted.selector, jobId, runner);
            } else if (job.status != JobStatus.Requested) {
                expected = abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, job.status);
            // forge-lint: disable-next-line(block-timestamp)
            } else if (block.timestamp > job.deadline) {
                expected = abi.encodeWithSelector(ComputeJobs.DeadlinePassed.selector, jobId, job.deadline);
            } else if (caller != runner) {
                expected = abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, caller, runner);
            }
        }
        vm.prank(caller);
        try jobs.accept(jobId) {
            if (expected.length != 0) _mismatch("accept succeeded"); // still modelled, so the invariants can report it
            _ghost[jobId - 1].status = JobStatus.Accepted;
            ++accepts;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) _mismatch("accept: error");
        }
    }

    /// @notice The runner (or someone else) completes a job.
    function complete(uint256 jobSeed, uint256 callerSeed) external {
        ++calls;
        (uint256 jobId, bool known) = _pick(jobSeed);
        address caller = callerSeed % 5 == 0 ? actors[callerSeed % actors.length] : runner;
        bytes memory expected;
        if (!known) {
            expected = abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, jobId);
        } else {
            GhostJob storage job = _ghost[jobId - 1];
            if (job.status == JobStatus.Requested) {
                expected = abi.encodeWithSelector(ComputeJobs.JobNotAccepted.selector, jobId);
            } else if (job.status != JobStatus.Accepted) {
                expected = abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, job.status);
            } else if (caller != runner) {
                expected = abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, caller, runner);
            }
        }
        uint256 supply = credits.totalSupply();
        vm.prank(caller);
        try jobs.complete(jobId, keccak256("d"), keccak256("w"), keccak256("p"), keccak256("pd")) {
            if (expected.length != 0) _mismatch("complete succeeded"); // still modelled, so the invariants can report it
            if (credits.totalSupply() != supply) _mismatch("complete: supply moved");
            GhostJob storage job = _ghost[jobId - 1];
            job.status = JobStatus.Completed;
            ++job.completions;
            ++completes;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) _mismatch("complete: error");
        }
    }

    /// @notice The runner (or someone else) fails a job, with its curve or a wrong one, saying
    /// it had read private rows (the charge stays) or not (the charge leaves).
    function fail(uint256 jobSeed, uint256 callerSeed, bool wrongCurve, bool rowsRead) external {
        ++calls;
        (uint256 jobId, bool known) = _pick(jobSeed);
        address caller = callerSeed % 5 == 0 ? actors[callerSeed % actors.length] : runner;
        uint64[RDP_ORDERS] memory curve;
        bytes memory expected;
        if (!known) {
            expected = abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, jobId);
        } else {
            GhostJob storage job = _ghost[jobId - 1];
            curve = job.curve;
            if (wrongCurve) _perturb(curve, callerSeed % RDP_ORDERS);
            if (job.status != JobStatus.Requested && job.status != JobStatus.Accepted) {
                expected = abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, job.status);
            } else if (caller != runner) {
                expected = abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, caller, runner);
            } else if (wrongCurve) {
                expected = abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId);
            }
        }
        uint256 supply = credits.totalSupply();
        uint64[RDP_ORDERS] memory before = jobs.curveOf(id);
        vm.prank(caller);
        try jobs.fail(jobId, "handler", curve, rowsRead) {
            if (expected.length != 0) _mismatch("fail succeeded"); // still modelled, so the invariants can report it
            if (credits.totalSupply() != supply + 1e18) _mismatch("fail: no credit refunded");
            if (rowsRead && keccak256(abi.encode(jobs.curveOf(id))) != keccak256(abi.encode(before))) {
                _mismatch("fail with rows read: ledger moved");
            }
            _close(jobId, JobStatus.Failed, rowsRead);
            ++fails;
            if (rowsRead) ++failsKeptCharge;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) _mismatch("fail: error");
        }
    }

    /// @notice The consumer (or someone else) takes a job back.
    function refund(uint256 jobSeed, uint256 callerSeed, bool wrongCurve) external {
        ++calls;
        (uint256 jobId, bool known) = _pick(jobSeed);
        uint64[RDP_ORDERS] memory curve;
        address caller = actors[callerSeed % actors.length];
        bytes memory expected;
        if (!known) {
            expected = abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, jobId);
        } else {
            GhostJob storage job = _ghost[jobId - 1];
            if (callerSeed % 4 != 0) caller = job.consumer; // mostly the consumer
            curve = job.curve;
            if (wrongCurve) _perturb(curve, callerSeed % RDP_ORDERS);
            if (job.status != JobStatus.Requested && job.status != JobStatus.Accepted) {
                expected = abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, job.status);
            } else if (caller != job.consumer) {
                expected = abi.encodeWithSelector(ComputeJobs.NotJobConsumer.selector, jobId, caller, job.consumer);
            // forge-lint: disable-next-line(block-timestamp)
            } else if (block.timestamp <= job.deadline) {
                expected = abi.encodeWithSelector(ComputeJobs.DeadlineNotPassed.selector, jobId, job.deadline);
            } else if (wrongCurve) {
                expected = abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId);
            }
        }
        vm.prank(caller);
        try jobs.refund(jobId, curve) {
            if (expected.length != 0) _mismatch("refund succeeded"); // still modelled, so the invariants can report it
            _close(jobId, JobStatus.Refunded, false);
            ++refunds;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) _mismatch("refund: error");
        }
    }

    /// @notice Time passes (up to two days).
    function wait(uint256 seconds_) external {
        ++calls;
        vm.warp(block.timestamp + bound(seconds_, 0, 2 days));
    }

    // ------------------------------------------------------------------ internals

    /// @dev A job id: mostly an existing one, sometimes the next (unknown) one.
    function _pick(uint256 seed) internal view returns (uint256 jobId, bool known) {
        uint256 n = _ghost.length;
        if (n == 0 || seed % 10 == 9) return (n + 1, false);
        return (seed % n + 1, true);
    }

    /**
     * @dev A Gaussian-shaped curve (RDP(α) = α·ρ, ρ from 0.001 to 0.06), each entry nudged up
     * by up to 10%, so curves differ and some exceed the per-job cap. By `shapeSeed`, one in
     * four has its orders from a random one in 14..23 up set to SATURATED or more (as real
     * DP-SGD curves have); one in eight brings a random order's lane to SATURATED − 1 (still
     * finite), one in eight to exactly SATURATED (saturated); one in sixteen has no finite order.
     */
    function _curve(uint256 rhoSeed, uint256 shapeSeed) internal view returns (uint64[RDP_ORDERS] memory curve) {
        uint256 rho = bound(rhoSeed, 1_000_000, 60_000_000);
        uint256[RDP_ORDERS] memory twiceAlpha = [
            uint256(3), 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 1024, 2048
        ];
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 base = (twiceAlpha[i] * rho + 1) / 2;
            uint256 nudge = uint256(keccak256(abi.encode(shapeSeed, i))) % (base / 10 + 1);
            // casting to 'uint64' is safe because base + nudge <= 1.1 * 1024 * 6e7 < 2^64
            // forge-lint: disable-next-line(unsafe-typecast)
            curve[i] = uint64(base + nudge);
        }
        uint256 shape = shapeSeed % 16;
        uint256 pick = uint256(keccak256(abi.encode(shapeSeed, "pick")));
        if (shape < 4) {
            for (uint256 i = 14 + pick % 10; i < RDP_ORDERS; ++i) {
                // casting to 'uint64' is safe because bound keeps it within uint64
                // forge-lint: disable-next-line(unsafe-typecast)
                curve[i] = uint64(bound(uint256(keccak256(abi.encode(pick, i))), SATURATED, type(uint64).max));
            }
        } else if (shape < 8) {
            uint256 order = 14 + pick % 10;
            if (!_saturated[order] && _ledger[order] < SATURATED - 1) {
                // casting to 'uint64' is safe because the result is below SATURATED < 2^64
                // forge-lint: disable-next-line(unsafe-typecast)
                curve[order] = uint64(SATURATED - (shape < 6 ? 1 : 0) - _ledger[order]);
            }
        } else if (shape == 15) {
            for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = pick % 2 == 0 ? SATURATED : type(uint64).max;
        }
    }

    /// @dev The ledger the model predicts with `curve` added: saturated orders (and any the
    /// sum brings to SATURATED) are type(uint64).max, which epsilonOf treats as infinite.
    function _plusLedger(uint64[RDP_ORDERS] memory curve) internal view returns (uint64[RDP_ORDERS] memory sum) {
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 total = _ledger[i] + curve[i];
            // casting to 'uint64' is safe because total < SATURATED on that branch
            // forge-lint: disable-next-line(unsafe-typecast)
            sum[i] = _saturated[i] || total >= SATURATED ? type(uint64).max : uint64(total);
        }
    }

    function _request(uint64[RDP_ORDERS] memory curve, uint64 deadline) internal view returns (JobRequest memory r) {
        r.datasetId = id;
        r.specHash = keccak256("spec");
        r.spec = hex"789c0b2e484d060003cd018c"; // zlib("Spec")
        r.dp = DpParams({noiseMultiplier: 1_000_000, sampleRate: 10_000_000, steps: 100, clipNorm: 1_000_000, epochs: 1});
        r.rdpCurve = curve;
        r.familyProof = new bytes32[](0);
        r.allowProof = new bytes32[](0);
        r.deadline = deadline;
        r.encryptionKey = hex"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    }

    function _close(uint256 jobId, JobStatus status, bool rowsRead) internal {
        GhostJob storage job = _ghost[jobId - 1];
        // A refund after `accept` keeps the charge: only the runner can say nothing was
        // released, and a runner that read private rows keeps it too.
        bool release = status == JobStatus.Failed ? !rowsRead : job.status == JobStatus.Requested;
        job.status = status;
        job.released = release;
        ++job.closes;
        ++closedJobs;
        if (!release) return;
        // A saturated order stays saturated: its sum is no longer known.
        for (uint256 i; i < RDP_ORDERS; ++i) if (!_saturated[i]) _ledger[i] -= job.curve[i];
    }

    /// @dev Changes entry `i` by one (down from the uint64 max, else up): a wrong curve.
    function _perturb(uint64[RDP_ORDERS] memory curve, uint256 i) internal pure {
        curve[i] = curve[i] == type(uint64).max ? curve[i] - 1 : curve[i] + 1;
    }

    function _mismatch(string memory what) internal {
        if (mismatches == 0) firstMismatch = what;
        ++mismatches;
    }
}

/// @notice Invariants of ComputeJobs over random sequences of requests, claims, completions,
/// failures, refunds, purchases and time.
contract ComputeJobsInvariantTest is JobsTest {
    JobsHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new JobsHandler(cove, jobs, credits, id, runner, _publication());
    }

    /// @notice Forge fuzzes only the handler.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice Every outcome matched the model (success iff allowed; the expected error).
    /// forge-config: default.invariant.depth = 96
    function invariant_OutcomesMatchModel() public view {
        assertEq(handler.mismatches(), 0, handler.firstMismatch());
    }

    /// @notice The composed ε of the dataset never exceeds its budget.
    /// forge-config: default.invariant.depth = 96
    function invariant_ComposedEpsilonWithinBudget() public view {
        assertLe(jobs.composedEpsilon(id), JOB_BUDGET, "composed epsilon <= budget");
    }

    /// @notice Each request spent exactly one credit, each failed or refunded job got exactly
    /// one back, and nothing else moved: supply = bought - requests + closed jobs.
    /// forge-config: default.invariant.depth = 96
    function invariant_CreditsSpentOnce() public view {
        uint256 n = jobs.jobCount();
        assertEq(n, handler.requests(), "one job per successful request");
        uint256 closed;
        for (uint256 jobId = 1; jobId <= n; ++jobId) {
            JobStatus status = jobs.jobOf(jobId).status;
            if (status == JobStatus.Failed || status == JobStatus.Refunded) ++closed;
        }
        assertEq(closed, handler.closedJobs(), "closed jobs");
        uint256 supply = (START_CREDITS + handler.bought() - n + closed) * 1e18;
        assertEq(credits.totalSupply(), supply, "supply = bought - spent + refunded");
        uint256 held = credits.balanceOf(buyer);
        for (uint256 i; i < 3; ++i) held += credits.balanceOf(handler.actor(i));
        assertEq(held, credits.totalSupply(), "every credit is held by someone");
    }

    /// @notice A job completes at most once, and is never both completed and failed/refunded;
    /// the contract's status is the model's.
    /// forge-config: default.invariant.depth = 96
    function invariant_JobsEndOnce() public view {
        uint256 n = jobs.jobCount();
        for (uint256 jobId = 1; jobId <= n; ++jobId) {
            JobsHandler.GhostJob memory ghost = handler.ghostJob(jobId);
            assertLe(ghost.completions, 1, "completed at most once");
            assertLe(ghost.closes, 1, "failed/refunded at most once");
            assertFalse(ghost.completions > 0 && ghost.closes > 0, "completed and refunded");
            Job memory job = jobs.jobOf(jobId);
            assertEq(uint256(job.status), uint256(ghost.status), "status as modelled");
            assertEq(job.consumer, ghost.consumer, "consumer");
            if (job.status == JobStatus.Completed) assertTrue(job.weightsHash != 0, "completed with results");
        }
    }

    /// @notice The ledger is exactly the publication's charge plus the curves of charged jobs
    /// (all but those failed with no rows read and those refunded before a runner accepted
    /// them), order by order, except at saturated orders, which read type(uint64).max. An
    /// order is saturated if any job ever charged had an entry of SATURATED or more there, or
    /// if the charged sum reaches SATURATED now (it did when the last of them was added); and
    /// it stays saturated (the model's flag is sticky, and the ledger must match it).
    /// forge-config: default.invariant.depth = 96
    function invariant_LedgerIsPublicationPlusChargedCurves() public view {
        uint64[RDP_ORDERS] memory publication = handler.publication();
        _assertCurveEq(publication, _publication(), "the publication's charge");
        uint256[RDP_ORDERS] memory sum;
        bool[RDP_ORDERS] memory mustSaturate;
        for (uint256 i; i < RDP_ORDERS; ++i) sum[i] = publication[i];
        uint256 n = jobs.jobCount();
        for (uint256 jobId = 1; jobId <= n; ++jobId) {
            JobsHandler.GhostJob memory ghost = handler.ghostJob(jobId);
            Job memory job = jobs.jobOf(jobId);
            assertEq(job.curveHash, keccak256(abi.encode(ghost.curve)), "stored curve hash");
            for (uint256 i; i < RDP_ORDERS; ++i) if (ghost.curve[i] >= SATURATED) mustSaturate[i] = true;
            if (ghost.released) continue;
            for (uint256 i; i < RDP_ORDERS; ++i) sum[i] += ghost.curve[i];
        }
        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(id);
        uint256[RDP_ORDERS] memory running = handler.ghostLedger();
        bool[RDP_ORDERS] memory saturated = handler.ghostSaturated();
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (sum[i] >= SATURATED) mustSaturate[i] = true;
            if (mustSaturate[i]) assertTrue(saturated[i], "an order that reached SATURATED is saturated");
            if (saturated[i]) {
                assertEq(ledger[i], type(uint64).max, "a saturated order reads as the uint64 max");
            } else {
                assertEq(ledger[i], sum[i], "ledger = publication + charged curves");
                assertEq(running[i], sum[i], "model's running sum");
            }
        }
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(ledger, DELTA), "composed = epsilon of the ledger");
    }

    /// @notice The fuzzer does reach every path (a sanity check on the handler, not on the contract).
    /// forge-config: default.invariant.depth = 96
    function invariant_HandlerIsExercised() public view {
        assertLe(handler.requests(), handler.calls(), "bookkeeping");
    }
}
