// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Vm} from "./utils/Test.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {Merkle} from "./utils/Merkle.sol";
import {Cove} from "../src/Cove.sol";
import {ComputeJobs, JobRequest, DpParams, Job, JobStatus, RDP_ORDERS} from "../src/ComputeJobs.sol";
import {DatasetRegistry} from "../src/modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";

/// @notice ComputeJobs: the wiring with the hub, every path of request, accept, complete,
/// fail and refund, their events, and every custom error.
contract ComputeJobsTest is JobsTest {
    bytes32 internal constant WEIGHTS_DIGEST = keccak256("weights cid");
    bytes32 internal constant WEIGHTS_HASH = keccak256("weights");
    bytes32 internal constant PROVENANCE_HASH = keccak256("provenance");
    bytes32 internal constant PROVENANCE_DIGEST = keccak256("provenance digest");

    // =============================================================== wiring

    function test_Wiring_HubDeploysComputeJobs() public view {
        assertEq(jobs.hub(), address(cove), "jobs.hub");
        assertEq(cove.computeJobs(), address(jobs), "cove.computeJobs");
        assertEq(jobs.CREDIT(), cove.CREDIT(), "same credit unit");
        assertEq(jobs.jobCount(), 0, "no jobs");
        // A fresh ledger holds the publication's charge (its noisy row count), nothing else.
        _assertCurveEq(jobs.curveOf(id), _publication(), "ledger = the publication's charge");
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "the publication's epsilon");
        assertEq(RDP_ORDERS, 24, "24 orders");
        assertEq(jobs.SATURATED(), SATURATED, "SATURATED = 2^42 - 2");
        uint256[RDP_ORDERS] memory alphas = jobs.rdpOrders();
        uint256[RDP_ORDERS] memory twiceAlpha = _doubledOrders();
        for (uint256 i; i < RDP_ORDERS; ++i) assertEq(alphas[i], twiceAlpha[i] * 0.5e18, "order");
        assertEq(alphas[0], 1.5e18, "first order");
        assertEq(alphas[2], 2.5e18, "third order");
        assertEq(alphas[15], 64e18, "sixteenth order");
        assertEq(alphas[16], 80e18, "seventeenth order");
        assertEq(alphas[23], 1024e18, "last order");
    }

    function test_Sizes_WithinEip170AndEip3860() public view {
        assertLt(address(cove).code.length, 24_576, "hub runtime under 24 KiB");
        assertLt(type(Cove).creationCode.length, 49_152, "hub init code under 48 KiB");
        assertLt(address(jobs).code.length, 24_576, "ComputeJobs runtime under 24 KiB");
    }

    function test_JobTermsOf_ReadsDatasetAndPolicy() public {
        (address datatoken, uint32 version, Policy memory policy) = cove.jobTermsOf(id);
        assertEq(datatoken, address(credits), "datatoken");
        assertEq(version, 1, "version");
        _assertPolicyEq(policy, _jobPolicy());
        Policy memory next = _jobPolicy();
        next.budget = 5_000_000;
        vm.prank(owner);
        cove.setPolicy(id, next, bytes32(0));
        (, version, policy) = cove.jobTermsOf(id);
        assertEq(version, 2, "bumped");
        _assertPolicyEq(policy, next);
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 2));
        cove.jobTermsOf(2);
    }

    function test_RevertWhen_OpenLedgerNotHub() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotHub.selector, owner));
        vm.prank(owner);
        jobs.openLedger(2, COUNT_NOISE, DELTA, JOB_BUDGET);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotHub.selector, address(this)));
        jobs.openLedger(2, COUNT_NOISE, DELTA, JOB_BUDGET);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 2));
        jobs.curveOf(2);
    }

    function test_RevertWhen_LedgerOpenedTwice() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.LedgerAlreadyOpen.selector, id));
        vm.prank(address(cove));
        jobs.openLedger(id, COUNT_NOISE, DELTA, JOB_BUDGET);
        _assertCurveEq(jobs.curveOf(id), _publication(), "charged once");
    }

    function test_OpenLedger_ByHub_ChargesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.LedgerOpened(7, COUNT_NOISE, PUBLICATION_EPSILON);
        vm.prank(address(cove));
        jobs.openLedger(7, COUNT_NOISE, DELTA, JOB_BUDGET);
        _assertCurveEq(jobs.curveOf(7), _publication(), "the publication's charge");
    }

    function test_RevertWhen_OpenLedger_ZeroCountNoise() public {
        vm.expectRevert(ComputeJobs.ZeroCountNoise.selector);
        vm.prank(address(cove));
        jobs.openLedger(7, 0, DELTA, JOB_BUDGET);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 7));
        jobs.curveOf(7);
    }

    function test_RevertWhen_OpenLedger_PublicationAboveBudget() public {
        uint32 below = PUBLICATION_EPSILON - 1;
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, 7, PUBLICATION_EPSILON, below));
        vm.prank(address(cove));
        jobs.openLedger(7, COUNT_NOISE, DELTA, below);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 7));
        jobs.curveOf(7);
        // Exactly at the budget is taken.
        vm.prank(address(cove));
        jobs.openLedger(7, COUNT_NOISE, DELTA, PUBLICATION_EPSILON);
        _assertCurveEq(jobs.curveOf(7), _publication(), "opened at the budget");
    }

    function test_RevertWhen_SpendOrRefundCreditNotComputeJobs() public {
        address[4] memory callers = [owner, buyer, runner, address(this)];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(Cove.NotComputeJobs.selector, callers[i]));
            vm.prank(callers[i]);
            cove.spendCredit(id, buyer);
            vm.expectRevert(abi.encodeWithSelector(Cove.NotComputeJobs.selector, callers[i]));
            vm.prank(callers[i]);
            cove.refundCredit(id, callers[i]);
        }
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "untouched");
    }

    function test_SpendAndRefundCredit_ByComputeJobs() public {
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(buyer, address(0), 1e18);
        vm.prank(address(jobs));
        cove.spendCredit(id, buyer);
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "burned one");

        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(address(0), stranger, 1e18);
        vm.prank(address(jobs));
        cove.refundCredit(id, stranger);
        assertEq(credits.balanceOf(stranger), 1e18, "minted one");
        assertEq(credits.totalSupply(), START_CREDITS * 1e18, "supply");

        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 9));
        vm.prank(address(jobs));
        cove.spendCredit(9, buyer);
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 9));
        vm.prank(address(jobs));
        cove.refundCredit(9, buyer);
    }

    // =============================================================== request

    function test_Request_StoresJobSpendsCreditChargesLedgerEmits() public {
        JobRequest memory r = _request(_curveA());
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobRequested(
            1, id, buyer, r.specHash, r.spec, r.dp, keccak256(abi.encode(r.rdpCurve)), r.modelFamily, r.deadline, r.encryptionKey
        );
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(buyer, address(0), 1e18);
        uint256 jobId = _send(buyer, r);

        assertEq(jobId, 1, "ids from 1");
        assertEq(jobs.jobCount(), 1, "count");
        Job memory job = jobs.jobOf(jobId);
        assertEq(job.consumer, buyer, "consumer");
        assertEq(job.datasetId, id, "datasetId");
        assertEq(job.policyVersion, 1, "policyVersion");
        assertEq(job.curveHash, keccak256(abi.encode(_curveA())), "curveHash = keccak256(abi.encode(curve))");
        assertEq(uint256(job.status), uint256(JobStatus.Requested), "status");
        assertEq(job.deadline, r.deadline, "deadline");
        assertEq(job.runner, address(0), "no runner yet");
        assertEq(job.weightsDigest, bytes32(0), "no results");

        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "one credit spent");
        assertEq(credits.totalSupply(), (START_CREDITS - 1) * 1e18, "burned, not transferred");
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "ledger = publication + the curve");
        // A saturates the orders from α = 48 up: they stay infinite on the ledger.
        for (uint256 i; i < RDP_ORDERS; ++i) {
            assertEq(jobs.curveOf(id)[i] == type(uint64).max, i >= 14, "saturated exactly where A is");
        }
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(_charged(_curveA()), DELTA), "composed = publication + job");
        assertEq(jobs.composedEpsilon(id), 1_168_155, "Python: 1168154.13 micro-epsilon");
    }

    function test_Request_EmitsJobRequestedThenBurn() public {
        vm.recordLogs();
        _requestAs(_curveA());
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "JobRequested, Transfer");
        assertEq(logs[0].emitter, address(jobs), "jobs first");
        assertEq(logs[0].topics[0], ComputeJobs.JobRequested.selector, "JobRequested");
        assertEq(logs[0].topics[1], bytes32(uint256(1)), "jobId topic");
        assertEq(logs[0].topics[2], bytes32(id), "datasetId topic");
        assertEq(logs[0].topics[3], bytes32(uint256(uint160(buyer))), "consumer topic");
        assertEq(logs[1].emitter, address(credits), "then the burn");
    }

    function test_Request_TwoJobsCompose() public {
        uint256 first = _requestAs(_curveA());
        uint256 second = _requestAs(_curveB());
        assertEq(second, first + 1, "sequential ids");
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA(), _curveB()), "ledger = publication + A + B");
        uint256 composed = jobs.composedEpsilon(id);
        assertEq(composed, jobs.epsilonOf(_charged(_curveA(), _curveB()), DELTA), "composed");
        uint256 summed = PUBLICATION_EPSILON + jobs.epsilonOf(_curveA(), DELTA) + jobs.epsilonOf(_curveB(), DELTA);
        assertLt(composed, summed, "RDP composition beats summing epsilons");
        assertGt(composed, jobs.epsilonOf(_curveA(), DELTA), "but costs more than one job");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 2) * 1e18, "two credits");
    }

    function test_Request_RecordsPolicyVersion() public {
        Policy memory next = _jobPolicy();
        next.maxEpochs = 30;
        vm.prank(owner);
        cove.setPolicy(id, next, bytes32(0));
        uint256 jobId = _requestAs(_curveA());
        assertEq(jobs.jobOf(jobId).policyVersion, 2, "version at request");
    }

    function test_Request_AcceptsEveryKeyForm() public {
        JobRequest memory r = _request(_curveA());
        r.encryptionKey = KEY65;
        _send(buyer, r);
        r.encryptionKey = KEY33;
        r.encryptionKey[0] = 0x03;
        _send(buyer, r);
        assertEq(jobs.jobCount(), 2, "both");
    }

    function test_Request_BoundaryParameters() public {
        JobRequest memory r = _request(_curveA());
        r.dp.epochs = 20; // == maxEpochs
        r.dp.sampleRate = 1e9; // full batch
        r.dp.noiseMultiplier = 1;
        r.dp.steps = 1;
        r.dp.clipNorm = 1;
        r.deadline = uint64(block.timestamp + 1);
        _send(buyer, r);
        assertEq(jobs.jobCount(), 1, "accepted at the boundaries");
    }

    function test_Request_ExactlyAtBudgetAndCap() public {
        // A policy whose cap is exactly the job's ε and whose budget is exactly the composed
        // ε of the publication and the job.
        uint256 epsilon = jobs.epsilonOf(_curveA(), DELTA);
        uint256 composed = jobs.epsilonOf(_charged(_curveA()), DELTA);
        assertGt(composed, epsilon, "the publication costs something");
        Policy memory tight = _jobPolicy();
        // casting to 'uint32' is safe because both are about 1.17e6
        // forge-lint: disable-next-item(unsafe-typecast)
        (tight.budget, tight.perJobCap) = (uint32(composed), uint32(epsilon));
        vm.prank(owner);
        cove.setPolicy(id, tight, bytes32(0));
        _requestAs(_curveA());
        assertEq(jobs.composedEpsilon(id), composed, "at the budget");
    }

    function test_RevertWhen_Request_OneAboveBudgetOrCap() public {
        uint256 epsilon = jobs.epsilonOf(_curveA(), DELTA);
        uint256 composed = jobs.epsilonOf(_charged(_curveA()), DELTA);
        Policy memory tight = _jobPolicy();
        // casting to 'uint32' is safe because both are about 1.17e6
        // forge-lint: disable-next-item(unsafe-typecast)
        (tight.budget, tight.perJobCap) = (uint32(composed - 1), uint32(epsilon));
        vm.prank(owner);
        cove.setPolicy(id, tight, bytes32(0));
        _expectRequestRevert(
            _request(_curveA()), abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, composed, composed - 1)
        );
        // forge-lint: disable-next-item(unsafe-typecast)
        (tight.budget, tight.perJobCap) = (uint32(composed), uint32(epsilon - 1));
        vm.prank(owner);
        cove.setPolicy(id, tight, bytes32(0));
        _expectRequestRevert(
            _request(_curveA()), abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, epsilon, epsilon - 1)
        );
        _assertCurveEq(jobs.curveOf(id), _publication(), "nothing charged");
    }

    function test_Request_WithAllowlistAndModelFamilies() public {
        (Policy memory policy, bytes32[] memory allow, bytes32[] memory families) = _restrictedPolicy();
        vm.prank(owner);
        cove.setPolicy(id, policy, bytes32(0));

        JobRequest memory r = _request(_curveA());
        r.modelFamily = keccak256("logreg");
        r.allowProof = Merkle.proof(allow, 1); // buyer
        r.familyProof = Merkle.proof(families, 2); // logreg
        uint256 jobId = _send(buyer, r);
        assertEq(jobs.jobOf(jobId).consumer, buyer, "allowed");
    }

    // --------------------------------------------------------------- request errors

    function test_RevertWhen_Request_UnknownDataset() public {
        JobRequest memory r = _request(_curveA());
        r.datasetId = 2;
        _expectRequestRevert(r, abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 2));
        r.datasetId = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 0));
    }

    function test_RevertWhen_Request_PolicyExpired() public {
        Policy memory policy = _jobPolicy();
        policy.expiry = uint40(block.timestamp + 1 hours);
        vm.prank(owner);
        cove.setPolicy(id, policy, bytes32(0));
        vm.warp(block.timestamp + 1 hours); // at the expiry: still live
        _requestAs(_curveA());
        vm.warp(block.timestamp + 1);
        _expectRequestRevert(
            _request(_curveA()), abi.encodeWithSelector(ComputeJobs.PolicyExpired.selector, id, policy.expiry)
        );
    }

    function test_RevertWhen_Request_NotAllowlisted() public {
        (Policy memory policy, bytes32[] memory allow, bytes32[] memory families) = _restrictedPolicy();
        vm.prank(owner);
        cove.setPolicy(id, policy, bytes32(0));
        JobRequest memory r = _request(_curveA());
        r.modelFamily = keccak256("mlp");
        r.familyProof = Merkle.proof(families, 0);

        // No proof, and another member's proof.
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.NotAllowlisted.selector, id, buyer));
        r.allowProof = Merkle.proof(allow, 0);
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.NotAllowlisted.selector, id, buyer));
        // A non-member holding credits, with the buyer's proof.
        vm.prank(buyer);
        assertTrue(credits.transfer(stranger, 1e18), "transfer");
        r.allowProof = Merkle.proof(allow, 1);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotAllowlisted.selector, id, stranger));
        vm.prank(stranger);
        jobs.request(r);
    }

    function test_RevertWhen_Request_ModelFamilyNotAllowed() public {
        (Policy memory policy, bytes32[] memory allow, bytes32[] memory families) = _restrictedPolicy();
        vm.prank(owner);
        cove.setPolicy(id, policy, bytes32(0));
        JobRequest memory r = _request(_curveA());
        r.allowProof = Merkle.proof(allow, 1);

        r.modelFamily = keccak256("transformer"); // not on the list
        r.familyProof = Merkle.proof(families, 0);
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ModelFamilyNotAllowed.selector, id, r.modelFamily));
        r.modelFamily = keccak256("logreg"); // on the list, wrong proof
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ModelFamilyNotAllowed.selector, id, r.modelFamily));
        r.familyProof = new bytes32[](0); // no proof
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ModelFamilyNotAllowed.selector, id, r.modelFamily));
    }

    function test_RevertWhen_Request_InvalidEpochs() public {
        JobRequest memory r = _request(_curveA());
        r.dp.epochs = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEpochs.selector, 0, 20));
        r.dp.epochs = 21;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEpochs.selector, 21, 20));
    }

    function test_RevertWhen_Request_InvalidDpParams() public {
        JobRequest memory r = _request(_curveA());
        r.dp.noiseMultiplier = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ZeroNoiseMultiplier.selector));

        r = _request(_curveA());
        r.dp.sampleRate = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidSampleRate.selector, 0));
        r.dp.sampleRate = 1e9 + 1;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidSampleRate.selector, 1e9 + 1));
        r.dp.sampleRate = type(uint32).max;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidSampleRate.selector, type(uint32).max));

        r = _request(_curveA());
        r.dp.steps = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ZeroSteps.selector));

        r = _request(_curveA());
        r.dp.clipNorm = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.ZeroClipNorm.selector));
    }

    function test_RevertWhen_Request_ZeroRdpEntry() public {
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint64[RDP_ORDERS] memory curve = _curveA();
            curve[i] = 0;
            _expectRequestRevert(_request(curve), abi.encodeWithSelector(ComputeJobs.ZeroRdpEntry.selector, i));
        }
        _expectRequestRevert(_request(_zeroCurve()), abi.encodeWithSelector(ComputeJobs.ZeroRdpEntry.selector, 0));
    }

    function test_RevertWhen_Request_JobEpsilonAboveCap() public {
        uint64[RDP_ORDERS] memory curve = _gaussianCurve(60_000_000); // ρ 0.06
        uint256 epsilon = jobs.epsilonOf(curve, DELTA);
        assertGt(epsilon, JOB_CAP, "above the cap");
        _expectRequestRevert(
            _request(curve), abi.encodeWithSelector(ComputeJobs.JobEpsilonAboveCap.selector, epsilon, JOB_CAP)
        );
    }

    function test_RevertWhen_Request_BudgetExceeded() public {
        _requestAs(_curveA());
        _requestAs(_curveB());
        uint64[RDP_ORDERS] memory wouldBe = _charged(_curveA(), _curveB(), _curveA());
        uint256 epsilon = jobs.epsilonOf(wouldBe, DELTA);
        // Python (exchange.ml.accounting.epsilon on the same integer curves, composed with
        // the publication's) gives ε 2.027446106 (at α = 12).
        assertEq(epsilon, 2_027_447, "publication + A + B + A");
        _expectRequestRevert(
            _request(_curveA()), abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, epsilon, JOB_BUDGET)
        );
        // The ledger and the credits are as before.
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA(), _curveB()), "ledger unchanged");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 2) * 1e18, "credit kept");
    }

    function test_RevertWhen_Request_DeadlineInPast() public {
        JobRequest memory r = _request(_curveA());
        r.deadline = uint64(block.timestamp);
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.DeadlineInPast.selector, r.deadline, block.timestamp));
        r.deadline = 0;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.DeadlineInPast.selector, 0, block.timestamp));
    }

    function test_RevertWhen_Request_InvalidSpecLength() public {
        JobRequest memory r = _request(_curveA());
        uint256 max = jobs.MAX_SPEC_BYTES();
        r.spec = "";
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidSpecLength.selector, 0, max));
        r.spec = new bytes(max + 1);
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidSpecLength.selector, max + 1, max));
        // Control: the longest allowed spec is taken, and the event carries it whole.
        r.spec = new bytes(max);
        r.spec[max - 1] = 0x2a;
        vm.recordLogs();
        _send(buyer, r);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool found;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != ComputeJobs.JobRequested.selector) continue;
            (, bytes memory spec,,,,,) =
                abi.decode(logs[i].data, (bytes32, bytes, DpParams, bytes32, bytes32, uint64, bytes));
            assertEq(spec, r.spec, "spec in the event");
            found = true;
        }
        assertTrue(found, "JobRequested emitted");
    }

    function test_RevertWhen_Request_InvalidEncryptionKey() public {
        JobRequest memory r = _request(_curveA());
        r.encryptionKey = "";
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 0, bytes1(0)));
        r.encryptionKey = new bytes(32);
        r.encryptionKey[0] = 0x02;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 32, bytes1(0x02)));
        r.encryptionKey = KEY33;
        r.encryptionKey[0] = 0x04; // a compressed key's length with the uncompressed prefix
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 33, bytes1(0x04)));
        r.encryptionKey = KEY65;
        r.encryptionKey[0] = 0x02;
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 65, bytes1(0x02)));
        r.encryptionKey = new bytes(64); // raw x || y without the prefix
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 64, bytes1(0)));
    }

    function test_RevertWhen_Request_NoCredit() public {
        _expectRequestRevertAs(stranger, _request(_curveA()), abi.encodeWithSelector(ComputeJobs.NoCredit.selector, id, stranger));
        // Less than a whole credit is no credit.
        vm.prank(buyer);
        assertTrue(credits.transfer(stranger, 1e18 - 1), "transfer");
        _expectRequestRevertAs(stranger, _request(_curveA()), abi.encodeWithSelector(ComputeJobs.NoCredit.selector, id, stranger));
        // The buyer spends every credit, then has none.
        vm.prank(buyer);
        assertTrue(credits.transfer(stranger, 1), "transfer");
        for (uint256 i; i < START_CREDITS - 1; ++i) _requestAs(_gaussianCurve(1_000_000));
        assertEq(credits.balanceOf(buyer), 0, "all spent");
        _expectRequestRevert(_request(_curveA()), abi.encodeWithSelector(ComputeJobs.NoCredit.selector, id, buyer));
    }

    function test_RevertWhen_Request_CurveWordNotUint64() public {
        bytes memory data = abi.encodeCall(ComputeJobs.request, (_request(_curveA())));
        // The request is one tuple with a dynamic part: selector, head offset, then the fields:
        // datasetId, specHash, spec (an offset word), dp (5 words), rdpCurve (24 words) ...
        uint256 curveWord = 4 + 32 + 32 * 8; // first curve word
        assertEq(uint256(_word(data, curveWord)), _curveA()[0], "found the curve");
        _setWord(data, curveWord + 32 * 3, bytes32(uint256(1) << 64)); // entry 3 = 2^64
        vm.prank(buyer);
        (bool ok,) = address(jobs).call(data);
        assertFalse(ok, "dirty uint64 refused");
        assertEq(jobs.jobCount(), 0, "no job");
    }

    function test_Request_ChecksComeBeforeEffects_NothingOnRevert() public {
        uint256 supply = credits.totalSupply();
        JobRequest memory r = _request(_curveA());
        r.encryptionKey = "";
        _expectRequestRevert(r, abi.encodeWithSelector(ComputeJobs.InvalidEncryptionKey.selector, 0, bytes1(0)));
        assertEq(credits.totalSupply(), supply, "no credit burned");
        _assertCurveEq(jobs.curveOf(id), _publication(), "ledger untouched");
        assertEq(jobs.jobCount(), 0, "no job");
    }

    // =============================================================== accept

    function test_Accept_ByRunner_Emits() public {
        uint256 jobId = _requestAs(_curveA());
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobAccepted(jobId, runner);
        _accept(jobId);
        Job memory job = jobs.jobOf(jobId);
        assertEq(uint256(job.status), uint256(JobStatus.Accepted), "status");
        assertEq(job.runner, runner, "runner");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "no credit moves");
    }

    function test_Accept_AtTheDeadline() public {
        uint256 jobId = _requestAs(_curveA());
        vm.warp(jobs.jobOf(jobId).deadline);
        _accept(jobId);
    }

    function test_Accept_ReadsTheRunnerAtAcceptTime() public {
        uint256 jobId = _requestAs(_curveA());
        address newRunner = address(0x2222);
        vm.prank(owner);
        cove.setRunner(id, newRunner);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, runner, newRunner));
        _accept(jobId);
        vm.prank(newRunner);
        jobs.accept(jobId);
        assertEq(jobs.jobOf(jobId).runner, newRunner, "new runner");
    }

    function test_RevertWhen_Accept_NotRunner() public {
        uint256 jobId = _requestAs(_curveA());
        address[3] memory callers = [buyer, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, callers[i], runner));
            vm.prank(callers[i]);
            jobs.accept(jobId);
        }
    }

    function test_RevertWhen_Accept_Twice() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobAlreadyAccepted.selector, jobId, runner));
        _accept(jobId);
        // Anyone else gets the same answer (the claim is taken).
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobAlreadyAccepted.selector, jobId, runner));
        vm.prank(stranger);
        jobs.accept(jobId);
    }

    function test_RevertWhen_Accept_UnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 0));
        _accept(0);
        _requestAs(_curveA());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 2));
        _accept(2);
    }

    function test_RevertWhen_Accept_Closed() public {
        uint256 done = _requestAs(_curveA());
        _accept(done);
        _complete(done);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, done, JobStatus.Completed));
        _accept(done);

        uint256 failed = _requestAs(_curveA());
        vm.prank(runner);
        jobs.fail(failed, "bad spec", _curveA(), false);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, failed, JobStatus.Failed));
        _accept(failed);

        uint256 refunded = _requestAs(_curveB());
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(refunded, _curveB());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, refunded, JobStatus.Refunded));
        _accept(refunded);
    }

    function test_RevertWhen_Accept_AfterDeadline() public {
        uint256 jobId = _requestAs(_curveA());
        uint64 deadline = jobs.jobOf(jobId).deadline;
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.DeadlinePassed.selector, jobId, deadline));
        _accept(jobId);
    }

    // =============================================================== complete

    function test_Complete_StoresHashesEmits() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobCompleted(jobId, WEIGHTS_DIGEST, WEIGHTS_HASH, PROVENANCE_HASH, PROVENANCE_DIGEST);
        _complete(jobId);

        Job memory job = jobs.jobOf(jobId);
        assertEq(uint256(job.status), uint256(JobStatus.Completed), "status");
        assertEq(job.weightsDigest, WEIGHTS_DIGEST, "weightsDigest");
        assertEq(job.weightsHash, WEIGHTS_HASH, "weightsHash");
        assertEq(job.provenanceHash, PROVENANCE_HASH, "provenanceHash");
        assertEq(job.runner, runner, "runner kept");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "the credit stays spent");
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "the release stays charged");
    }

    function test_Complete_AfterDeadlineUntilRefunded() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        vm.warp(block.timestamp + 30 days);
        _complete(jobId);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, JobStatus.Completed));
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
    }

    function test_Complete_ByAcceptingRunnerAfterRunnerChange() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        address newRunner = address(0x2222);
        vm.prank(owner);
        cove.setRunner(id, newRunner);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, newRunner, runner));
        vm.prank(newRunner);
        jobs.complete(jobId, WEIGHTS_DIGEST, WEIGHTS_HASH, PROVENANCE_HASH, PROVENANCE_DIGEST);
        _complete(jobId);
    }

    function test_RevertWhen_Complete_NotAccepted() public {
        uint256 jobId = _requestAs(_curveA());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotAccepted.selector, jobId));
        _complete(jobId);
    }

    function test_RevertWhen_Complete_Twice() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        _complete(jobId);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, JobStatus.Completed));
        _complete(jobId);
    }

    function test_RevertWhen_Complete_UnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 5));
        _complete(5);
    }

    function test_RevertWhen_Complete_NotTheAcceptingRunner() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        address[3] memory callers = [buyer, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, callers[i], runner));
            vm.prank(callers[i]);
            jobs.complete(jobId, WEIGHTS_DIGEST, WEIGHTS_HASH, PROVENANCE_HASH, PROVENANCE_DIGEST);
        }
    }

    function test_RevertWhen_Complete_EmptyResultHash() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        vm.startPrank(runner);
        vm.expectRevert(ComputeJobs.EmptyResultHash.selector);
        jobs.complete(jobId, 0, WEIGHTS_HASH, PROVENANCE_HASH, PROVENANCE_DIGEST);
        vm.expectRevert(ComputeJobs.EmptyResultHash.selector);
        jobs.complete(jobId, WEIGHTS_DIGEST, 0, PROVENANCE_HASH, PROVENANCE_DIGEST);
        vm.expectRevert(ComputeJobs.EmptyResultHash.selector);
        jobs.complete(jobId, WEIGHTS_DIGEST, WEIGHTS_HASH, 0, PROVENANCE_DIGEST);
        vm.expectRevert(ComputeJobs.EmptyResultHash.selector);
        jobs.complete(jobId, WEIGHTS_DIGEST, WEIGHTS_HASH, PROVENANCE_HASH, 0);
        vm.stopPrank();
    }

    function test_RevertWhen_Complete_AfterFailOrRefund() public {
        uint256 failed = _requestAs(_curveA());
        _accept(failed);
        vm.prank(runner);
        jobs.fail(failed, "oom", _curveA(), false);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, failed, JobStatus.Failed));
        _complete(failed);

        uint256 refunded = _requestAs(_curveA());
        _accept(refunded);
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(refunded, _curveA());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, refunded, JobStatus.Refunded));
        _complete(refunded);
    }

    // =============================================================== fail

    function test_Fail_Requested_ByDatasetRunner_RefundsAndReleases() public {
        uint256 keep = _requestAs(_curveB());
        uint256 jobId = _requestAs(_curveA());
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobFailed(jobId, "spec uses a layer the runner refuses", false);
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(address(0), buyer, 1e18);
        vm.prank(runner);
        jobs.fail(jobId, "spec uses a layer the runner refuses", _curveA(), false);

        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Failed), "status");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "credit back");
        // Only the publication and the live job stay charged; A's saturated orders (α >= 48)
        // stay saturated: a lane's true sum is lost once it saturates.
        _assertCurveEq(jobs.curveOf(id), _saturatedLike(_charged(_curveB()), _curveA()), "A left the ledger");
        _assertCurveEq(jobs.curveOf(id), _released(_charged(_curveB(), _curveA()), _curveA()), "the same");
        assertEq(uint256(jobs.jobOf(keep).status), uint256(JobStatus.Requested), "other job untouched");
    }

    function test_Fail_Accepted_ByAcceptingRunner() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        address newRunner = address(0x2222);
        vm.prank(owner);
        cove.setRunner(id, newRunner);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, newRunner, runner));
        vm.prank(newRunner);
        jobs.fail(jobId, "x", _curveA(), false);
        vm.prank(runner);
        jobs.fail(jobId, "sandbox timeout", _curveA(), false);
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "refunded");
        // Released: the publication's charge at the orders A left finite; the orders A
        // saturated stay infinite, so ε comes from α <= 32 now (never less than before).
        uint64[RDP_ORDERS] memory rest = _saturatedLike(_publication(), _curveA());
        _assertCurveEq(jobs.curveOf(id), rest, "released");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(rest, DELTA), "the publication alone, at alpha <= 32");
        assertGt(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "saturation only ever raises epsilon");
        // exchange.ml.accounting.epsilon(pub[:14] + [2**64 - 1] * 10, 1e-6): 303715.0002 micro-ε (at α = 32).
        assertEq(jobs.composedEpsilon(id), 303_716, "Python");
        assertLt(jobs.composedEpsilon(id), jobs.epsilonOf(_charged(_curveA()), DELTA), "but the job's charge is gone");
    }

    function test_Fail_Requested_ByNewRunner() public {
        uint256 jobId = _requestAs(_curveA());
        address newRunner = address(0x2222);
        vm.prank(owner);
        cove.setRunner(id, newRunner);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, runner, newRunner));
        vm.prank(runner);
        jobs.fail(jobId, "x", _curveA(), false);
        vm.prank(newRunner);
        jobs.fail(jobId, "x", _curveA(), false);
    }

    function test_Fail_AfterDeadline() public {
        uint256 jobId = _requestAs(_curveA());
        vm.warp(block.timestamp + 10 days);
        vm.prank(runner);
        jobs.fail(jobId, "expired before it was claimed", _curveA(), false);
        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Failed), "failed");
    }

    function test_Fail_FreesBudgetForTheNextJob() public {
        _requestAs(_curveA());
        uint256 second = _requestAs(_curveB());
        _expectRequestRevert(_request(_curveA()), abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, id, 2_027_447, JOB_BUDGET));
        vm.prank(runner);
        jobs.fail(second, "oom", _curveB(), false);
        _requestAs(_curveA()); // A + A fits once B is gone
        // (B's saturated orders, α >= 128, are among A's own.)
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA(), _curveA()), "publication + A + A");
        assertEq(jobs.composedEpsilon(id), 1_663_852, "Python: 1663851.99 micro-epsilon");
    }

    function test_RevertWhen_Fail_NotRunner() public {
        uint256 jobId = _requestAs(_curveA());
        address[3] memory callers = [buyer, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, callers[i], runner));
            vm.prank(callers[i]);
            jobs.fail(jobId, "x", _curveA(), false);
        }
    }

    function test_RevertWhen_Fail_UnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 1));
        vm.prank(runner);
        jobs.fail(1, "x", _curveA(), false);
    }

    function test_RevertWhen_Fail_Closed() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        _complete(jobId);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, jobId, JobStatus.Completed));
        vm.prank(runner);
        jobs.fail(jobId, "x", _curveA(), false);

        uint256 failed = _requestAs(_curveB());
        vm.prank(runner);
        jobs.fail(failed, "x", _curveB(), false);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, failed, JobStatus.Failed));
        vm.prank(runner);
        jobs.fail(failed, "x", _curveB(), false);
    }

    function test_RevertWhen_Fail_CurveMismatch() public {
        uint256 jobId = _requestAs(_curveA());
        _requestAs(_curveB());
        vm.startPrank(runner);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        jobs.fail(jobId, "x", _curveB(), false); // another job's curve
        uint64[RDP_ORDERS] memory larger = _curveA();
        larger[23] += 1;
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        jobs.fail(jobId, "x", larger, true);
        larger = _curveA();
        larger[0] += 1;
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        jobs.fail(jobId, "x", larger, false);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        jobs.fail(jobId, "x", _zeroCurve(), false);
        vm.stopPrank();
    }

    // =============================================================== refund

    function test_Refund_Requested_AfterDeadline_RefundsAndReleases() public {
        uint256 jobId = _requestAs(_curveA());
        vm.warp(jobs.jobOf(jobId).deadline + 1);
        vm.expectEmit(true, true, true, true, address(jobs));
        emit ComputeJobs.JobRefunded(jobId, buyer);
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(address(0), buyer, 1e18);
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Refunded), "status");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "credit back");
        _assertCurveEq(jobs.curveOf(id), _saturatedLike(_publication(), _curveA()), "released (A's saturated orders stay)");
    }

    function test_Refund_Accepted_AfterDeadline_RefundsButKeepsTheCharge() public {
        uint256 jobId = _requestAs(_curveA());
        _accept(jobId);
        vm.warp(jobs.jobOf(jobId).deadline + 1);
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Refunded), "status");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "credit back");
        // The runner may have trained and released; only its `fail` can release the charge.
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "still charged");
    }

    function test_Refund_AfterTransferringCredits_StillGoesToConsumer() public {
        uint256 jobId = _requestAs(_curveA());
        vm.prank(buyer);
        assertTrue(credits.transfer(stranger, (START_CREDITS - 1) * 1e18), "transfer");
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
        assertEq(credits.balanceOf(buyer), 1e18, "the job's credit");
    }

    function test_RevertWhen_Refund_BeforeOrAtDeadline() public {
        uint256 jobId = _requestAs(_curveA());
        uint64 deadline = jobs.jobOf(jobId).deadline;
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.DeadlineNotPassed.selector, jobId, deadline));
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.DeadlineNotPassed.selector, jobId, deadline));
        vm.prank(buyer);
        jobs.refund(jobId, _curveA());
    }

    function test_RevertWhen_Refund_NotConsumer() public {
        uint256 jobId = _requestAs(_curveA());
        vm.warp(block.timestamp + 2 days);
        address[3] memory callers = [runner, owner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobConsumer.selector, jobId, callers[i], buyer));
            vm.prank(callers[i]);
            jobs.refund(jobId, _curveA());
        }
    }

    function test_RevertWhen_Refund_UnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 3));
        vm.prank(buyer);
        jobs.refund(3, _curveA());
    }

    function test_RevertWhen_Refund_Closed() public {
        uint256 done = _requestAs(_curveA());
        _accept(done);
        _complete(done);
        uint256 failed = _requestAs(_curveB());
        vm.prank(runner);
        jobs.fail(failed, "x", _curveB(), false);
        uint256 refunded = _requestAs(_curveB());
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(refunded, _curveB());

        vm.startPrank(buyer);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, done, JobStatus.Completed));
        jobs.refund(done, _curveA());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, failed, JobStatus.Failed));
        jobs.refund(failed, _curveB());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobClosed.selector, refunded, JobStatus.Refunded));
        jobs.refund(refunded, _curveB());
        vm.stopPrank();
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "only the completed job's credit is spent");
    }

    function test_RevertWhen_Refund_CurveMismatch() public {
        uint256 jobId = _requestAs(_curveA());
        vm.warp(block.timestamp + 2 days);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.CurveMismatch.selector, jobId));
        vm.prank(buyer);
        jobs.refund(jobId, _curveB());
    }

    // =============================================================== views

    function test_RevertWhen_Views_Unknown() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 1));
        jobs.jobOf(1);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 2));
        jobs.curveOf(2);
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 2));
        jobs.composedEpsilon(2);
    }

    function test_ComposedEpsilon_FollowsThePolicyDelta() public {
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "fresh: the publication");
        _requestAs(_curveA());
        uint256 before = jobs.composedEpsilon(id);
        Policy memory looser = _jobPolicy();
        looser.delta = 1e13; // δ 1e-5: a smaller ε for the same curve
        vm.prank(owner);
        cove.setPolicy(id, looser, bytes32(0));
        assertLt(jobs.composedEpsilon(id), before, "larger delta, smaller epsilon");
        assertEq(jobs.composedEpsilon(id), jobs.epsilonOf(_charged(_curveA()), 1e13), "at the new delta");
    }

    // =============================================================== datasets apart

    function test_Ledgers_ArePerDataset() public {
        Policy memory policy = _jobPolicy();
        policy.delta = 1e13; // δ 1e-5
        (uint256 other, Datatoken otherCredits) = _publish(stranger, _params(2), policy);
        _buy(buyer, other, 2, 0);
        _requestAs(_curveA());
        JobRequest memory r = _request(_curveB());
        r.datasetId = other;
        uint256 jobId = _send(buyer, r);

        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "dataset 1: publication + A only");
        _assertCurveEq(jobs.curveOf(other), _charged(_curveB()), "dataset 2: publication + B only");
        assertEq(jobs.composedEpsilon(other), jobs.epsilonOf(_charged(_curveB()), 1e13), "at dataset 2's delta");
        assertEq(jobs.jobOf(jobId).datasetId, other, "job's dataset");
        assertEq(otherCredits.balanceOf(buyer), 1e18, "spent dataset 2's credit");
        assertEq(credits.balanceOf(buyer), (START_CREDITS - 1) * 1e18, "and dataset 1's for job 1");
        // Dataset 2's runner is the same account here; failing releases only dataset 2.
        vm.prank(runner);
        jobs.fail(jobId, "x", _curveB(), false);
        _assertCurveEq(jobs.curveOf(other), _saturatedLike(_publication(), _curveB()), "dataset 2: its publication");
        _assertCurveEq(jobs.curveOf(id), _charged(_curveA()), "dataset 1 untouched");
        assertEq(otherCredits.balanceOf(buyer), 2e18, "refunded in dataset 2's token");
    }

    // =============================================================== helpers

    /// @notice A policy admitting four addresses (the buyer second) and three model families
    /// (mlp, cnn, logreg), with the two lists.
    function _restrictedPolicy()
        internal
        view
        returns (Policy memory policy, bytes32[] memory allow, bytes32[] memory families)
    {
        allow = new bytes32[](4);
        allow[0] = cove.allowlistLeaf(owner);
        allow[1] = cove.allowlistLeaf(buyer);
        allow[2] = cove.allowlistLeaf(runner);
        allow[3] = cove.allowlistLeaf(timelock);
        families = new bytes32[](3);
        families[0] = _familyLeaf(keccak256("mlp"));
        families[1] = _familyLeaf(keccak256("cnn"));
        families[2] = _familyLeaf(keccak256("logreg"));
        policy = _jobPolicy();
        policy.allowlistRoot = Merkle.root(allow);
        policy.modelFamiliesRoot = Merkle.root(families);
    }

    function _familyLeaf(bytes32 family) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(family))));
    }

    function _expectRequestRevert(JobRequest memory r, bytes memory err) internal {
        _expectRequestRevertAs(buyer, r, err);
    }

    function _expectRequestRevertAs(address consumer, JobRequest memory r, bytes memory err) internal {
        uint256 count = jobs.jobCount();
        vm.expectRevert(err);
        vm.prank(consumer);
        jobs.request(r);
        assertEq(jobs.jobCount(), count, "no job recorded");
    }

    function _word(bytes memory data, uint256 at) internal pure returns (bytes32 word) {
        assembly ("memory-safe") {
            word := mload(add(add(data, 32), at))
        }
    }

    function _setWord(bytes memory data, uint256 at, bytes32 word) internal pure {
        assembly ("memory-safe") {
            mstore(add(add(data, 32), at), word)
        }
    }
}
