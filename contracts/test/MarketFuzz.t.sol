// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {Merkle} from "./utils/Merkle.sol";
import {MockERC20} from "./utils/Mocks.sol";
import {Market} from "../src/modules/Market.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";

/// @notice Fuzzed market arithmetic: exact cost, the maxCost bound, conservation of the
/// payment, minted supply, the free cap over random sequences, and allowlist membership.
contract MarketFuzzTest is CoveTest {
    MockERC20 internal pay;
    uint256 internal id;
    Datatoken internal credits;

    function setUp() public override {
        super.setUp();
        pay = new MockERC20();
        (id, credits) = _publishPriced();
    }

    /// @notice Any uint96 price times any uint64 count: cost is exact, the purchase reverts
    /// iff cost > maxCost, the buyer's loss is the owner's gain, supply grows by credits * 1e18.
    /// `nearBoundary` puts maxCost within 3 of the cost, so both outcomes are exercised.
    function testFuzz_Buy_CostBoundAndConservation(uint96 price, uint64 n, uint256 maxCost, bool nearBoundary)
        public
    {
        price = uint96(bound(price, 1, type(uint96).max));
        n = uint64(bound(n, 1, type(uint64).max));
        _setPrice(address(pay), price);

        uint256 cost = uint256(price) * n;
        if (nearBoundary) maxCost = bound(maxCost, cost < 3 ? 0 : cost - 3, cost + 3);
        pay.mint(buyer, cost); // the fuzz token has no faucet limit
        vm.prank(buyer);
        pay.approve(address(cove), type(uint256).max);

        uint256 buyerBefore = pay.balanceOf(buyer);
        uint256 ownerBefore = pay.balanceOf(owner);
        uint256 supplyBefore = credits.totalSupply();

        if (cost > maxCost) {
            vm.expectRevert(abi.encodeWithSelector(Market.CostAboveMaximum.selector, cost, maxCost));
            _buyIn(buyer, id, n, address(pay), maxCost);
            assertEq(pay.balanceOf(buyer), buyerBefore, "buyer unchanged");
            assertEq(pay.balanceOf(owner), ownerBefore, "owner unchanged");
            assertEq(credits.totalSupply(), supplyBefore, "supply unchanged");
        } else {
            vm.expectEmit(true, true, true, true, address(cove));
            emit Market.CreditsPurchased(id, buyer, n, address(pay), cost);
            _buyIn(buyer, id, n, address(pay), maxCost);
            uint256 buyerLoss = buyerBefore - pay.balanceOf(buyer);
            uint256 ownerGain = pay.balanceOf(owner) - ownerBefore;
            assertEq(buyerLoss, cost, "buyer pays price * credits exactly");
            assertEq(ownerGain, buyerLoss, "buyer loss == owner gain");
            assertEq(pay.balanceOf(address(cove)), 0, "hub holds nothing");
            assertEq(credits.totalSupply() - supplyBefore, uint256(n) * 1e18, "supply += credits * 1e18");
            assertEq(credits.balanceOf(buyer), uint256(n) * 1e18, "buyer got the credits");
        }
    }

    /// @notice The same with the real tUSD, funded through its capped faucet (cost bounded).
    function testFuzz_Buy_WithTestPaymentToken(uint96 price, uint64 n) public {
        uint256 maxSpend = 50_000 ether; // five faucet calls
        price = uint96(bound(price, 1, maxSpend));
        n = uint64(bound(n, 1, maxSpend / price));
        _setPrice(address(usd), price);
        uint256 cost = uint256(price) * n;
        _fundAndApprove(buyer, cost);

        _buy(buyer, id, n, cost);
        assertEq(usd.balanceOf(owner), cost, "owner paid");
        assertEq(usd.balanceOf(buyer), 0, "buyer spent exactly the cost");
        assertEq(credits.balanceOf(buyer), uint256(n) * 1e18, "credits");
    }

    /// @notice Free credits ignore maxCost entirely (the cost is 0).
    function testFuzz_Buy_FreeIgnoresMaxCost(uint256 maxCost, uint16 cap, uint64 n) public {
        cap = uint16(bound(cap, 1, type(uint16).max));
        n = uint64(bound(n, 1, cap));
        (uint256 free, Datatoken freeCredits) = _publishFree(cap);
        _buy(stranger, free, n, maxCost);
        assertEq(freeCredits.balanceOf(stranger), uint256(n) * 1e18, "credits");
        assertEq(cove.freeCreditsTaken(free, stranger), n, "taken");
    }

    /// @notice Over a random sequence of free buys by three accounts, each buy succeeds iff
    /// it keeps the account within the cap; no account ever holds more than the cap.
    function testFuzz_FreeCap_NeverExceeded(uint16 cap, uint64[16] memory amounts, uint8[16] memory who) public {
        cap = uint16(bound(cap, 1, 50));
        (uint256 free, Datatoken freeCredits) = _publishFree(cap);
        address[3] memory actors = [buyer, stranger, runner];
        uint256[3] memory taken;

        for (uint256 i; i < amounts.length; ++i) {
            uint256 a = who[i] % 3;
            uint64 n = uint64(bound(amounts[i], 0, uint256(cap) + 1));
            if (n == 0) {
                vm.expectRevert(Market.ZeroCredits.selector);
            } else if (taken[a] + n > cap) {
                vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, cap, taken[a]));
            } else {
                taken[a] += n;
            }
            _buy(actors[a], free, n, 0);

            for (uint256 j; j < 3; ++j) {
                uint256 onChain = cove.freeCreditsTaken(free, actors[j]);
                assertEq(onChain, taken[j], "freeCreditsTaken matches the model");
                assertLe(onChain, cap, "never above the cap");
                assertEq(freeCredits.balanceOf(actors[j]), onChain * 1e18, "credits == taken * 1e18");
            }
        }
        assertEq(freeCredits.totalSupply(), (taken[0] + taken[1] + taken[2]) * 1e18, "supply");
    }

    /// @notice A random allowlist of 3 to 12 accounts: each member's proof admits it; an
    /// outsider is refused with any member's proof.
    function testFuzz_Allowlist_Membership(uint256 seed, uint8 size, uint8 pick, address outsider) public {
        uint256 count = bound(size, 3, 12);
        address[] memory members = new address[](count);
        bytes32[] memory leaves = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            members[i] = address(uint160(uint256(keccak256(abi.encode(seed, i)))));
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(members[i]))));
            vm.assume(members[i] != outsider);
        }
        vm.assume(outsider != address(0));
        Policy memory p = _freePolicy(10);
        p.allowlistRoot = Merkle.root(leaves);
        (uint256 free, Datatoken freeCredits) = _publish(owner, _params(uint256(keccak256(abi.encode("fuzz", seed)))), p);

        uint256 index = pick % count;
        bytes32[] memory proof = Merkle.proof(leaves, index);
        vm.prank(members[index]);
        cove.buy(free, 1, address(0), 0, proof);
        assertEq(freeCredits.balanceOf(members[index]), 1e18, "member admitted");

        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, free, outsider));
        vm.prank(outsider);
        cove.buy(free, 1, address(0), 0, proof);
    }

    function _setPrice(address token, uint96 price) private {
        Policy memory p = _pricedPolicy();
        p.paymentToken = token;
        p.price = price;
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));
    }
}
