// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {GovernanceTest} from "./utils/GovernanceTest.sol";
import {ComputeJobs, JobRequest, Job} from "../src/ComputeJobs.sol";
import {DatasetRegistry} from "../src/modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";
import {CoveMembership} from "../src/governance/CoveMembership.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @notice The deployment: roles, settings, clocks and initial votes.
contract GovernanceSetupTest is GovernanceTest {
    function test_ClockMode_IsTimestamp() public view {
        assertEq(membership.CLOCK_MODE(), "mode=timestamp", "token clock mode");
        assertEq(governor.CLOCK_MODE(), "mode=timestamp", "governor clock mode");
        assertEq(membership.clock(), block.timestamp, "token clock");
        assertEq(governor.clock(), block.timestamp, "governor clock");
    }

    function test_Settings() public view {
        assertEq(governor.name(), "Cove Governor", "name");
        assertEq(address(governor.token()), address(membership), "token");
        assertEq(governor.timelock(), address(lock), "timelock");
        assertEq(governor.votingDelay(), 1 hours, "voting delay");
        assertEq(governor.votingPeriod(), 3 days, "voting period");
        assertEq(governor.proposalThreshold(), 10e18, "threshold");
        assertEq(governor.quorumNumerator(), 30, "quorum numerator");
        assertEq(governor.quorum(block.timestamp - 1), 30e18, "quorum: 30 % of 100 votes");
        assertEq(lock.getMinDelay(), 1 days, "min delay");
    }

    function test_TimelockRoles() public view {
        assertTrue(lock.hasRole(lock.PROPOSER_ROLE(), address(governor)), "governor proposes");
        assertTrue(lock.hasRole(lock.CANCELLER_ROLE(), address(governor)), "governor cancels");
        assertTrue(lock.hasRole(lock.EXECUTOR_ROLE(), address(0)), "anyone executes");
        assertFalse(lock.hasRole(lock.DEFAULT_ADMIN_ROLE(), address(this)), "deployer renounced admin");
        assertTrue(lock.hasRole(lock.DEFAULT_ADMIN_ROLE(), address(lock)), "timelock administers itself");
        assertFalse(lock.hasRole(lock.PROPOSER_ROLE(), alice), "members propose only through the governor");
    }

    function test_MembersVoteByDefault() public view {
        assertEq(membership.totalSupply(), 100e18, "supply");
        assertEq(membership.getVotes(alice), 40e18, "alice");
        assertEq(membership.getVotes(bob), 35e18, "bob");
        assertEq(membership.getVotes(carol), 25e18, "carol");
        assertEq(membership.delegates(alice), alice, "self-delegated at mint");
        assertEq(membership.getPastTotalSupply(block.timestamp - 1), 100e18, "past supply");
    }

    function test_GovernedDataset_ControllerIsTimelock() public view {
        assertEq(cove.policyController(gid), address(lock), "governed at publish");
        assertEq(cove.ownerOf(gid), owner, "the owner still holds the NFT");
        assertEq(cove.policyController(id), owner, "the other dataset is the owner's");
    }

    function test_TransferredTokensVoteOnlyOnceDelegated() public {
        address dave = address(0xD4);
        vm.prank(alice);
        assertTrue(membership.transfer(dave, 15e18), "transfer");
        assertEq(membership.getVotes(alice), 25e18, "alice's votes follow her balance");
        assertEq(membership.getVotes(dave), 0, "undelegated tokens do not vote");
        vm.prank(dave);
        membership.delegate(dave);
        assertEq(membership.getVotes(dave), 15e18, "delegated");
    }

    function test_RevertWhen_MembershipListsMismatch() public {
        address[] memory members = new address[](2);
        (members[0], members[1]) = (alice, bob);
        uint256[] memory votes = new uint256[](1);
        votes[0] = 1e18;
        vm.expectRevert(abi.encodeWithSelector(CoveMembership.MembershipLengthMismatch.selector, 2, 1));
        new CoveMembership("M", "M", members, votes);
    }

    function test_RevertWhen_NoMembers() public {
        vm.expectRevert(CoveMembership.NoMembers.selector);
        new CoveMembership("M", "M", new address[](0), new uint256[](0));
    }

    function test_RevertWhen_MemberGetsNoVotes() public {
        address[] memory members = new address[](2);
        (members[0], members[1]) = (alice, bob);
        uint256[] memory votes = new uint256[](2);
        votes[0] = 1e18;
        vm.expectRevert(abi.encodeWithSelector(CoveMembership.ZeroMemberVotes.selector, bob));
        new CoveMembership("M", "M", members, votes);
    }

    function test_DuplicateMemberAddsUp() public {
        address[] memory members = new address[](2);
        (members[0], members[1]) = (alice, alice);
        uint256[] memory votes = new uint256[](2);
        (votes[0], votes[1]) = (1e18, 2e18);
        CoveMembership token = new CoveMembership("M", "M", members, votes);
        assertEq(token.getVotes(alice), 3e18, "votes add up");
    }
}

