// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {ComputeJobs, JobRequest, JobStatus, RDP_ORDERS} from "../src/ComputeJobs.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";
import {DatasetParams} from "../src/modules/DatasetRegistry.sol";

/**
 * @notice The privacy ledger's own rules: the publication's charge (the noisy row count),
 * saturating lanes, and what a failed job leaves on the ledger depending on whether the runner
 * had read private rows.
 */
contract ComputeJobsLedgerTest is JobsTest {
    /*
     * ε × 1e6 at δ 1e-6 of the ledgers below, by the project's accountant (24 orders, skipping
     * saturated ones as the chain does):
     *
     *   from exchange.ml import accounting as acc
     *   U, SAT = 2**64 - 1, 2**42 - 2
     *   pub = list(acc.count_release_curve(100_000_000))
     *   c = [SAT, U, SAT + 1, SAT - 1 - pub[3], SAT - pub[4]] + [10**12] * 18 + [10**6]
     *   print(acc.epsilon(c, 1e-6) * 1e6, acc.epsilon(acc.compose([pub, c]), 1e-6) * 1e6)
     *
     * printed 6752.2259947587445 (the job alone, at α = 1024) and 57952.22599475875 (the
     * ledger: only α = 1024 is finite and small). `_lopsided()` gives the same two figures.
     */
    uint256 internal constant PY_LOPSIDED_JOB = 6_752_225_994_758; // × 1e-9 micro-ε
    uint256 internal constant PY_LOPSIDED_LEDGER = 57_952_225_994_758;

    // =============================================================== the publication's charge

    function test_Publication_ChargeIsCountReleaseCurve() public view {
        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(id);
        _assertCurveEq(ledger, jobs.countReleaseCurve(COUNT_NOISE), "ledger = countReleaseCurve(countNoise)");
        _assertCurveEq(ledger, _countCurve(COUNT_NOISE), "= alpha / (2 sigma^2), computed here");
        _assertCurveEq(ledger, _publication(), "= exchange.ml.accounting.count_release_curve");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(_publication(), DELTA), "composed = its epsilon");
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "Python: 38473.12 micro-epsilon");
        assertEq(cove.datasetOf(id).countNoise, COUNT_NOISE, "stored with the dataset");
    }

    /// @notice countReleaseCurve is α/(2σ²) at each order, rounded up to nano-units,
    /// saturating: against the doubled orders here, and against the contract's own rdpOrders.
    function testFuzz_CountReleaseCurve_IsAlphaOverTwoSigmaSquared(uint32 countNoise) public view {
        countNoise = uint32(bound(countNoise, 1, type(uint32).max));
        uint64[RDP_ORDERS] memory curve = jobs.countReleaseCurve(countNoise);
        _assertCurveEq(curve, _countCurve(countNoise), "from the doubled orders");
        uint256[RDP_ORDERS] memory alphas = jobs.rdpOrders();
        for (uint256 i; i < RDP_ORDERS; ++i) {
            // RDP nano = α · 1e9 / (2 σ²) with α = alphas[i] / 1e18 and σ = countNoise / 1e6:
            // alphas[i] · 1e3 / (2 countNoise²), rounded up.
            uint256 denominator = 2 * uint256(countNoise) ** 2;
            uint256 exact = (alphas[i] * 1e3 + denominator - 1) / denominator;
            if (exact >= SATURATED) assertEq(curve[i], type(uint64).max, "saturated: infinite");
            else assertEq(curve[i], exact, "alpha / (2 sigma^2)");
            if (i > 0 && curve[i - 1] != type(uint64).max) assertGe(curve[i], curve[i - 1], "grows with alpha");
        }
        if (countNoise > 1) {
            uint64[RDP_ORDERS] memory noisier = jobs.countReleaseCurve(countNoise);
            uint64[RDP_ORDERS] memory lessNoisy = jobs.countReleaseCurve(countNoise - 1);
            for (uint256 i; i < RDP_ORDERS; ++i) assertLe(noisier[i], lessNoisy[i], "more noise, less RDP");
        }
    }

    function test_CountReleaseCurve_Boundaries() public {
        vm.expectRevert(ComputeJobs.ZeroCountNoise.selector);
        jobs.countReleaseCurve(0);
        // σ 1e-6: every order saturates.
        uint64[RDP_ORDERS] memory curve = jobs.countReleaseCurve(1);
        for (uint256 i; i < RDP_ORDERS; ++i) assertEq(curve[i], type(uint64).max, "saturated");
        assertEq(jobs.epsilonOf(curve, DELTA), type(uint256).max, "no finite order");
        // σ 0.1: α/(2σ²) = 50α, orders from α = 96 on (50α ≥ 4398.05) saturate.
        curve = jobs.countReleaseCurve(100_000);
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (i < 17) assertEq(curve[i], _doubledOrders()[i] * 25e9, "50 alpha");
            else assertEq(curve[i], type(uint64).max, "saturated");
        }
        // The largest σ (4294.967295): α = 1.5 costs 40.66 nano, α = 1024 27755.6 (rounded up;
        // exchange.ml.accounting.count_release_curve(2**32 - 1) gives 41 and 27756).
        curve = jobs.countReleaseCurve(type(uint32).max);
        assertEq(curve[0], 41, "alpha 1.5");
        assertEq(curve[23], 27_756, "alpha 1024");
    }

    function test_Publish_SaturatedPublication_OpensWithInfiniteOrders() public {
        DatasetParams memory params = _params(2);
        params.countNoise = 100_000; // σ 0.1
        Policy memory policy = _jobPolicy();
        (policy.budget, policy.perJobCap) = (type(uint32).max, type(uint32).max);
        uint64[RDP_ORDERS] memory charge = _countCurve(100_000);
        uint256 epsilon = jobs.epsilonOf(charge, DELTA);
        assertGt(epsilon, 0, "finite at the low orders");
        assertLt(epsilon, type(uint32).max, "within the budget");
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.LedgerOpened(2, 100_000, epsilon);
        (uint256 other,) = _publish(owner, params, policy);
        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(other);
        _assertCurveEq(ledger, charge, "the charge, saturated from alpha = 96 on");
        assertEq(ledger[16], 4_000_000_000_000, "alpha 80: 4000 RDP, finite");
        assertEq(ledger[17], type(uint64).max, "alpha 96: saturated");
        assertEq(jobs.composedEpsilon(other), epsilon, "composed");
    }

    function test_RevertWhen_Publish_BudgetTooSmallForThePublication() public {
        DatasetParams memory params = _params(2);
        Policy memory policy = _jobPolicy();
        (policy.budget, policy.perJobCap) = (PUBLICATION_EPSILON - 1, PUBLICATION_EPSILON - 1);
        uint256 count = cove.datasetCount();
        vm.expectRevert(
            abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, 2, PUBLICATION_EPSILON, PUBLICATION_EPSILON - 1)
        );
        vm.prank(owner);
        cove.publish(params, policy, bytes32(0));
        assertEq(cove.datasetCount(), count, "no dataset");
        assertEq(cove.datasetByCommitment(params.commitment), 0, "commitment free");
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 2));
        jobs.curveOf(2);
        // Enough noise makes the same budget enough: σ 200 costs a quarter of the RDP
        // (Python: 18552.23 micro-epsilon).
        params.countNoise = 2 * COUNT_NOISE;
        (uint256 other,) = _publish(owner, params, policy);
        assertEq(jobs.composedEpsilon(other), 18_553, "fits");
    }

    function test_Publication_CountsTowardTheBudget() public {
        // A budget of exactly publication + A: A fits, and then not even the smallest job does.
        uint256 composed = jobs.epsilonOf(_charged(_curveA()), DELTA);
        Policy memory tight = _jobPolicy();
        // casting to 'uint32' is safe because composed is about 1.17e6
        // forge-lint: disable-next-item(unsafe-typecast)
        (tight.budget, tight.perJobCap) = (uint32(composed), uint32(composed));
        vm.prank(owner);
        cove.setPolicy(id, tight, bytes32(0));
        _requestAs(_curveA());
        uint64[RDP_ORDERS] memory tiny = _gaussianCurve(1_000); // ρ 1e-6
        uint256 over = jobs.epsilonOf(_charged(_curveA(), tiny), DELTA);
        assertGt(over, composed, "anything more costs more");
        _expectRequestRevert(_request(tiny), abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, over, composed));
        // Without the publication A alone would leave room: the ledger really holds both.
        assertLt(jobs.epsilonOf(_add(_curveA(), tiny), DELTA), composed, "room without the publication");
    }

    // =============================================================== saturation

    function test_Saturation_EntryAtOrAboveSaturatedSaturatesThatOrder() public {
        uint64[RDP_ORDERS] memory pub = _publication();
        uint64[RDP_ORDERS] memory curve = _lopsided();
        curve[0] = SATURATED; // exactly the threshold
        curve[1] = type(uint64).max;
        curve[2] = SATURATED + 1;
        curve[3] = SATURATED - 1 - pub[3]; // the sum is SATURATED − 1: still finite
        curve[4] = SATURATED - pub[4]; // a finite entry whose sum reaches SATURATED
        for (uint256 i = 5; i < RDP_ORDERS - 1; ++i) curve[i] = 1e12; // RDP 1000: finite
        uint256 jobEpsilon = jobs.epsilonOf(curve, DELTA);
        _assertMatchesPython(jobEpsilon, PY_LOPSIDED_JOB, "the job, from its finite orders");
        _requestAs(curve);

        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(id);
        assertEq(ledger[0], type(uint64).max, "entry SATURATED: infinite");
        assertEq(ledger[1], type(uint64).max, "entry uint64 max: infinite");
        assertEq(ledger[2], type(uint64).max, "entry SATURATED + 1: infinite");
        assertEq(ledger[3], SATURATED - 1, "sum SATURATED - 1: finite, exact");
        assertEq(ledger[4], type(uint64).max, "sum SATURATED: infinite");
        for (uint256 i = 5; i < RDP_ORDERS - 1; ++i) assertEq(ledger[i], pub[i] + 1e12, "finite orders add");
        assertEq(ledger[23], pub[23] + 1_000_000, "the cheap order adds");
        _assertCurveEq(ledger, _charged(curve), "publication + curve, saturating");
        // ε from the finite orders only (here α = 1024 decides).
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(ledger, DELTA), "composed");
        _assertMatchesPython(jobs.composedEpsilon(id), PY_LOPSIDED_LEDGER, "Python");
    }

    function test_Saturation_SumReachingSaturated() public {
        uint64[RDP_ORDERS] memory pub = _publication();
        uint64[RDP_ORDERS] memory first = _lopsided();
        for (uint256 i; i < RDP_ORDERS - 1; ++i) first[i] = SATURATED - 1 - pub[i];
        _requestAs(first);
        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(id);
        for (uint256 i; i < RDP_ORDERS - 1; ++i) assertEq(ledger[i], SATURATED - 1, "one below the threshold");
        // One nano more at every order: each sum reaches SATURATED, except at α = 1024.
        uint64[RDP_ORDERS] memory ones;
        for (uint256 i; i < RDP_ORDERS; ++i) ones[i] = 1;
        _requestAs(ones);
        ledger = jobs.curveOf(id);
        for (uint256 i; i < RDP_ORDERS - 1; ++i) assertEq(ledger[i], type(uint64).max, "reached: saturated");
        assertEq(ledger[23], pub[23] + 1_000_000 + 1, "alpha 1024 still finite");
        _assertCurveEq(ledger, _charged(first, ones), "publication + both, saturating");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(ledger, DELTA), "composed from alpha 1024");
    }

    function test_Saturation_LaterJobsKeepItSaturated() public {
        _requestAs(_curveA()); // saturates α >= 48
        uint64[RDP_ORDERS] memory small = _gaussianCurve(1_000_000);
        _requestAs(small);
        _requestAs(small);
        uint64[RDP_ORDERS] memory ledger = jobs.curveOf(id);
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (i >= 14) assertEq(ledger[i], type(uint64).max, "stays saturated");
            else assertEq(ledger[i], _publication()[i] + _curveA()[i] + 2 * small[i], "finite orders add");
        }
        _assertCurveEq(ledger, _charged(_curveA(), small, small), "publication + A + 2 small");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(ledger, DELTA), "composed");
    }

    function test_Saturation_FailAndRefundNeverUnsaturate() public {
        uint64[RDP_ORDERS] memory small = _gaussianCurve(1_000_000); // finite everywhere
        uint256 early = _requestAs(small); // charged before the saturation
        uint64[RDP_ORDERS] memory big = _lopsided();
        big[0] = type(uint64).max;
        big[1] = SATURATED;
        for (uint256 i = 2; i < RDP_ORDERS - 1; ++i) big[i] = 1e9; // RDP 1
        uint256 saturating = _requestAs(big);
        uint256 late = _requestAs(small); // charged after the saturation
        uint64[RDP_ORDERS] memory expected = _charged(small, big, small);
        _assertCurveEq(jobs.curveOf(id), expected, "charged");
        assertEq(expected[0], type(uint64).max, "alpha 1.5 saturated");
        assertEq(expected[1], type(uint64).max, "alpha 2 saturated");

        // The saturating job leaves (nothing read): its finite entries leave, the lanes it
        // saturated stay saturated.
        vm.prank(runner);
        jobs.fail(saturating, "x", big, false);
        expected = _released(expected, big);
        _assertCurveEq(jobs.curveOf(id), expected, "after failing the saturating job");
        assertEq(jobs.curveOf(id)[0], type(uint64).max, "still saturated");
        assertEq(jobs.curveOf(id)[1], type(uint64).max, "still saturated");
        for (uint256 i = 2; i < RDP_ORDERS; ++i) {
            assertEq(jobs.curveOf(id)[i], _publication()[i] + 2 * small[i], "the others are exact again");
        }

        // A job charged before the saturation leaves: the saturated lanes do not move either.
        vm.prank(runner);
        jobs.fail(early, "x", small, false);
        // A job charged after it is taken back by its consumer (never accepted): the same.
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(late, small);
        expected = _saturatedLike(_publication(), big);
        _assertCurveEq(jobs.curveOf(id), expected, "the publication, alpha 1.5 and 2 saturated");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(expected, DELTA), "composed");
        assertGe(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "never below the publication's epsilon");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "every credit back");
    }

    function test_RevertWhen_NoFiniteOrder_RefusedByThePerJobCap() public {
        uint64[RDP_ORDERS] memory curve;
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = SATURATED;
        _expectRequestRevert(
            _request(curve), abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, type(uint256).max, JOB_CAP)
        );
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = i % 2 == 0 ? type(uint64).max : SATURATED + 7;
        _expectRequestRevert(
            _request(curve), abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, type(uint256).max, JOB_CAP)
        );
        // Even under the largest cap and budget.
        Policy memory loose = _jobPolicy();
        (loose.budget, loose.perJobCap) = (type(uint32).max, type(uint32).max);
        vm.prank(owner);
        cove.setPolicy(id, loose, bytes32(0));
        _expectRequestRevert(
            _request(curve),
            abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, type(uint256).max, type(uint32).max)
        );
        _assertCurveEq(jobs.curveOf(id), _publication(), "ledger untouched");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "no credit spent");
    }

    function test_RevertWhen_LedgerWouldHaveNoFiniteOrder() public {
        // The first job saturates every order but α = 1024; the second is finite except at
        // α = 1024 (its own ε is small, from α = 512): together nothing is finite.
        _requestAs(_saturatedBut(23));
        uint64[RDP_ORDERS] memory second;
        for (uint256 i; i < RDP_ORDERS; ++i) second[i] = 1_000_000;
        second[23] = SATURATED;
        assertLt(jobs.epsilonOf(second, DELTA), JOB_CAP, "within the cap alone");
        _expectRequestRevert(
            _request(second),
            abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, type(uint256).max, JOB_BUDGET)
        );
        _assertCurveEq(jobs.curveOf(id), _charged(_saturatedBut(23)), "unchanged");
    }

    // =============================================================== fail: rows read or not

    function test_Fail_RowsRead_RefundsTheCreditKeepsTheCharge() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        uint64[RDP_ORDERS] memory before = jobs.curveOf(id);
        uint256 epsilonBefore = jobs.composedEpsilon(id);
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobFailed(jobId, "diverged at epoch 3", true);
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(address(0), buyer, 1e18);
        vm.prank(runner);
        jobs.fail(jobId, "diverged at epoch 3", _curveA(), true);

        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Failed), "failed");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "credit refunded");
        _assertCurveEq(jobs.curveOf(id), before, "ledger unchanged");
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "publication + A");
        assertEq(jobs.composedEpsilon(id), epsilonBefore, "epsilon unchanged");

        // The kept charge still counts: B fits, A again does not.
        _requestAs(_curveB());
        _expectRequestRevert(_request(_curveA()), abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, 2_027_447, JOB_BUDGET));
    }

    function test_Fail_RowsRead_OnARequestedJob() public {
        uint64[RDP_ORDERS] memory small = _gaussianCurve(1_000_000);
        uint256 jobId = _requestAs(small);
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobFailed(jobId, "read the rows, then refused the spec", true);
        vm.prank(runner);
        jobs.fail(jobId, "read the rows, then refused the spec", small, true);
        _assertCurveEq(jobs.curveOf(id), _charged(small), "still charged");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "credit refunded");
        // Closed either way.
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, JobStatus.Failed));
        vm.prank(runner);
        jobs.fail(jobId, "again", small, false);
    }

    function test_Fail_NoRowsRead_ReleasesExactly() public {
        uint64[RDP_ORDERS] memory small = _gaussianCurve(1_000_000); // no order saturates
        uint256 jobId = _requestAs(small);
        _accept(jobId);
        _assertCurveEq(jobs.curveOf(id), _charged(small), "charged");
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobFailed(jobId, "oom", false);
        vm.prank(runner);
        jobs.fail(jobId, "oom", small, false);
        _assertCurveEq(jobs.curveOf(id), _publication(), "back to the publication alone");
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "the publication's epsilon");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "credit refunded");
    }

    function test_Fail_MixedRowsRead_LedgerIsExact() public {
        uint64[RDP_ORDERS] memory g1 = _gaussianCurve(1_000_000);
        uint64[RDP_ORDERS] memory g2 = _gaussianCurve(2_000_000);
        uint64[RDP_ORDERS] memory g3 = _gaussianCurve(3_000_000);
        uint256 j1 = _requestAs(g1);
        uint256 j2 = _requestAs(g2);
        uint256 j3 = _requestAs(g3);
        _accept(j2);
        vm.startPrank(runner);
        jobs.fail(j1, "read", g1, true); // kept
        jobs.fail(j2, "not read", g2, false); // released
        vm.stopPrank();
        _assertCurveEq(jobs.curveOf(id), _charged(g1, g3), "publication + g1 + g3");
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(j3, g3); // never accepted: released
        _assertCurveEq(jobs.curveOf(id), _charged(g1), "publication + g1");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(_charged(g1), DELTA), "composed");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "all three credits back");
    }

    function test_RevertWhen_Fail_RowsRead_SameChecks() public {
        uint256 jobId = _requestAs(_curveA());
        address[3] memory callers = [buyer, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, callers[i], runner));
            vm.prank(callers[i]);
            jobs.fail(jobId, "x", _curveA(), true);
        }
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        vm.prank(runner);
        jobs.fail(jobId, "x", _curveB(), true);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 2));
        vm.prank(runner);
        jobs.fail(2, "x", _curveA(), true);
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "unchanged");
    }

    // =============================================================== helpers

    /// @notice SATURATED at orders 0 to 22, RDP 0.001 at α = 1024: small ε, one cheap order.
    function _lopsided() internal pure returns (uint64[RDP_ORDERS] memory curve) {
        curve = _saturatedBut(23);
    }

    /// @notice SATURATED everywhere but order `cheap`, where it is RDP 0.001.
    function _saturatedBut(uint256 cheap) internal pure returns (uint64[RDP_ORDERS] memory curve) {
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = SATURATED;
        curve[cheap] = 1_000_000;
    }

    function _expectRequestRevert(JobRequest memory r, bytes memory err) internal {
        uint256 count = jobs.jobCount();
        vm.expectRevert(err);
        vm.prank(buyer);
        jobs.request(r);
        assertEq(jobs.jobCount(), count, "no job recorded");
    }

    /// @dev `onChain` (micro-ε, rounded up) is within 1 of the float `pythonNano` (1e-9 micro-ε) and not below it.
    function _assertMatchesPython(uint256 onChain, uint256 pythonNano, string memory what) internal pure {
        assertGe(onChain * 1e9, pythonNano, what);
        assertLe(onChain * 1e9, pythonNano + 1e9, what);
    }
}
