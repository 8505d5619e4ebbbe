// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {MockERC20} from "./utils/Mocks.sol";
import {Cove} from "../src/Cove.sol";
import {Market} from "../src/modules/Market.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";

/**
 * @title MarketHandler
 * @notice What the invariant fuzzer may do: free buys, priced buys with random maxCost, and
 * price changes by the owner. It keeps a model (ghost variables) and counts every outcome
 * that differs from the model's prediction.
 */
contract MarketHandler is Test {
    Cove internal immutable cove;
    MockERC20 internal immutable pay;
    address internal immutable owner;
    uint256 public immutable freeId;
    uint256 public immutable pricedId;
    uint16 public immutable cap;

    address[4] internal actors = [address(0xA1), address(0xA2), address(0xA3), address(0xA4)];

    mapping(address => uint256) public ghostTaken;
    uint256 public ghostFreeCredits;
    uint256 public ghostPricedCredits;
    uint256 public ghostPaid;
    uint256 public ghostMinted; // payment tokens minted to actors
    uint256 public mismatches;
    uint256 public calls;

    constructor(Cove cove_, MockERC20 pay_, address owner_, uint256 freeId_, uint256 pricedId_, uint16 cap_) {
        cove = cove_;
        pay = pay_;
        owner = owner_;
        freeId = freeId_;
        pricedId = pricedId_;
        cap = cap_;
    }

    /// @notice The actors, for the invariants.
    function actor(uint256 i) external view returns (address) {
        return actors[i];
    }

    /// @notice An actor takes 0 to cap + 1 free credits.
    function buyFree(uint256 actorSeed, uint64 n) external {
        ++calls;
        address a = actors[actorSeed % actors.length];
        n = uint64(bound(n, 0, uint256(cap) + 1));
        uint256 taken = ghostTaken[a];
        bytes memory expected;
        if (n == 0) expected = abi.encodeWithSelector(Market.ZeroCredits.selector);
        else if (taken + n > cap) expected = abi.encodeWithSelector(Market.FreeCapExceeded.selector, freeId, cap, taken);

        vm.prank(a);
        try cove.buy(freeId, n, address(0), 0, new bytes32[](0)) {
            if (expected.length != 0) ++mismatches;
            ghostTaken[a] = taken + n;
            ghostFreeCredits += n;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expected)) ++mismatches;
        }
    }

    /// @notice An actor buys 1 to 1e6 priced credits with a maxCost near the cost.
    function buyPriced(uint256 actorSeed, uint64 n, uint256 maxCost) external {
        ++calls;
        address a = actors[actorSeed % actors.length];
        n = uint64(bound(n, 1, 1e6));
        (Policy memory p,) = cove.policyOf(pricedId);
        uint256 cost = uint256(p.price) * n;
        maxCost = bound(maxCost, cost / 2, cost * 2);
        pay.mint(a, cost);
        ghostMinted += cost;
        vm.prank(a);
        pay.approve(address(cove), cost);

        vm.prank(a);
        try cove.buy(pricedId, n, address(pay), maxCost, new bytes32[](0)) {
            if (cost > maxCost) ++mismatches;
            ghostPaid += cost;
            ghostPricedCredits += n;
        } catch (bytes memory err) {
            if (cost <= maxCost) ++mismatches;
            else if (keccak256(err) != keccak256(abi.encodeWithSelector(Market.CostAboveMaximum.selector, cost, maxCost))) {
                ++mismatches;
            }
            vm.prank(a);
            pay.approve(address(cove), 0);
        }
    }

    /// @notice The owner reprices the priced dataset.
    function setPrice(uint96 price) external {
        ++calls;
        (Policy memory p,) = cove.policyOf(pricedId);
        p.price = uint96(bound(price, 1, 1e30));
        vm.prank(owner);
        cove.setPolicy(pricedId, p, bytes32(0));
    }
}

/// @notice Invariants of the market over random sequences of buys and price changes.
contract MarketInvariantTest is CoveTest {
    MarketHandler internal handler;
    MockERC20 internal pay;
    Datatoken internal freeCredits;
    Datatoken internal pricedCredits;
    uint16 internal constant CAP = 7;

    function setUp() public override {
        super.setUp();
        pay = new MockERC20();
        uint256 freeId;
        uint256 pricedId;
        (freeId, freeCredits) = _publishFree(CAP);
        Policy memory p = _pricedPolicy();
        p.paymentToken = address(pay);
        p.price = 3;
        (pricedId, pricedCredits) = _publish(owner, _params(2), p);
        handler = new MarketHandler(cove, pay, owner, freeId, pricedId, CAP);
    }

    /// @notice Forge fuzzes only the handler.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice Every outcome matched the model (success iff allowed; the expected error).
    function invariant_OutcomesMatchModel() public view {
        assertEq(handler.mismatches(), 0, "mismatches");
    }

    /// @notice No account ever holds more free credits than the cap.
    function invariant_FreeCapNeverExceeded() public view {
        uint256 sum;
        for (uint256 i; i < 4; ++i) {
            address a = handler.actor(i);
            uint256 taken = cove.freeCreditsTaken(handler.freeId(), a);
            assertLe(taken, CAP, "free cap exceeded");
            assertEq(taken, handler.ghostTaken(a), "taken matches the model");
            assertEq(freeCredits.balanceOf(a), taken * 1e18, "credits == taken * 1e18");
            sum += taken;
        }
        assertEq(freeCredits.totalSupply(), sum * 1e18, "free supply");
    }

    /// @notice What buyers paid is exactly what the owner received; nothing stays in the hub.
    function invariant_PaymentsConserved() public view {
        assertEq(pay.balanceOf(owner), handler.ghostPaid(), "owner received the sum of costs");
        assertEq(pay.balanceOf(address(cove)), 0, "hub holds nothing");
        uint256 held;
        for (uint256 i; i < 4; ++i) held += pay.balanceOf(handler.actor(i));
        assertEq(held + pay.balanceOf(owner), handler.ghostMinted(), "tokens conserved");
        assertEq(pay.totalSupply(), handler.ghostMinted(), "supply");
        assertEq(pricedCredits.totalSupply(), handler.ghostPricedCredits() * 1e18, "priced credit supply");
    }
}
