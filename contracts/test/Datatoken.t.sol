// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";

/// @notice The per-dataset credit token: a clone whose immutable argument is the dataset id,
/// minted and burned only by the hub.
contract DatatokenTest is CoveTest {
    function test_Metadata_FirstDataset() public {
        (uint256 id, Datatoken token) = _publishPriced();
        assertEq(token.datasetId(), id, "datasetId");
        assertEq(token.name(), "Cove dataset #1 credit", "name");
        assertEq(token.symbol(), "COVE1", "symbol");
        assertEq(token.decimals(), 18, "decimals");
        assertEq(token.hub(), address(cove), "hub");
        assertEq(token.totalSupply(), 0, "supply");
    }

    function test_Metadata_MultiDigitIds() public {
        Datatoken token;
        for (uint256 i = 1; i <= 12; ++i) (, token) = _publish(owner, _params(i), _pricedPolicy());
        assertEq(token.datasetId(), 12, "datasetId");
        assertEq(token.name(), "Cove dataset #12 credit", "name");
        assertEq(token.symbol(), "COVE12", "symbol");
        assertEq(token.hub(), address(cove), "hub shared through the template's code");
    }

    function test_Clone_IsMinimalProxyWithIdArgument() public {
        (uint256 id, Datatoken token) = _publishPriced();
        address template = cove.datatokenTemplate();
        bytes memory code = address(token).code;
        assertEq(code.length, 45 + 32, "ERC-1167 runtime + one word of args");
        assertEq(
            keccak256(code),
            keccak256(
                abi.encodePacked(
                    hex"363d3d373d3d3d363d73", template, hex"5af43d82803e903d91602b57fd5bf3", abi.encode(id)
                )
            ),
            "clone code"
        );
        assertEq(abi.decode(Clones.fetchCloneArgs(address(token)), (uint256)), id, "args = id");
    }

    function test_RevertWhen_NonHubMints() public {
        (, Datatoken token) = _publishPriced();
        address[4] memory callers = [owner, buyer, runner, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, callers[i]));
            vm.prank(callers[i]);
            token.mint(callers[i], 1e18);
        }
        // Not the test contract (which deployed the hub) either.
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, address(this)));
        token.mint(address(this), 1);
        assertEq(token.totalSupply(), 0, "nothing minted");
    }

    function test_RevertWhen_NonHubMintsOnTemplate() public {
        Datatoken template = Datatoken(cove.datatokenTemplate());
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, stranger));
        vm.prank(stranger);
        template.mint(stranger, 1);
    }

    function test_RevertWhen_StandaloneDeployMintedByOthers() public {
        // A Datatoken deployed by someone else has that deployer as its hub; Cove ignores it.
        vm.prank(stranger);
        Datatoken rogue = new Datatoken();
        assertEq(rogue.hub(), stranger, "rogue hub");
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, address(cove)));
        vm.prank(address(cove));
        rogue.mint(buyer, 1);
    }

    function testFuzz_RevertWhen_AnyoneButHubMints(address caller, uint256 amount) public {
        (, Datatoken token) = _publishPriced();
        vm.assume(caller != address(cove));
        vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, caller));
        vm.prank(caller);
        token.mint(caller, amount);
    }

    function test_Credits_AreTransferable() public {
        (uint256 id, Datatoken token) = _publishFree(5);
        _buy(buyer, id, 3, 0);
        vm.expectEmit(true, true, true, true, address(token));
        emit IERC20.Transfer(buyer, stranger, 1e18);
        vm.prank(buyer);
        assertTrue(token.transfer(stranger, 1e18), "transfer returned true");
        assertEq(token.balanceOf(buyer), 2e18, "sender");
        assertEq(token.balanceOf(stranger), 1e18, "recipient");
        // Receiving credits does not count against the recipient's free cap.
        assertEq(cove.freeCreditsTaken(id, stranger), 0, "recipient's free count");
    }

    function test_Credits_AreSeparatePerDataset() public {
        (uint256 a, Datatoken ta) = _publishFree(5);
        (uint256 b, Datatoken tb) = _publishFree(5);
        _buy(buyer, a, 2, 0);
        _buy(buyer, b, 1, 0);
        assertEq(ta.balanceOf(buyer), 2e18, "a");
        assertEq(tb.balanceOf(buyer), 1e18, "b");
        assertEq(ta.datasetId(), a, "a id");
        assertEq(tb.datasetId(), b, "b id");
    }

    function test_RevertWhen_NonHubBurns() public {
        (uint256 id, Datatoken token) = _publishFree(5);
        _buy(buyer, id, 3, 0);
        address[4] memory callers = [owner, buyer, cove.computeJobs(), address(this)];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(Datatoken.DatatokenUnauthorized.selector, callers[i]));
            vm.prank(callers[i]);
            token.burn(buyer, 1e18);
        }
        assertEq(token.balanceOf(buyer), 3e18, "nothing burned");
    }

    function test_Burn_ByHub() public {
        (uint256 id, Datatoken token) = _publishFree(5);
        _buy(buyer, id, 3, 0);
        vm.expectEmit(true, true, true, true, address(token));
        emit IERC20.Transfer(buyer, address(0), 2e18);
        vm.prank(address(cove));
        token.burn(buyer, 2e18);
        assertEq(token.balanceOf(buyer), 1e18, "burned");
        assertEq(token.totalSupply(), 1e18, "supply");
    }
}
