// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {JobsTest} from "./utils/JobsTest.sol";
import {ComputeJobs, JobRequest, JobStatus} from "../src/ComputeJobs.sol";
import {DatasetRegistry} from "../src/modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";

/// @notice `setJobsPaused` on an owner-controlled dataset: who may, what it blocks, what it
/// leaves alone, and that the flag shares a slot with the policy without disturbing it.
contract JobsPausedTest is JobsTest {
    function _pause(bool paused) internal {
        vm.prank(owner);
        cove.setJobsPaused(id, paused);
    }

    function test_NotPausedByDefault() public view {
        assertFalse(cove.jobsPaused(id), "a new dataset takes jobs");
    }

    function test_Pause_EmitsAndBlocksRequests() public {
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.JobsPausedSet(id, true);
        _pause(true);
        assertTrue(cove.jobsPaused(id), "paused");
        assertEq(_version(id), 1, "no policy version bump");

        JobRequest memory r = _request(_curveA());
        uint256 count = jobs.jobCount();
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobsPaused.selector, id));
        vm.prank(buyer);
        jobs.request(r);
        assertEq(jobs.jobCount(), count, "no job recorded");
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "no credit spent");

        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.JobsPaused.selector, id));
        cove.jobTermsOf(id);
    }

    function test_SameErrorOnHubAndJobs() public pure {
        assertEq(AccessPolicies.JobsPaused.selector, ComputeJobs.JobsPaused.selector, "one selector");
    }

    function test_Unpause_LetsRequestsThrough() public {
        _pause(true);
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.JobsPausedSet(id, false);
        _pause(false);
        assertFalse(cove.jobsPaused(id), "resumed");
        uint256 jobId = _requestAs(_curveA());
        assertEq(uint256(jobs.jobOf(jobId).status), uint256(JobStatus.Requested), "requested");
    }

    function test_Pause_IsIdempotent() public {
        _pause(true);
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.JobsPausedSet(id, true);
        _pause(true);
        assertTrue(cove.jobsPaused(id), "still paused");
    }

    function test_Pause_LeavesRunningJobsAndSalesAlone() public {
        uint256 first = _requestAs(_curveA());
        uint256 second = _requestAs(_curveB());
        _accept(first);
        _pause(true);
        _complete(first);
        _accept(second);
        vm.prank(runner);
        jobs.fail(second, "paused anyway", _curveB(), false);
        assertEq(uint256(jobs.jobOf(first).status), uint256(JobStatus.Completed), "completed");
        assertEq(uint256(jobs.jobOf(second).status), uint256(JobStatus.Failed), "failed");
        _buy(buyer, id, 1, 0);
        assertEq(credits.balanceOf(buyer), START_CREDITS * 1e18, "bought a credit, got one refunded");
    }

    function test_Pause_OnlyThisDataset() public {
        (uint256 other,) = _publish(owner, _params(2), _jobPolicy());
        _buy(buyer, other, 1, 0);
        _pause(true);
        JobRequest memory r = _request(_curveA());
        r.datasetId = other;
        vm.prank(buyer);
        jobs.request(r);
        assertFalse(cove.jobsPaused(other), "other dataset");
    }

    function test_SetPolicy_KeepsPauseAndPauseKeepsPolicy() public {
        _pause(true);
        Policy memory next = _jobPolicy();
        next.budget = 3_000_000;
        next.maxEpochs = 7;
        next.computeOnly = true;
        vm.prank(owner);
        cove.setPolicy(id, next, bytes32(0));
        assertTrue(cove.jobsPaused(id), "a policy change does not resume jobs");
        (Policy memory stored, uint32 version) = cove.policyOf(id);
        _assertPolicyEq(stored, next);
        assertEq(version, 2, "version");

        _pause(false);
        (stored,) = cove.policyOf(id);
        _assertPolicyEq(stored, next);
    }

    function testFuzz_PolicyRoundTripsBesideTheFlag(
        bool paused,
        uint96 price,
        uint40 expiryOffset,
        uint32 budget,
        uint32 cap,
        uint64 delta,
        uint16 maxEpochs,
        uint16 freeCap,
        bool computeOnly,
        bytes32 allowlistRoot,
        bytes32 modelFamiliesRoot
    ) public {
        Policy memory policy = Policy({
            paymentToken: address(usd),
            price: price,
            expiry: expiryOffset == 0 ? 0 : uint40(block.timestamp + bound(expiryOffset, 1, type(uint32).max)),
            budget: uint32(bound(budget, 1, type(uint32).max)),
            perJobCap: 0,
            delta: uint64(bound(delta, 1, 1e15 - 1)), // δ < 1/rows for the fixture's 1000 rows
            maxEpochs: uint16(bound(maxEpochs, 1, type(uint16).max)),
            freeCap: price == 0 ? uint16(bound(freeCap, 1, type(uint16).max)) : freeCap,
            computeOnly: computeOnly,
            allowlistRoot: allowlistRoot,
            modelFamiliesRoot: modelFamiliesRoot
        });
        policy.perJobCap = uint32(bound(cap, 1, policy.budget));
        _pause(paused);
        vm.prank(owner);
        cove.setPolicy(id, policy, bytes32(0));
        (Policy memory stored,) = cove.policyOf(id);
        _assertPolicyEq(stored, policy);
        assertEq(cove.jobsPaused(id), paused, "flag kept");
        _pause(!paused);
        (stored,) = cove.policyOf(id);
        _assertPolicyEq(stored, policy);
    }

    function test_RevertWhen_StrangerPauses() public {
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.NotPolicyController.selector, id, stranger, owner));
        vm.prank(stranger);
        cove.setJobsPaused(id, true);
    }

    function test_RevertWhen_RunnerPauses() public {
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.NotPolicyController.selector, id, runner, owner));
        vm.prank(runner);
        cove.setJobsPaused(id, true);
    }

    function test_SetController_Pauses() public {
        vm.prank(owner);
        cove.setPolicyController(id, timelock);
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.NotPolicyController.selector, id, owner, timelock));
        vm.prank(owner);
        cove.setJobsPaused(id, true);
        vm.prank(timelock);
        cove.setJobsPaused(id, true);
        assertTrue(cove.jobsPaused(id), "the controller paused it");
    }

    function test_RevertWhen_UnknownDataset() public {
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 99));
        cove.jobsPaused(99);
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 99));
        vm.prank(owner);
        cove.setJobsPaused(99, true);
    }

    function test_RevertWhen_RequestOnUnknownDataset_BeforePauseCheck() public {
        JobRequest memory r = _request(_curveA());
        r.datasetId = 99;
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 99));
        vm.prank(buyer);
        jobs.request(r);
    }
}
