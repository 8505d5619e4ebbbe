// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {Cove} from "../src/Cove.sol";
import {ICoveHubInfo} from "../src/interfaces/ICoveHubInfo.sol";
import {RunnerEndpoints} from "../src/modules/RunnerEndpoints.sol";
import {FederatedRounds} from "../src/FederatedRounds.sol";

/// @notice What a stranger who knows only the hub's address can learn from it: that it is a
/// Cove hub (ERC-165), its ComputeJobs and FederatedRounds, deployment block, default payment
/// token, and each runner's public endpoint.
contract HubInfoTest is CoveTest {
    function test_DeploymentFacts() public {
        vm.roll(4242);
        Cove hub = new Cove(address(usd));
        assertEq(hub.deploymentBlock(), 4242, "deployment block");
        assertEq(hub.defaultPaymentToken(), address(usd), "default payment token");
        assertTrue(hub.computeJobs().code.length > 0, "ComputeJobs deployed");
        assertTrue(hub.federatedRounds().code.length > 0, "FederatedRounds deployed");
        assertEq(FederatedRounds(hub.federatedRounds()).computeJobs(), hub.computeJobs(), "over the hub's ComputeJobs");
        Cove bare = new Cove(address(0));
        assertEq(bare.defaultPaymentToken(), address(0), "none named");
    }

    function test_SupportsInterface_CoveHubInfo_ERC721_ERC165() public view {
        assertTrue(cove.supportsInterface(type(ICoveHubInfo).interfaceId), "Cove hub");
        assertTrue(cove.supportsInterface(type(IERC721).interfaceId), "ERC-721");
        assertTrue(cove.supportsInterface(type(IERC165).interfaceId), "ERC-165");
        assertFalse(cove.supportsInterface(0xffffffff), "never 0xffffffff");
        assertFalse(cove.supportsInterface(0x12345678), "control: another interface");
    }

    /// @notice The interface id clients compute from the five selectors
    /// (`_HUB_INFO_FUNCTIONS` in exchange/chain/deployment.py), written out: 0x838e2186.
    function test_CoveHubInfo_InterfaceId() public pure {
        bytes4 id = ICoveHubInfo.computeJobs.selector ^ ICoveHubInfo.federatedRounds.selector
            ^ ICoveHubInfo.deploymentBlock.selector ^ ICoveHubInfo.defaultPaymentToken.selector
            ^ ICoveHubInfo.endpointOf.selector;
        assertEq(bytes32(type(ICoveHubInfo).interfaceId), bytes32(id), "XOR of the selectors");
        assertEq(bytes32(id), bytes32(bytes4(0x838e2186)), "the id clients compute");
    }

    function test_SetEndpoint_StoresEmitsAndClears() public {
        vm.expectEmit(true, true, true, true, address(cove));
        emit RunnerEndpoints.EndpointSet(runner, "https://hospital.example/cove");
        vm.prank(runner);
        cove.setEndpoint("https://hospital.example/cove");
        assertEq(cove.endpointOf(runner), "https://hospital.example/cove", "set");
        assertEq(cove.endpointOf(stranger), "", "others have none");

        vm.prank(runner);
        cove.setEndpoint("http://127.0.0.1:8080");
        assertEq(cove.endpointOf(runner), "http://127.0.0.1:8080", "replaced");

        vm.expectEmit(true, true, true, true, address(cove));
        emit RunnerEndpoints.EndpointSet(runner, "");
        vm.prank(runner);
        cove.setEndpoint("");
        assertEq(cove.endpointOf(runner), "", "cleared");
    }

    function test_SetEndpoint_OnlyOwnRecord() public {
        vm.prank(stranger);
        cove.setEndpoint("http://evil.example");
        assertEq(cove.endpointOf(runner), "", "a stranger cannot set the runner's endpoint");
        assertEq(cove.endpointOf(stranger), "http://evil.example", "only its own");
    }

    function test_SetEndpoint_AtMaxLength() public {
        bytes memory url = new bytes(cove.MAX_ENDPOINT_LENGTH());
        for (uint256 i; i < url.length; ++i) url[i] = "a";
        vm.prank(runner);
        cove.setEndpoint(string(url));
        assertEq(bytes(cove.endpointOf(runner)).length, 256, "256 bytes kept");
    }

    function test_RevertWhen_EndpointTooLong() public {
        bytes memory url = new bytes(cove.MAX_ENDPOINT_LENGTH() + 1);
        vm.expectRevert(abi.encodeWithSelector(RunnerEndpoints.EndpointTooLong.selector, 257, 256));
        vm.prank(runner);
        cove.setEndpoint(string(url));
        assertEq(cove.endpointOf(runner), "", "nothing stored");
    }
}
