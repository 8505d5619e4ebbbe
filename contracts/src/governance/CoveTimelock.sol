// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/**
 * @title CoveTimelock
 * @notice OpenZeppelin's TimelockController, unchanged; this subclass exists only so that the
 * compiled artifacts ship a deployable timelock. A governed dataset's policy controller is this
 * timelock, so only an executed proposal of {CoveGovernor} changes its policy.
 *
 * Expected setup: `minDelay` the review period (e.g. one day); the governor as PROPOSER and
 * CANCELLER; EXECUTOR open to anyone (`address(0)`), so a passed proposal cannot be held back;
 * the deployer as temporary admin, which grants the governor its roles and then renounces
 * (or admin `address(0)` when the governor's address is known in advance).
 */
contract CoveTimelock is TimelockController {
    /**
     * @param minDelay Seconds between queueing an operation and being able to execute it.
     * @param proposers Accounts granted PROPOSER_ROLE (and CANCELLER_ROLE).
     * @param executors Accounts granted EXECUTOR_ROLE; `address(0)` lets anyone execute.
     * @param admin Optional admin for the initial setup; `address(0)` for none.
     */
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