/// @notice Proposals that pass, fail, or are refused, and what the hub sees when they execute.
contract GovernanceProposalTest is GovernanceTest {
    /// @notice ε 5.0: room for job A twice more.
    uint32 internal constant RAISED_BUDGET = 5_000_000;

    function _raisedPolicy() internal pure returns (Policy memory policy) {
        policy = _jobPolicy();
        policy.budget = RAISED_BUDGET;
    }

    function _raiseBudget(uint256 datasetId) internal view returns (Proposal memory) {
        return _proposal(
            abi.encodeCall(AccessPolicies.setPolicy, (datasetId, _raisedPolicy(), bytes32(0))), "Raise the privacy budget to 5.0"
        );
    }

    function _requestOn(uint256 datasetId) internal view returns (JobRequest memory r) {
        r = _request(_curveA());
        r.datasetId = datasetId;
    }

    // --------------------------------------------------------------- passing

    function test_ProposalRaisingBudget_PassesAndExecutes() public {
        // The publication and jobs A and B compose to ε 1.6665 of 2.0; A again would be 2.0274.
        _send(buyer, _requestOn(gid));
        JobRequest memory b = _requestOn(gid);
        b.rdpCurve = _curveB();
        _send(buyer, b);
        JobRequest memory again = _requestOn(gid); // built first: sha256 is a call expectRevert would catch
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, gid, 2_027_447, JOB_BUDGET));
        _send(buyer, again);

        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Pending), "pending");
        assertEq(governor.proposalSnapshot(proposalId), block.timestamp + VOTING_DELAY, "snapshot is a timestamp");
        assertEq(governor.proposalDeadline(proposalId), block.timestamp + VOTING_DELAY + VOTING_PERIOD, "deadline");

        _toVoting(proposalId);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Active), "active");
        _vote(alice, proposalId, FOR);
        _vote(bob, proposalId, AGAINST);
        _vote(carol, proposalId, ABSTAIN);
        (uint256 against, uint256 for_, uint256 abstain) = governor.proposalVotes(proposalId);
        assertEq(against, 35e18, "against");
        assertEq(for_, 40e18, "for");
        assertEq(abstain, 25e18, "abstain");

        _toVoteEnd(proposalId);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Succeeded), "succeeded");
        _queue(p);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Queued), "queued");
        assertEq(governor.proposalEta(proposalId), block.timestamp + MIN_DELAY, "eta");
        assertEq(_version(gid), 1, "nothing changes while queued");

        vm.warp(governor.proposalEta(proposalId));
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(gid, 2, _raisedPolicy(), bytes32(0));
        vm.prank(stranger); // anyone may execute
        _execute(p);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Executed), "executed");

        (Policy memory policy, uint32 version) = cove.policyOf(gid);
        _assertPolicyEq(policy, _raisedPolicy());
        assertEq(version, 2, "version bumped");

        // The next request is checked against the new budget and runs under version 2.
        again.deadline = uint64(block.timestamp + 1 days);
        uint256 jobId = _send(buyer, again);
        Job memory job = jobs.jobOf(jobId);
        assertEq(job.policyVersion, 2, "job runs under the new policy");
    }

    function test_HandedOverDataset_GovernedAfterwards() public {
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(id, owner, address(lock));
        vm.prank(owner);
        cove.setPolicyController(id, address(lock));
        assertEq(cove.policyController(id), address(lock), "handed over");

        vm.expectRevert(_notControllerOf(id, owner));
        vm.prank(owner);
        cove.setPolicy(id, _raisedPolicy(), bytes32(0));

        _enact(_raiseBudget(id));
        (Policy memory policy, uint32 version) = cove.policyOf(id);
        assertEq(policy.budget, RAISED_BUDGET, "budget raised by vote");
        assertEq(version, 2, "version");
    }

    function test_ProposalHandsDatasetBack() public {
        Proposal memory p = _proposal(abi.encodeCall(DatasetRegistry.setPolicyController, (gid, address(0))), "Hand dataset back");
        _toEta(_passAndQueue(p));
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(gid, address(lock), address(0));
        _execute(p);
        assertEq(cove.policyController(gid), owner, "the owner controls it again");
        vm.prank(owner);
        cove.setPolicy(gid, _raisedPolicy(), bytes32(0));
        assertEq(_version(gid), 2, "the owner sets the policy directly");
    }

    function test_ProposalChangesRunner() public {
        address runner2 = address(0x5EED2);
        JobRequest memory early = _requestOn(gid);
        early.deadline = uint64(block.timestamp + 30 days); // outlives the vote and the delay
        uint256 before = _send(buyer, early);
        _enact(_proposal(abi.encodeCall(DatasetRegistry.setRunner, (gid, runner2)), "New runner"));
        assertEq(cove.datasetOf(gid).runner, runner2, "runner changed");

        uint256 jobId = _send(buyer, _requestOn(gid));
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.NotJobRunner.selector, jobId, runner, runner2));
        vm.prank(runner);
        jobs.accept(jobId);
        vm.prank(runner2);
        jobs.accept(jobId);
        vm.prank(runner2);
        jobs.accept(before); // the dataset's runner is read at accept
    }

    function test_ProposalsPauseAndUnpauseJobs() public {
        Proposal memory pause = _proposal(abi.encodeCall(AccessPolicies.setJobsPaused, (gid, true)), "Pause new jobs");
        _toEta(_passAndQueue(pause));
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.JobsPausedSet(gid, true);
        _execute(pause);
        assertTrue(cove.jobsPaused(gid), "paused");
        assertEq(_version(gid), 1, "pausing is not a policy change");

        JobRequest memory r = _requestOn(gid);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobsPaused.selector, gid));
        _send(buyer, r);
        _send(buyer, _request(_curveA())); // the other dataset is not paused

        Proposal memory resume = _proposal(abi.encodeCall(AccessPolicies.setJobsPaused, (gid, false)), "Resume new jobs");
        _toEta(_passAndQueue(resume));
        r.deadline = uint64(block.timestamp + 1 days);
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.JobsPausedSet(gid, false);
        _execute(resume);
        assertFalse(cove.jobsPaused(gid), "resumed");
        uint256 jobId = _send(buyer, r);
        assertEq(jobs.jobOf(jobId).datasetId, gid, "the request goes through again");
    }

    function test_ProposalWithSeveralCalls() public {
        // One proposal can set the policy and the runner together; they execute in order.
        Proposal memory p = _proposal(abi.encodeCall(AccessPolicies.setPolicy, (gid, _raisedPolicy(), bytes32(0))), "Both");
        p.targets = new address[](2);
        (p.targets[0], p.targets[1]) = (address(cove), address(cove));
        p.values = new uint256[](2);
        bytes memory first = p.calldatas[0];
        p.calldatas = new bytes[](2);
        (p.calldatas[0], p.calldatas[1]) = (first, abi.encodeCall(DatasetRegistry.setRunner, (gid, stranger)));
        _enact(p);
        (Policy memory policy,) = cove.policyOf(gid);
        assertEq(policy.budget, RAISED_BUDGET, "policy");
        assertEq(cove.datasetOf(gid).runner, stranger, "runner");
    }

    function test_RevertWhen_ExecutedProposalCallReverts() public {
        // A proposal whose call the hub refuses fails at execution with the hub's error; the
        // proposer should run checkPolicy first.
        Policy memory bad = _raisedPolicy();
        bad.perJobCap = bad.budget + 1;
        uint64 rows = cove.datasetOf(gid).rows;
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, bad.perJobCap, bad.budget));
        cove.checkPolicy(bad, rows);

        Proposal memory p = _proposal(abi.encodeCall(AccessPolicies.setPolicy, (gid, bad, bytes32(0))), "Bad policy");
        uint256 proposalId = _passAndQueue(p);
        vm.warp(governor.proposalEta(proposalId));
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, bad.perJobCap, bad.budget));
        _execute(p);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Queued), "still queued");
    }

    // --------------------------------------------------------------- failing

    function test_ProposalDefeated_MoreAgainst() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(bob, p);
        _toVoting(proposalId);
        _vote(alice, proposalId, AGAINST); // 40
        _vote(bob, proposalId, FOR); // 35
        _vote(carol, proposalId, ABSTAIN); // 25: quorum is reached (60 >= 30)
        _toVoteEnd(proposalId);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Defeated), "defeated");
        vm.expectRevert(
            _unexpectedState(proposalId, IGovernor.ProposalState.Defeated, IGovernor.ProposalState.Succeeded)
        );
        _queue(p);
        assertEq(_version(gid), 1, "policy unchanged");
    }

    function test_ProposalDefeated_ShortOfQuorum() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(carol, p);
        _toVoting(proposalId);
        _vote(carol, proposalId, FOR); // 25 for, none against, quorum 30
        _toVoteEnd(proposalId);
        assertEq(governor.quorum(governor.proposalSnapshot(proposalId)), 30e18, "quorum at the snapshot");
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Defeated), "no quorum");
        vm.expectRevert(
            _unexpectedState(proposalId, IGovernor.ProposalState.Defeated, IGovernor.ProposalState.Succeeded)
        );
        _queue(p);
    }

    function test_AbstainCountsTowardQuorum() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(carol, p);
        _toVoting(proposalId);
        _vote(carol, proposalId, FOR); // 25
        _vote(bob, proposalId, ABSTAIN); // 35: quorum 60 >= 30, for 25 > against 0
        _toVoteEnd(proposalId);
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Succeeded), "passed");
    }

    function test_RevertWhen_QueueingActiveProposal() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        _toVoting(proposalId);
        _vote(alice, proposalId, FOR);
        _vote(bob, proposalId, FOR);
        vm.expectRevert(_unexpectedState(proposalId, IGovernor.ProposalState.Active, IGovernor.ProposalState.Succeeded));
        _queue(p);
    }

    function test_RevertWhen_ExecutedBeforeTimelockDelay() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _passAndQueue(p);
        bytes memory notReady = abi.encodeWithSelector(
            TimelockController.TimelockUnexpectedOperationState.selector,
            _operationOf(p),
            _operationBit(TimelockController.OperationState.Ready)
        );
        vm.expectRevert(notReady);
        _execute(p);
        vm.warp(governor.proposalEta(proposalId) - 1);
        vm.expectRevert(notReady);
        _execute(p);
        assertEq(_version(gid), 1, "policy unchanged");

        vm.warp(governor.proposalEta(proposalId));
        _execute(p);
        assertEq(_version(gid), 2, "executes once the delay passed");
    }

    function test_RevertWhen_ExecutingUnqueuedProposal() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        _toVoting(proposalId);
        _vote(alice, proposalId, FOR);
        _toVoteEnd(proposalId);
        // Succeeded but not queued: the timelock has no such operation.
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                _operationOf(p),
                _operationBit(TimelockController.OperationState.Ready)
            )
        );
        _execute(p);
    }

    function test_RevertWhen_ExecutedTwice() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _enact(p);
        bytes32 expected =
            _stateBit(IGovernor.ProposalState.Succeeded) | _stateBit(IGovernor.ProposalState.Queued);
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                proposalId,
                IGovernor.ProposalState.Executed,
                expected
            )
        );
        _execute(p);
    }

    // --------------------------------------------------------------- snapshots

    function test_DelegationAfterSnapshot_DoesNotCount() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        uint256 snapshot = governor.proposalSnapshot(proposalId);
        _toVoting(proposalId);
        vm.prank(carol);
        membership.delegate(alice);
        assertEq(membership.getVotes(alice), 65e18, "alice holds carol's votes now");
        assertEq(membership.getPastVotes(alice, snapshot), 40e18, "but not at the snapshot");
        assertEq(membership.getPastVotes(carol, snapshot), 25e18, "carol's own votes at the snapshot");

        _vote(alice, proposalId, FOR);
        _vote(carol, proposalId, AGAINST); // carol votes with her snapshot votes
        (uint256 against, uint256 for_,) = governor.proposalVotes(proposalId);
        assertEq(for_, 40e18, "alice's weight is her snapshot votes");
        assertEq(against, 25e18, "carol's weight is her snapshot votes");
    }

    function test_DelegationBeforeSnapshot_Counts() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        vm.prank(carol);
        membership.delegate(alice); // during the voting delay
        _toVoting(proposalId);
        _vote(alice, proposalId, FOR);
        (, uint256 for_,) = governor.proposalVotes(proposalId);
        assertEq(for_, 65e18, "carol's delegation counted");
        vm.prank(carol);
        uint256 weight = governor.castVote(proposalId, AGAINST);
        assertEq(weight, 0, "carol has nothing left to vote with");
    }

    function test_TokensMovedAfterSnapshot_DoNotCount() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        _toVoting(proposalId);
        vm.prank(bob);
        assertTrue(membership.transfer(alice, 35e18), "transfer");
        _vote(alice, proposalId, FOR);
        _vote(bob, proposalId, AGAINST);
        (uint256 against, uint256 for_,) = governor.proposalVotes(proposalId);
        assertEq(for_, 40e18, "alice");
        assertEq(against, 35e18, "bob still votes his snapshot weight");
    }

    // --------------------------------------------------------------- refusals

    function test_RevertWhen_DirectPolicyCallsOnGovernedDataset() public {
        bytes memory denied = _notControllerOf(gid, owner);
        vm.startPrank(owner); // the NFT owner
        vm.expectRevert(denied);
        cove.setPolicy(gid, _raisedPolicy(), bytes32(0));
        vm.expectRevert(denied);
        cove.setRunner(gid, stranger);
        vm.expectRevert(denied);
        cove.setPolicyController(gid, address(0));
        vm.expectRevert(denied);
        cove.setJobsPaused(gid, true);
        vm.stopPrank();

        // Neither a member nor the governor itself: only the timelock.
        vm.expectRevert(_notControllerOf(gid, alice));
        vm.prank(alice);
        cove.setPolicy(gid, _raisedPolicy(), bytes32(0));
        vm.expectRevert(_notControllerOf(gid, address(governor)));
        vm.prank(address(governor));
        cove.setJobsPaused(gid, true);
    }

    function test_RevertWhen_TimelockCalledDirectly() public {
        // Nobody but the governor can schedule on the timelock.
        bytes memory call = abi.encodeCall(AccessPolicies.setJobsPaused, (gid, true));
        bytes32 proposer = lock.PROPOSER_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, proposer));
        vm.prank(alice);
        lock.schedule(address(cove), 0, call, bytes32(0), bytes32(0), MIN_DELAY);
    }

    function test_RevertWhen_ProposerBelowThreshold() public {
        Proposal memory p = _raiseBudget(gid);
        vm.expectRevert(
            abi.encodeWithSelector(IGovernor.GovernorInsufficientProposerVotes.selector, stranger, 0, THRESHOLD)
        );
        _propose(stranger, p);

        address dave = address(0xD4);
        vm.prank(alice);
        assertTrue(membership.transfer(dave, 5e18), "transfer");
        vm.prank(dave);
        membership.delegate(dave);
        vm.warp(block.timestamp + 1); // proposing counts the votes of the previous second
        vm.expectRevert(
            abi.encodeWithSelector(IGovernor.GovernorInsufficientProposerVotes.selector, dave, 5e18, THRESHOLD)
        );
        _propose(dave, p);
    }

    function test_RevertWhen_VotingTwice() public {
        uint256 proposalId = _propose(alice, _raiseBudget(gid));
        _toVoting(proposalId);
        _vote(bob, proposalId, FOR);
        vm.expectRevert(abi.encodeWithSelector(IGovernor.GovernorAlreadyCastVote.selector, bob));
        _vote(bob, proposalId, AGAINST);
    }

    function test_RevertWhen_VotingBeforeStart() public {
        uint256 proposalId = _propose(alice, _raiseBudget(gid));
        bytes memory pending =
            _unexpectedState(proposalId, IGovernor.ProposalState.Pending, IGovernor.ProposalState.Active);
        vm.expectRevert(pending);
        _vote(bob, proposalId, FOR);
        vm.warp(governor.proposalSnapshot(proposalId)); // the snapshot second is still Pending
        vm.expectRevert(pending);
        _vote(bob, proposalId, FOR);
    }

    function test_RevertWhen_VotingAfterDeadline() public {
        uint256 proposalId = _propose(alice, _raiseBudget(gid));
        _toVoting(proposalId);
        _vote(alice, proposalId, FOR);
        vm.warp(governor.proposalDeadline(proposalId));
        _vote(bob, proposalId, FOR); // the deadline second is still Active
        _toVoteEnd(proposalId);
        vm.expectRevert(
            _unexpectedState(proposalId, IGovernor.ProposalState.Succeeded, IGovernor.ProposalState.Active)
        );
        _vote(carol, proposalId, AGAINST);
    }

    function test_RevertWhen_InvalidVoteType() public {
        uint256 proposalId = _propose(alice, _raiseBudget(gid));
        _toVoting(proposalId);
        vm.expectRevert(IGovernor.GovernorInvalidVoteType.selector);
        _vote(bob, proposalId, 3);
    }

    function test_RevertWhen_VotingOnUnknownProposal() public {
        vm.expectRevert(abi.encodeWithSelector(IGovernor.GovernorNonexistentProposal.selector, 42));
        _vote(bob, 42, FOR);
    }

    function test_RevertWhen_ProposingTwice() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        bytes32 any = bytes32(0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector, proposalId, IGovernor.ProposalState.Pending, any
            )
        );
        _propose(bob, p);
    }

    function test_ProposerCancelsWhilePending() public {
        Proposal memory p = _raiseBudget(gid);
        uint256 proposalId = _propose(alice, p);
        vm.expectRevert(abi.encodeWithSelector(IGovernor.GovernorUnableToCancel.selector, proposalId, bob));
        vm.prank(bob);
        governor.cancel(p.targets, p.values, p.calldatas, _descriptionHash(p));
        vm.prank(alice);
        governor.cancel(p.targets, p.values, p.calldatas, _descriptionHash(p));
        assertEq(_state(proposalId), uint256(IGovernor.ProposalState.Canceled), "canceled");
    }

    // --------------------------------------------------------------- helpers

    function _notControllerOf(uint256 datasetId, address caller) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            DatasetRegistry.NotPolicyController.selector, datasetId, caller, cove.policyController(datasetId)
        );
    }
}
