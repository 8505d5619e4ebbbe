// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {Merkle} from "./utils/Merkle.sol";
import {MockERC20, FalseReturningToken, ReentrantToken} from "./utils/Mocks.sol";
import {Market} from "../src/modules/Market.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";

/// @notice Priced and free purchases: payment, minting, events, every Market error, the
/// payment token's errors bubbling up, the allowlist, expiry, the free cap and permits.
contract MarketTest is CoveTest {
    uint256 internal id;
    Datatoken internal credits;
    uint256 internal constant FUNDS = 1_000 ether;

    function setUp() public override {
        super.setUp();
        (id, credits) = _publishPriced();
        _fundAndApprove(buyer, FUNDS);
    }

    // =============================================================== priced

    function test_Buy_Priced_PaysOwnerMintsCreditsEmits() public {
        uint64 n = 3;
        uint256 cost = uint256(PRICE) * n;

        vm.expectEmit(true, true, true, true, address(cove));
        emit Market.CreditsPurchased(id, buyer, n, address(usd), cost);
        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Transfer(buyer, owner, cost);
        vm.expectEmit(true, true, true, true, address(credits));
        emit IERC20.Transfer(address(0), buyer, n * 1e18);
        _buy(buyer, id, n, cost + 1 ether);

        assertEq(usd.balanceOf(owner), cost, "owner paid price * credits exactly");
        assertEq(usd.balanceOf(buyer), FUNDS - cost, "buyer charged");
        assertEq(usd.balanceOf(address(cove)), 0, "hub keeps nothing");
        assertEq(usd.allowance(buyer, address(cove)), FUNDS - cost, "allowance spent by cost only");
        assertEq(credits.balanceOf(buyer), n * 1e18, "credits minted = credits * 1e18");
        assertEq(credits.totalSupply(), n * 1e18, "supply");
        assertEq(cove.freeCreditsTaken(id, buyer), 0, "priced buys are not free credits");
    }

    function test_Buy_AtExactlyMaxCost() public {
        _buy(buyer, id, 2, 2 * uint256(PRICE));
        assertEq(credits.balanceOf(buyer), 2e18, "bought");
    }

    function test_Buy_Repeated_Accumulates() public {
        _buy(buyer, id, 1, PRICE);
        _buy(buyer, id, 4, 4 * uint256(PRICE));
        assertEq(credits.balanceOf(buyer), 5e18, "credits");
        assertEq(usd.balanceOf(owner), 5 * uint256(PRICE), "paid");
    }

    function test_Buy_ByOwner_OfOwnDataset() public {
        _fundAndApprove(owner, 10 ether);
        _buy(owner, id, 2, type(uint256).max);
        assertEq(usd.balanceOf(owner), 10 ether, "paid to self");
        assertEq(credits.balanceOf(owner), 2e18, "credits");
    }

    function test_Buy_AfterNftTransfer_PaysNewOwner() public {
        address newOwner = address(0x0E2);
        vm.prank(owner);
        cove.transferFrom(owner, newOwner, id);
        _buy(buyer, id, 1, PRICE);
        assertEq(usd.balanceOf(newOwner), PRICE, "new owner paid");
        assertEq(usd.balanceOf(owner), 0, "old owner not paid");
    }

    function test_Buy_UsesCurrentPolicy() public {
        MockERC20 other = new MockERC20();
        other.mint(buyer, 100);
        vm.prank(buyer);
        other.approve(address(cove), 100);

        Policy memory p = _pricedPolicy();
        p.paymentToken = address(other);
        p.price = 7;
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));

        vm.expectEmit(true, true, true, true, address(cove));
        emit Market.CreditsPurchased(id, buyer, 3, address(other), 21);
        _buyIn(buyer, id, 3, address(other), 21);
        assertEq(other.balanceOf(owner), 21, "paid in the new token");
        assertEq(usd.balanceOf(buyer), FUNDS, "old token untouched");
    }

    /// @notice The buyer's maximum names its token: a policy that switched to another token
    /// with the same raw price (here 5e18 units of a 6-decimals token, 5e12 whole tokens)
    /// cannot charge the buyer's standing allowance of it.
    function test_RevertWhen_PaymentTokenChangedAfterQuote() public {
        MockERC20 sixDecimals = new MockERC20();
        sixDecimals.mint(buyer, type(uint128).max);
        vm.prank(buyer);
        sixDecimals.approve(address(cove), type(uint256).max);
        _setPaymentToken(address(sixDecimals)); // same raw price, PRICE units

        // Quoted in tUSD: refused, nothing paid in either token.
        vm.expectRevert(
            abi.encodeWithSelector(Market.PaymentTokenChanged.selector, id, address(usd), address(sixDecimals))
        );
        _buy(buyer, id, 1, PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(Market.PaymentTokenChanged.selector, id, address(usd), address(sixDecimals))
        );
        vm.prank(buyer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), block.timestamp, 27, bytes32(0), bytes32(0));
        assertEq(sixDecimals.balanceOf(owner), 0, "nothing taken in the new token");
        assertEq(usd.balanceOf(buyer), FUNDS, "nothing taken in the old token");
        assertEq(credits.balanceOf(buyer), 0, "no credits");

        // Control: named in the new token, the same purchase goes through.
        _buyIn(buyer, id, 1, address(sixDecimals), PRICE);
        assertEq(sixDecimals.balanceOf(owner), PRICE, "paid in the token the buyer named");
    }

    /// @notice A free dataset charges nothing, so the token the buyer names does not matter.
    function test_Buy_Free_IgnoresNamedToken() public {
        (uint256 free, Datatoken freeCredits) = _publishFree(3);
        _buyIn(stranger, free, 1, address(0xdead), 0);
        _buyIn(stranger, free, 1, address(usd), 0);
        assertEq(freeCredits.balanceOf(stranger), 2e18, "both given");
    }

    function test_Buy_LargestCreditCount() public {
        Policy memory p = _pricedPolicy();
        p.price = 1;
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));
        uint64 n = type(uint64).max; // 1.8e19 credits at 1 wei: cost fits, mint fits
        _fundAndApprove(stranger, n);
        _buy(stranger, id, n, n);
        assertEq(credits.balanceOf(stranger), uint256(n) * 1e18, "uint64 max credits minted");
    }

    function test_RevertWhen_ZeroCredits_Priced() public {
        vm.expectRevert(Market.ZeroCredits.selector);
        _buy(buyer, id, 0, type(uint256).max);
    }

    function test_RevertWhen_CostAboveMaximum() public {
        uint256 cost = 4 * uint256(PRICE);
        vm.expectRevert(abi.encodeWithSelector(Market.CostAboveMaximum.selector, cost, cost - 1));
        _buy(buyer, id, 4, cost - 1);
        vm.expectRevert(abi.encodeWithSelector(Market.CostAboveMaximum.selector, cost, 0));
        _buy(buyer, id, 4, 0);
        assertEq(credits.totalSupply(), 0, "nothing minted");
    }

    function test_RevertWhen_PriceRaisedAfterQuote() public {
        uint256 quoted = 2 * uint256(PRICE);
        Policy memory p = _pricedPolicy();
        p.price = PRICE * 2; // the owner front-runs the buyer with a price rise
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(Market.CostAboveMaximum.selector, 2 * quoted, quoted));
        _buy(buyer, id, 2, quoted);
    }

    // --------------------------------------------------------------- payment token errors

    function test_RevertWhen_NoAllowance_BubblesERC20InsufficientAllowance() public {
        _fund(stranger, 100 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 0, PRICE)
        );
        _buy(stranger, id, 1, type(uint256).max);
    }

    function test_RevertWhen_PartialAllowance_BubblesERC20InsufficientAllowance() public {
        _fund(stranger, 100 ether);
        vm.prank(stranger);
        usd.approve(address(cove), 2 * uint256(PRICE) - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 2 * uint256(PRICE) - 1, 2 * uint256(PRICE)
            )
        );
        _buy(stranger, id, 2, type(uint256).max);
    }

    function test_RevertWhen_NoFunds_BubblesERC20InsufficientBalance() public {
        _fund(stranger, PRICE - 1);
        vm.prank(stranger);
        usd.approve(address(cove), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, stranger, PRICE - 1, PRICE)
        );
        _buy(stranger, id, 1, type(uint256).max);
        assertEq(credits.balanceOf(stranger), 0, "no credits");
    }

    function test_RevertWhen_TokenReturnsFalse() public {
        FalseReturningToken bad = new FalseReturningToken();
        _setPaymentToken(address(bad));
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(bad)));
        _buyIn(buyer, id, 1, address(bad), type(uint256).max);
    }

    function test_RevertWhen_PaymentTokenHasNoCode() public {
        address eoa = address(0xDEAD);
        _setPaymentToken(eoa);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, eoa));
        _buyIn(buyer, id, 1, eoa, type(uint256).max);
    }

    function test_RevertWhen_Reentered() public {
        ReentrantToken evil = new ReentrantToken(cove);
        _setPaymentToken(address(evil));
        evil.mint(buyer, 100 ether);
        vm.prank(buyer);
        evil.approve(address(cove), type(uint256).max);
        evil.arm(id);
        vm.expectRevert(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        _buyIn(buyer, id, 1, address(evil), type(uint256).max);
    }

    // =============================================================== free

    function test_Buy_Free_MintsCountsEmits() public {
        (uint256 free, Datatoken freeCredits) = _publishFree(5);
        vm.expectEmit(true, true, true, true, address(cove));
        emit Market.CreditsPurchased(free, stranger, 2, address(0), 0);
        vm.expectEmit(true, true, true, true, address(freeCredits));
        emit IERC20.Transfer(address(0), stranger, 2e18);
        _buy(stranger, free, 2, 0);

        assertEq(freeCredits.balanceOf(stranger), 2e18, "credits");
        assertEq(cove.freeCreditsTaken(free, stranger), 2, "freeCreditsTaken");
        assertEq(cove.freeCreditsTaken(free, buyer), 0, "others untouched");
    }

    function test_Buy_Free_WithPaymentTokenSet_PaysNothing() public {
        Policy memory p = _freePolicy(3);
        p.paymentToken = address(usd);
        (uint256 free,) = _publish(owner, _params(50), p);
        vm.expectEmit(true, true, true, true, address(cove));
        emit Market.CreditsPurchased(free, stranger, 1, address(0), 0);
        _buy(stranger, free, 1, 0); // stranger has no tUSD and no allowance
        assertEq(usd.balanceOf(owner), 0, "nothing paid");
    }

    function test_RevertWhen_ZeroCredits_Free() public {
        (uint256 free,) = _publishFree(5);
        vm.expectRevert(Market.ZeroCredits.selector);
        _buy(buyer, free, 0, 0);
    }

    function test_RevertWhen_FreeCapExceeded() public {
        (uint256 free, Datatoken freeCredits) = _publishFree(3);
        _buy(buyer, free, 2, 0);
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 3, 2));
        _buy(buyer, free, 2, 0);
        _buy(buyer, free, 1, 0); // exactly at the cap
        assertEq(cove.freeCreditsTaken(free, buyer), 3, "at the cap");
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 3, 3));
        _buy(buyer, free, 1, 0);
        assertEq(freeCredits.balanceOf(buyer), 3e18, "credits = cap");
    }

    function test_RevertWhen_FreeCapExceeded_InOneBuy() public {
        (uint256 free,) = _publishFree(3);
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 3, 0));
        _buy(buyer, free, 4, 0);
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 3, 0));
        _buy(buyer, free, type(uint64).max, 0);
    }

    function test_FreeCap_IsPerAddressAndPerDataset() public {
        (uint256 a,) = _publishFree(2);
        (uint256 b,) = _publishFree(2);
        _buy(buyer, a, 2, 0);
        _buy(stranger, a, 2, 0);
        _buy(buyer, b, 2, 0);
        assertEq(cove.freeCreditsTaken(a, buyer), 2, "a/buyer");
        assertEq(cove.freeCreditsTaken(a, stranger), 2, "a/stranger");
        assertEq(cove.freeCreditsTaken(b, buyer), 2, "b/buyer");
        assertEq(cove.freeCreditsTaken(b, stranger), 0, "b/stranger");
    }

    function test_FreeCap_CountPersistsAcrossPolicyChanges() public {
        (uint256 free,) = _publishFree(4);
        _buy(buyer, free, 3, 0);

        vm.prank(owner);
        cove.setPolicy(free, _pricedPolicy(), bytes32(0)); // now priced
        _buy(buyer, free, 2, type(uint256).max);
        assertEq(cove.freeCreditsTaken(free, buyer), 3, "priced buys do not count");

        vm.prank(owner);
        cove.setPolicy(free, _freePolicy(2), bytes32(0)); // free again, lower cap
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 2, 3));
        _buy(buyer, free, 1, 0);

        vm.prank(owner);
        cove.setPolicy(free, _freePolicy(5), bytes32(0)); // raised cap: 2 more
        _buy(buyer, free, 2, 0);
        vm.expectRevert(abi.encodeWithSelector(Market.FreeCapExceeded.selector, free, 5, 5));
        _buy(buyer, free, 1, 0);
    }

    // =============================================================== allowlist

    function test_Allowlist_LeafIsDoubleHashed() public view {
        address a = address(0xA);
        assertEq(cove.allowlistLeaf(a), keccak256(bytes.concat(keccak256(abi.encode(a)))), "leaf");
        bytes32 x = keccak256("x");
        bytes32 y = keccak256("y");
        assertEq(Merkle.hashPair(x, y), Hashes.commutativeKeccak256(x, y), "pair hash = OpenZeppelin's");
        assertEq(Merkle.hashPair(y, x), Hashes.commutativeKeccak256(x, y), "pair hash is commutative");
    }

    function test_Allowlist_MembersBuyWithProof() public {
        (address[] memory members, bytes32[] memory leaves) = _members();
        _setAllowlist(id, Merkle.root(leaves));
        for (uint256 i; i < members.length; ++i) {
            bytes32[] memory proof = Merkle.proof(leaves, i);
            if (members[i] != buyer) _fundAndApprove(members[i], PRICE);
            vm.prank(members[i]);
            cove.buy(id, 1, address(usd), PRICE, proof);
            assertEq(credits.balanceOf(members[i]), 1e18, "member bought");
        }
    }

    function test_RevertWhen_NotAllowlisted_NonMember() public {
        (, bytes32[] memory leaves) = _members();
        _setAllowlist(id, Merkle.root(leaves));
        _fundAndApprove(stranger, PRICE);
        for (uint256 i; i < leaves.length; ++i) {
            // No member's proof works for someone else.
            bytes32[] memory proof = Merkle.proof(leaves, i);
            vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, id, stranger));
            vm.prank(stranger);
            cove.buy(id, 1, address(usd), PRICE, proof);
        }
        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, id, stranger));
        _buy(stranger, id, 1, PRICE);
    }

    function test_RevertWhen_NotAllowlisted_WrongProof() public {
        (address[] memory members, bytes32[] memory leaves) = _members();
        _setAllowlist(id, Merkle.root(leaves));
        uint256 me = members.length - 1; // the buyer
        assertEq(members[me], buyer, "buyer is a member");
        bytes memory err = abi.encodeWithSelector(Market.NotAllowlisted.selector, id, buyer);

        // Another member's proof.
        bytes32[] memory proof = Merkle.proof(leaves, 0);
        vm.expectRevert(err);
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, proof);

        // No proof.
        vm.expectRevert(err);
        _buy(buyer, id, 1, PRICE);

        // The right proof with a sibling tampered.
        proof = Merkle.proof(leaves, me);
        proof[0] = bytes32(uint256(proof[0]) ^ 1);
        vm.expectRevert(err);
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, proof);

        // The right proof with an extra element.
        bytes32[] memory good = Merkle.proof(leaves, me);
        bytes32[] memory longer = new bytes32[](good.length + 1);
        for (uint256 i; i < good.length; ++i) longer[i] = good[i];
        longer[good.length] = keccak256("junk");
        vm.expectRevert(err);
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, longer);

        // And the right proof works.
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, good);
    }

    function test_RevertWhen_TreeUsesSingleHashedLeaves() public {
        (address[] memory members,) = _members();
        bytes32[] memory single = new bytes32[](members.length);
        for (uint256 i; i < members.length; ++i) single[i] = keccak256(abi.encode(members[i]));
        _setAllowlist(id, Merkle.root(single));
        bytes32[] memory proof = Merkle.proof(single, members.length - 1);
        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, id, buyer));
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, proof);
    }

    function test_Allowlist_AppliesToFreeDatasets() public {
        (address[] memory members, bytes32[] memory leaves) = _members();
        Policy memory p = _freePolicy(2);
        p.allowlistRoot = Merkle.root(leaves);
        (uint256 free,) = _publish(owner, _params(77), p);
        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, free, stranger));
        _buy(stranger, free, 1, 0);
        vm.prank(members[1]);
        cove.buy(free, 2, address(0), 0, Merkle.proof(leaves, 1));
        assertEq(cove.freeCreditsTaken(free, members[1]), 2, "member took free credits");
    }

    function test_Allowlist_OpenDatasetIgnoresProof() public {
        bytes32[] memory junk = new bytes32[](2);
        junk[0] = keccak256("a");
        junk[1] = keccak256("b");
        vm.prank(buyer);
        cove.buy(id, 1, address(usd), PRICE, junk);
        assertEq(credits.balanceOf(buyer), 1e18, "bought");
    }

    function test_Allowlist_RemovedByPolicyUpdate() public {
        (, bytes32[] memory leaves) = _members();
        _setAllowlist(id, Merkle.root(leaves));
        _fundAndApprove(stranger, PRICE);
        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, id, stranger));
        _buy(stranger, id, 1, PRICE);
        _setAllowlist(id, 0);
        _buy(stranger, id, 1, PRICE);
    }

    // =============================================================== expiry

    function test_Expiry_BuyWorksUntilAndAtExpiry() public {
        uint40 expiry = uint40(block.timestamp + 1 days);
        _setExpiry(id, expiry);
        _buy(buyer, id, 1, PRICE);
        vm.warp(expiry);
        _buy(buyer, id, 1, PRICE); // exactly at expiry: still open
        assertEq(credits.balanceOf(buyer), 2e18, "both bought");
    }

    function test_RevertWhen_PolicyExpired() public {
        uint40 expiry = uint40(block.timestamp + 1 days);
        _setExpiry(id, expiry);
        vm.warp(uint256(expiry) + 1);
        vm.expectRevert(abi.encodeWithSelector(Market.PolicyExpired.selector, id, expiry));
        _buy(buyer, id, 1, PRICE);
        vm.warp(uint256(expiry) + 365 days);
        vm.expectRevert(abi.encodeWithSelector(Market.PolicyExpired.selector, id, expiry));
        _buy(buyer, id, 1, PRICE);
    }

    function test_RevertWhen_PolicyExpired_Free() public {
        Policy memory p = _freePolicy(3);
        p.expiry = uint40(block.timestamp + 10);
        (uint256 free,) = _publish(owner, _params(60), p);
        vm.warp(block.timestamp + 11);
        vm.expectRevert(abi.encodeWithSelector(Market.PolicyExpired.selector, free, p.expiry));
        _buy(buyer, free, 1, 0);
    }

    function test_Expiry_RenewedByPolicyUpdate() public {
        uint40 expiry = uint40(block.timestamp + 1 days);
        _setExpiry(id, expiry);
        vm.warp(uint256(expiry) + 1);
        _setExpiry(id, uint40(block.timestamp + 1 days));
        _buy(buyer, id, 1, PRICE);
        _setExpiry(id, 0);
        vm.warp(type(uint40).max);
        _buy(buyer, id, 1, PRICE); // no expiry: open forever
    }

    // =============================================================== check order

    function test_CheckOrder() public {
        (, bytes32[] memory leaves) = _members();
        Policy memory p = _pricedPolicy();
        p.expiry = uint40(block.timestamp + 10);
        p.allowlistRoot = Merkle.root(leaves);
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));

        // Not allowlisted is reported before the cost check.
        vm.expectRevert(abi.encodeWithSelector(Market.NotAllowlisted.selector, id, stranger));
        _buy(stranger, id, 1, 0);
        vm.warp(block.timestamp + 11);
        // Expiry before the allowlist.
        vm.expectRevert(abi.encodeWithSelector(Market.PolicyExpired.selector, id, p.expiry));
        _buy(stranger, id, 1, 0);
        // Zero credits before expiry.
        vm.expectRevert(Market.ZeroCredits.selector);
        _buy(stranger, id, 0, 0);
    }

    // =============================================================== buyWithPermit

    function test_BuyWithPermit_ValidPermit() public {
        (address signer, uint256 key) = (vm.addr(0xCAFE), uint256(0xCAFE));
        _fund(signer, 100 ether);
        uint256 maxCost = 3 * uint256(PRICE);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), maxCost, deadline);

        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Approval(signer, address(cove), maxCost);
        vm.expectEmit(true, true, true, true, address(cove));
        emit Market.CreditsPurchased(id, signer, 2, address(usd), 2 * uint256(PRICE));
        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Transfer(signer, owner, 2 * uint256(PRICE));
        vm.prank(signer);
        cove.buyWithPermit(id, 2, address(usd), maxCost, _noProof(), deadline, v, r, s);

        assertEq(usd.nonces(signer), 1, "permit used");
        assertEq(usd.allowance(signer, address(cove)), maxCost - 2 * uint256(PRICE), "allowance left");
        assertEq(usd.balanceOf(owner), 2 * uint256(PRICE), "owner paid");
        assertEq(credits.balanceOf(signer), 2e18, "credits");
    }

    function test_BuyWithPermit_FrontRunPermitIgnoredWhenAllowanceExists() public {
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), PRICE, deadline);

        // Someone copies the permit from the mempool and submits it first.
        vm.prank(stranger);
        usd.permit(signer, address(cove), PRICE, deadline, v, r, s);
        assertEq(usd.nonces(signer), 1, "front-run consumed the nonce");

        vm.prank(signer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), deadline, v, r, s);
        assertEq(credits.balanceOf(signer), 1e18, "bought anyway");
        assertEq(usd.nonces(signer), 1, "the second permit failed (and was ignored)");
        assertEq(usd.allowance(signer, address(cove)), 0, "allowance spent");
    }

    function test_BuyWithPermit_BadPermitIgnoredWhenAllowanceExists() public {
        // buyer approved FUNDS in setUp; a junk signature does not stop the purchase.
        vm.prank(buyer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), block.timestamp, 27, bytes32(uint256(1)), bytes32(uint256(2)));
        assertEq(credits.balanceOf(buyer), 1e18, "bought");
        assertEq(usd.nonces(buyer), 0, "no permit consumed");
    }

    function test_RevertWhen_BuyWithPermit_WrongSignerNoAllowance() public {
        address signer = vm.addr(0xCAFE);
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        // Signed by another key.
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(0xBEEF, _permitDigest(signer, address(cove), PRICE, usd.nonces(signer), deadline));
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 0, PRICE)
        );
        vm.prank(signer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), deadline, v, r, s);
    }

    function test_RevertWhen_BuyWithPermit_ExpiredPermitNoAllowance() public {
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), PRICE, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 0, PRICE)
        );
        vm.prank(signer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), deadline, v, r, s);
    }

    function test_RevertWhen_BuyWithPermit_SomeoneElsesPermit() public {
        // A permit only ever approves for msg.sender: a thief replaying it buys nothing.
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        _fund(signer, 100 ether);
        _fund(stranger, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), PRICE, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 0, PRICE)
        );
        vm.prank(stranger);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), deadline, v, r, s);
        assertEq(usd.nonces(signer), 0, "permit unused");
    }

    function test_RevertWhen_BuyWithPermit_PermitForAnotherSpender() public {
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, stranger, PRICE, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(cove), 0, PRICE)
        );
        vm.prank(signer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, _noProof(), deadline, v, r, s);
    }

    function test_RevertWhen_BuyWithPermit_CostAboveMaximum() public {
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), PRICE, deadline);
        vm.expectRevert(abi.encodeWithSelector(Market.CostAboveMaximum.selector, 2 * uint256(PRICE), PRICE));
        vm.prank(signer);
        cove.buyWithPermit(id, 2, address(usd), PRICE, _noProof(), deadline, v, r, s);
        assertEq(usd.nonces(signer), 0, "permit rolled back with the purchase");
    }

    function test_RevertWhen_BuyWithPermit_ZeroCredits() public {
        vm.expectRevert(Market.ZeroCredits.selector);
        vm.prank(buyer);
        cove.buyWithPermit(id, 0, address(usd), PRICE, _noProof(), 0, 0, 0, 0);
    }

    function test_BuyWithPermit_WithAllowlistProof() public {
        uint256 key = 0xCAFE;
        address signer = vm.addr(key);
        address[] memory members = new address[](3);
        members[0] = address(0x1);
        members[1] = signer;
        members[2] = address(0x3);
        bytes32[] memory leaves = _leaves(members);
        _setAllowlist(id, Merkle.root(leaves));
        _fund(signer, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(key, address(cove), PRICE, deadline);
        bytes32[] memory proof = Merkle.proof(leaves, 1);
        vm.prank(signer);
        cove.buyWithPermit(id, 1, address(usd), PRICE, proof, deadline, v, r, s);
        assertEq(credits.balanceOf(signer), 1e18, "bought");
    }

    function test_BuyWithPermit_TokenWithoutPermit_UsesAllowance() public {
        MockERC20 plain = new MockERC20();
        _setPaymentToken(address(plain));
        plain.mint(stranger, PRICE);
        vm.prank(stranger);
        plain.approve(address(cove), PRICE);
        vm.prank(stranger);
        cove.buyWithPermit(id, 1, address(plain), PRICE, _noProof(), block.timestamp, 27, bytes32(0), bytes32(0));
        assertEq(plain.balanceOf(owner), PRICE, "paid");
    }

    function test_BuyWithPermit_FreeDataset() public {
        // A free dataset has no payment token; the permit is skipped, the credits given.
        (uint256 free, Datatoken freeCredits) = _publishFree(2);
        vm.prank(stranger);
        cove.buyWithPermit(free, 2, address(0), 0, _noProof(), 0, 0, 0, 0);
        assertEq(freeCredits.balanceOf(stranger), 2e18, "free credits");
        assertEq(cove.freeCreditsTaken(free, stranger), 2, "counted");
    }

    function test_RevertWhen_BuyWithPermit_PaymentTokenHasNoCode() public {
        // The permit is skipped; the payment then fails as it does for buy.
        address eoa = address(0xDEAD);
        _setPaymentToken(eoa);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, eoa));
        vm.prank(buyer);
        cove.buyWithPermit(id, 1, eoa, PRICE, _noProof(), 0, 0, 0, 0);
    }

    // =============================================================== helpers

    function _setPaymentToken(address token) private {
        Policy memory p = _pricedPolicy();
        p.paymentToken = token;
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));
    }

    function _setAllowlist(uint256 datasetId, bytes32 root) private {
        (Policy memory p,) = cove.policyOf(datasetId);
        p.allowlistRoot = root;
        vm.prank(owner);
        cove.setPolicy(datasetId, p, bytes32(0));
    }

    function _setExpiry(uint256 datasetId, uint40 expiry) private {
        (Policy memory p,) = cove.policyOf(datasetId);
        p.expiry = expiry;
        vm.prank(owner);
        cove.setPolicy(datasetId, p, bytes32(0));
    }

    /// @dev Five members, the buyer last (an odd count, so one node is promoted unpaired).
    function _members() private view returns (address[] memory members, bytes32[] memory leaves) {
        members = new address[](5);
        members[0] = address(0xA11);
        members[1] = address(0xB22);
        members[2] = address(0xC33);
        members[3] = address(0xD44);
        members[4] = buyer;
        leaves = _leaves(members);
    }

    /// @dev OpenZeppelin standard leaves: keccak256(bytes.concat(keccak256(abi.encode(account)))).
    function _leaves(address[] memory accounts) private pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(accounts[i]))));
        }
    }
}
