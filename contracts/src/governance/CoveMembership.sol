// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";

/**
 * @title CoveMembership
 * @notice The membership token of a consortium that governs datasets through {CoveGovernor}:
 * one token (1e18 units) is one vote. OpenZeppelin's ERC20 + ERC20Permit + ERC20Votes.
 *
 * Votes and delegation: only delegated tokens vote (ERC20Votes counts a delegate's votes, not
 * a holder's balance). The constructor therefore delegates every initial member's tokens to
 * the member itself, so members vote by default. Anyone who receives tokens later (by
 * transfer) must call {delegate} (to itself or to a representative) before their tokens
 * count, and only delegations made before a proposal's snapshot count for that proposal.
 *
 * Supply: fixed at construction. There is no mint or burn and no owner, so no proposal and no
 * deployer key can create voting power, and quorums (a fraction of the past total supply) keep
 * their meaning. Membership changes hands by ordinary transfers between holders. A consortium
 * that wants to admit members by vote deploys a new token and governor and moves its datasets
 * to their timelock by proposal.
 *
 * Clock (EIP-6372): timestamps, not block numbers. Local demos move time with
 * `evm_increaseTime` (Anvil mines blocks only on demand, so block numbers say little about
 * elapsed time there), and voting delays, periods and deadlines read as dates and durations in
 * seconds rather than as block counts that depend on the chain's block time.
 */
contract CoveMembership is ERC20, ERC20Permit, ERC20Votes {
    /// @notice The members and their votes are lists of different lengths.
    error MembershipLengthMismatch(uint256 members, uint256 votes);
    /// @notice A consortium needs at least one member.
    error NoMembers();
    /// @notice Every initial member must get some votes.
    error ZeroMemberVotes(address member);

    /**
     * @notice Mints each member its votes (in token units: 1e18 is one vote) and delegates
     * them to the member itself.
     * @param name_ Token name (also the EIP-712 domain name of permits and delegations).
     * @param symbol_ Token symbol.
     * @param members The initial members (the same address twice adds up).
     * @param votes Each member's token amount, in the order of `members`.
     */
    constructor(string memory name_, string memory symbol_, address[] memory members, uint256[] memory votes)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        if (members.length != votes.length) revert MembershipLengthMismatch(members.length, votes.length);
        if (members.length == 0) revert NoMembers();
        for (uint256 i; i < members.length; ++i) {
            address member = members[i];
            if (votes[i] == 0) revert ZeroMemberVotes(member);
            _mint(member, votes[i]); // ERC20InvalidReceiver for address(0)
            if (delegates(member) != member) _delegate(member, member);
        }
    }

    /// @notice EIP-6372: the clock is the block's timestamp (see the contract's description).
    function clock() public view override returns (uint48) {
        return Time.timestamp();
    }

    /// @notice EIP-6372: "mode=timestamp".
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
