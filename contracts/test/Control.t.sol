// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CoveTest} from "./utils/CoveTest.sol";
import {DatasetRegistry} from "../src/modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";

/// @notice Who controls a dataset: the NFT owner by default, a set controller instead, and
/// the new owner after a transfer; `setRunner` and `setPolicyController` with their events.
contract ControlTest is CoveTest {
    uint256 internal id;
    address internal newOwner = address(0x0E2);
    address internal runner2 = address(0x5EED2);

    function setUp() public override {
        super.setUp();
        (id,) = _publishPriced();
    }

    // --------------------------------------------------------------- setRunner

    function test_SetRunner_ByOwner() public {
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.RunnerChanged(id, runner2);
        vm.prank(owner);
        cove.setRunner(id, runner2);
        assertEq(cove.datasetOf(id).runner, runner2, "runner");
        assertEq(_version(id), 1, "runner change does not bump the policy version");
    }

    function test_RevertWhen_SetRunnerToZero() public {
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "runner"));
        vm.prank(owner);
        cove.setRunner(id, address(0));
        assertEq(cove.datasetOf(id).runner, runner, "runner unchanged");
    }

    function test_RevertWhen_SetRunnerToZero_ByStranger_ReportsControlFirst() public {
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setRunner(id, address(0));
    }

    // --------------------------------------------------------------- NotPolicyController

    function test_RevertWhen_StrangerSetsPolicy() public {
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
        assertEq(_version(id), 1, "version unchanged");
    }

    function test_RevertWhen_StrangerSetsRunner() public {
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setRunner(id, stranger);
    }

    function test_RevertWhen_StrangerSetsController() public {
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setPolicyController(id, stranger);
    }

    function test_RevertWhen_RunnerSetsPolicy() public {
        // Serving jobs gives no say over the policy.
        vm.expectRevert(_notController(runner, owner));
        vm.prank(runner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
    }

    function test_RevertWhen_ControlCheckedBeforePolicyValidity() public {
        Policy memory bad = _pricedPolicy();
        bad.budget = 0;
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setPolicy(id, bad, bytes32(0));
    }

    // --------------------------------------------------------------- NFT transfer

    function test_NftTransfer_MovesControlToNewOwner() public {
        vm.prank(owner);
        cove.transferFrom(owner, newOwner, id);
        assertEq(cove.policyController(id), newOwner, "policyController follows the NFT");

        vm.expectRevert(_notController(owner, newOwner));
        vm.prank(owner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
        vm.expectRevert(_notController(owner, newOwner));
        vm.prank(owner);
        cove.setRunner(id, runner2);
        vm.expectRevert(_notController(owner, newOwner));
        vm.prank(owner);
        cove.setPolicyController(id, owner);

        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(id, 2, _freePolicy(1), bytes32(0));
        vm.prank(newOwner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));

        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.RunnerChanged(id, runner2);
        vm.prank(newOwner);
        cove.setRunner(id, runner2);

        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(id, newOwner, timelock);
        vm.prank(newOwner);
        cove.setPolicyController(id, timelock);
        assertEq(cove.policyController(id), timelock, "handed to the timelock");
    }

    // --------------------------------------------------------------- controller

    function test_SetController_OverridesOwner() public {
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(id, owner, timelock);
        vm.prank(owner);
        cove.setPolicyController(id, timelock);

        assertEq(cove.policyController(id), timelock, "policyController");
        assertEq(cove.datasetOf(id).controller, timelock, "stored controller");
        assertEq(cove.ownerOf(id), owner, "owner keeps the NFT");

        vm.expectRevert(_notController(owner, timelock));
        vm.prank(owner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
        vm.expectRevert(_notController(owner, timelock));
        vm.prank(owner);
        cove.setRunner(id, runner2);
        vm.expectRevert(_notController(owner, timelock));
        vm.prank(owner);
        cove.setPolicyController(id, address(0));

        vm.prank(timelock);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
        assertEq(_version(id), 2, "controller bumped the version");
        vm.prank(timelock);
        cove.setRunner(id, runner2);
        assertEq(cove.datasetOf(id).runner, runner2, "controller set the runner");
    }

    function test_SetControllerBackToZero_ReturnsControlToOwner() public {
        vm.prank(owner);
        cove.setPolicyController(id, timelock);

        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(id, timelock, address(0));
        vm.prank(timelock);
        cove.setPolicyController(id, address(0));

        assertEq(cove.policyController(id), owner, "back to the owner");
        assertEq(cove.datasetOf(id).controller, address(0), "stored controller cleared");

        vm.expectRevert(_notController(timelock, owner));
        vm.prank(timelock);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));

        vm.prank(owner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));
        assertEq(_version(id), 2, "owner sets the policy again");
    }

    function test_Controller_PersistsAcrossNftTransfer() public {
        vm.prank(owner);
        cove.setPolicyController(id, timelock);
        vm.prank(owner);
        cove.transferFrom(owner, newOwner, id);

        assertEq(cove.policyController(id), timelock, "controller unaffected by the sale");
        vm.expectRevert(_notController(newOwner, timelock));
        vm.prank(newOwner);
        cove.setPolicy(id, _freePolicy(1), bytes32(0));

        // Once the controller lets go, the *current* owner controls.
        vm.prank(timelock);
        cove.setPolicyController(id, address(0));
        assertEq(cove.policyController(id), newOwner, "new owner controls");
        vm.expectRevert(_notController(owner, newOwner));
        vm.prank(owner);
        cove.setRunner(id, runner2);
    }

    function test_Controller_HandsOverToAnotherController() public {
        address council = address(0xC0C);
        vm.prank(owner);
        cove.setPolicyController(id, timelock);
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(id, timelock, council);
        vm.prank(timelock);
        cove.setPolicyController(id, council);

        vm.expectRevert(_notController(timelock, council));
        vm.prank(timelock);
        cove.setRunner(id, runner2);
        vm.prank(council);
        cove.setRunner(id, runner2);
    }

    function test_SetControllerToOwnerExplicitly() public {
        // An explicit controller equal to the owner does not follow a later NFT transfer.
        vm.prank(owner);
        cove.setPolicyController(id, owner);
        vm.prank(owner);
        cove.transferFrom(owner, newOwner, id);
        assertEq(cove.policyController(id), owner, "explicit controller stays");
    }

    function test_Control_IsPerDataset() public {
        (uint256 other,) = _publish(stranger, _params(99), _pricedPolicy());
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.NotPolicyController.selector, other, owner, stranger));
        vm.prank(owner);
        cove.setRunner(other, runner2);
        vm.expectRevert(_notController(stranger, owner));
        vm.prank(stranger);
        cove.setRunner(id, runner2);
    }

    function _notController(address caller, address controller) private view returns (bytes memory) {
        return abi.encodeWithSelector(DatasetRegistry.NotPolicyController.selector, id, caller, controller);
    }
}
