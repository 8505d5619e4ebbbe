// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IGovernor, Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";

/**
 * @title CoveGovernor
 * @notice The consortium's OpenZeppelin Governor: members of a {CoveMembership} token propose
 * and vote on calls that a {CoveTimelock} then executes, such as the Cove hub's `setPolicy`,
 * `setRunner`, `setJobsPaused` and `setPolicyController` on datasets whose policy controller
 * is that timelock.
 *
 * - Counting: simple (against = 0, for = 1, abstain = 2). A proposal passes with more for than
 *   against votes and a quorum of for + abstain votes.
 * - Votes: the token's delegated votes at the proposal's snapshot (`getPastVotes`), so tokens
 *   moved or delegated after the snapshot do not count for that proposal.
 * - Quorum: a percentage of the token's total supply at the snapshot.
 * - Clock: the token's (timestamps for {CoveMembership}); the voting delay and period are then
 *   in seconds.
 * - Timelock: a passed proposal is queued in the timelock and executable after its delay; the
 *   timelock, not this contract, is the account that makes the calls.
 */
contract CoveGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /**
     * @param name_ The governor's name (its EIP-712 domain name for signed votes).
     * @param token The membership token (ERC-5805 votes with an ERC-6372 clock).
     * @param timelock_ The timelock that executes passed proposals; grant this governor its
     * PROPOSER_ROLE and CANCELLER_ROLE.
     * @param votingDelay_ Clock units (seconds for a timestamp token) between proposing and the
     * vote's snapshot and start.
     * @param votingPeriod_ Clock units the vote stays open; positive.
     * @param proposalThreshold_ Votes (token units) an account needs to propose.
     * @param quorumPercent Percentage (0 to 100) of the total supply at the snapshot that
     * for + abstain votes must reach.
     */
    constructor(
        string memory name_,
        IVotes token,
        TimelockController timelock_,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumPercent
    )
        Governor(name_)
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(quorumPercent)
        GovernorTimelockControl(timelock_)
    {}

    // ------------------------------------------------------------------ required overrides

    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}
