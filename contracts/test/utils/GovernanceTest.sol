// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {JobsTest} from "./JobsTest.sol";
import {CoveMembership} from "../../src/governance/CoveMembership.sol";
import {CoveGovernor} from "../../src/governance/CoveGovernor.sol";
import {CoveTimelock} from "../../src/governance/CoveTimelock.sol";
import {DatasetParams} from "../../src/modules/DatasetRegistry.sol";
import {Datatoken} from "../../src/tokens/Datatoken.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/**
 * @title GovernanceTest
 * @notice Fixture for dataset governance, on top of the jobs fixture (whose dataset `id` is
 * owner-controlled): a consortium of three members (40/35/25 votes, self-delegated at mint),
 * a timelock (one day) whose only proposer and canceller is the governor and whose executor is
 * anyone, the deployer's admin role renounced; a governor (voting delay one hour, period three
 * days, threshold 10 votes, quorum 30 %); and a second dataset `gid` published governed
 * (controller = the timelock), of which the buyer holds credits.
 */
abstract contract GovernanceTest is JobsTest {
    uint48 internal constant VOTING_DELAY = 1 hours;
    uint32 internal constant VOTING_PERIOD = 3 days;
    uint256 internal constant THRESHOLD = 10e18;
    uint256 internal constant QUORUM_PERCENT = 30;
    uint256 internal constant MIN_DELAY = 1 days;

    uint8 internal constant AGAINST = 0;
    uint8 internal constant FOR = 1;
    uint8 internal constant ABSTAIN = 2;

    address internal alice = address(0xA1);
    address internal bob = address(0xB2);
    address internal carol = address(0xC3);

    CoveMembership internal membership;
    CoveTimelock internal lock;
    CoveGovernor internal governor;

    /// @notice The dataset published governed.
    uint256 internal gid;
    Datatoken internal gcredits;

    function setUp() public virtual override {
        super.setUp();
        address[] memory members = new address[](3);
        (members[0], members[1], members[2]) = (alice, bob, carol);
        uint256[] memory votes = new uint256[](3);
        (votes[0], votes[1], votes[2]) = (40e18, 35e18, 25e18);
        membership = new CoveMembership("Cove Consortium", "COVEM", members, votes);

        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1); // address(0): anyone may execute
        lock = new CoveTimelock(MIN_DELAY, none, anyone, address(this));
        governor = new CoveGovernor(
            "Cove Governor", IVotes(address(membership)), lock, VOTING_DELAY, VOTING_PERIOD, THRESHOLD, QUORUM_PERCENT
        );
        lock.grantRole(lock.PROPOSER_ROLE(), address(governor));
        lock.grantRole(lock.CANCELLER_ROLE(), address(governor));
        lock.renounceRole(lock.DEFAULT_ADMIN_ROLE(), address(this));

        DatasetParams memory params = _params(100);
        params.controller = address(lock);
        (gid, gcredits) = _publish(owner, params, _jobPolicy());
        _buy(buyer, gid, START_CREDITS, 0);

        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(carol, "carol");
        vm.label(address(membership), "membership");
        vm.label(address(lock), "CoveTimelock");
        vm.label(address(governor), "CoveGovernor");
        // Self-delegations checkpoint at the deployment's timestamp; proposals come later.
        vm.warp(block.timestamp + 1);
    }

    // ------------------------------------------------------------------ proposals

    /// @notice A proposal of one call to the hub.
    struct Proposal {
        address[] targets;
        uint256[] values;
        bytes[] calldatas;
        string description;
    }

    /// @notice A proposal that makes `call` on the hub.
    function _proposal(bytes memory call, string memory description) internal view returns (Proposal memory p) {
        p.targets = new address[](1);
        p.targets[0] = address(cove);
        p.values = new uint256[](1);
        p.calldatas = new bytes[](1);
        p.calldatas[0] = call;
        p.description = description;
    }

    function _descriptionHash(Proposal memory p) internal pure returns (bytes32) {
        return keccak256(bytes(p.description));
    }

    function _idOf(Proposal memory p) internal view returns (uint256) {
        return governor.hashProposal(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    /// @notice The timelock operation a queued proposal becomes (salt: governor ^ description hash).
    function _operationOf(Proposal memory p) internal view returns (bytes32) {
        bytes32 salt = bytes20(address(governor)) ^ _descriptionHash(p);
        return lock.hashOperationBatch(p.targets, p.values, p.calldatas, bytes32(0), salt);
    }

    function _propose(address proposer, Proposal memory p) internal returns (uint256 proposalId) {
        vm.prank(proposer);
        proposalId = governor.propose(p.targets, p.values, p.calldatas, p.description);
    }

    function _vote(address voter, uint256 proposalId, uint8 support) internal {
        vm.prank(voter);
        governor.castVote(proposalId, support);
    }

    /// @notice Moves time to the first second of the vote.
    function _toVoting(uint256 proposalId) internal {
        vm.warp(governor.proposalSnapshot(proposalId) + 1);
    }

    /// @notice Moves time past the vote's deadline.
    function _toVoteEnd(uint256 proposalId) internal {
        vm.warp(governor.proposalDeadline(proposalId) + 1);
    }

    /// @notice Moves time to the first second a queued proposal can execute.
    function _toEta(uint256 proposalId) internal {
        vm.warp(governor.proposalEta(proposalId));
    }

    function _queue(Proposal memory p) internal {
        governor.queue(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    function _execute(Proposal memory p) internal {
        governor.execute(p.targets, p.values, p.calldatas, _descriptionHash(p));
    }

    /// @notice Proposes `p` (as alice), passes it with every member for, queues it and returns
    /// with the timelock's delay still running.
    function _passAndQueue(Proposal memory p) internal returns (uint256 proposalId) {
        proposalId = _propose(alice, p);
        _toVoting(proposalId);
        _vote(alice, proposalId, FOR);
        _vote(bob, proposalId, FOR);
        _vote(carol, proposalId, FOR);
        _toVoteEnd(proposalId);
        _queue(p);
    }

    /// @notice {_passAndQueue}, then waits out the delay and executes (anyone may).
    function _enact(Proposal memory p) internal returns (uint256 proposalId) {
        proposalId = _passAndQueue(p);
        _toEta(proposalId);
        vm.prank(stranger);
        _execute(p);
        assertEq(uint256(governor.state(proposalId)), uint256(IGovernor.ProposalState.Executed), "executed");
    }

    /// @notice The revert data of GovernorUnexpectedProposalState.
    function _unexpectedState(uint256 proposalId, IGovernor.ProposalState current, IGovernor.ProposalState expected)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(
            IGovernor.GovernorUnexpectedProposalState.selector,
            proposalId,
            current,
            _stateBit(expected)
        );
    }

    /// @notice The bit of `state` in Governor's expected-states bitmap (bit i = state i).
    function _stateBit(IGovernor.ProposalState state) internal pure returns (bytes32) {
        return bytes32(2 ** uint256(state));
    }

    /// @notice The bit of `state` in the timelock's expected-states bitmap.
    function _operationBit(TimelockController.OperationState state) internal pure returns (bytes32) {
        return bytes32(2 ** uint256(state));
    }

    function _state(uint256 proposalId) internal view returns (uint256) {
        return uint256(governor.state(proposalId));
    }
}
