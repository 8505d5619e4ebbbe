// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CoveTest} from "./utils/CoveTest.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";
import {DatasetParams} from "../src/modules/DatasetRegistry.sol";

/// @notice Policy validation (every `checkPolicy` error, through `checkPolicy`, `publish`
/// and `setPolicy`), the accepted boundaries, and versioning.
contract PolicyTest is CoveTest {
    uint256 internal id;
    /// @notice The public row count of every dataset `_params` builds (and so of `id`).
    uint64 internal constant ROWS = 1_000;

    function setUp() public override {
        super.setUp();
        (id,) = _publishPriced();
    }

    // --------------------------------------------------------------- errors

    function test_RevertWhen_BudgetZero() public {
        Policy memory p = _pricedPolicy();
        p.budget = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidPrivacyBudget.selector));
    }

    function test_RevertWhen_BudgetAndCapZero_ReportsBudgetFirst() public {
        Policy memory p = _pricedPolicy();
        p.budget = 0;
        p.perJobCap = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidPrivacyBudget.selector));
    }

    function test_RevertWhen_PerJobCapZero() public {
        Policy memory p = _pricedPolicy();
        p.perJobCap = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, 0, BUDGET));
    }

    function test_RevertWhen_PerJobCapAboveBudget() public {
        Policy memory p = _pricedPolicy();
        p.perJobCap = BUDGET + 1;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, BUDGET + 1, BUDGET));
        p.perJobCap = type(uint32).max;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, type(uint32).max, BUDGET));
    }

    function test_RevertWhen_DeltaZero() public {
        Policy memory p = _pricedPolicy();
        p.delta = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidDelta.selector, 0));
    }

    function test_RevertWhen_DeltaOne() public {
        Policy memory p = _pricedPolicy();
        p.delta = 1e18;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidDelta.selector, 1e18));
    }

    function test_RevertWhen_DeltaAboveOne() public {
        Policy memory p = _pricedPolicy();
        p.delta = type(uint64).max;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidDelta.selector, type(uint64).max));
    }

    function test_RevertWhen_DeltaNotBelowOneOverRows() public {
        assertEq(cove.datasetOf(id).rows, ROWS, "fixture rows");
        Policy memory p = _pricedPolicy();
        p.delta = 1e15; // δ = 1/1000 = 1/rows: refused
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, 1e15, ROWS));
        p.delta = 1e18 - 1; // a valid δ in itself, far above 1/rows
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, 1e18 - 1, ROWS));
        // Control: one unit below 1/rows passes everywhere.
        p.delta = 1e15 - 1;
        _expectAccepted(p);
    }

    function test_RevertWhen_DeltaNotBelowOneOverRows_ReportedBeforeMaxEpochs() public {
        Policy memory p = _pricedPolicy();
        p.delta = 1e15;
        p.maxEpochs = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, 1e15, ROWS));
        // InvalidDelta comes first.
        p.delta = 1e18;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidDelta.selector, 1e18));
    }

    function test_DeltaBound_UsesEachDatasetsRows() public {
        // A dataset of 3 rows: δ < 1/3, i.e. δ · 3 < 1e18 in 1e-18 units.
        DatasetParams memory params = _params(77);
        params.rows = 3;
        Policy memory p = _pricedPolicy();
        p.delta = 333_333_333_333_333_334; // · 3 = 1e18 + 2
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, 3));
        vm.prank(owner);
        cove.publish(params, p, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, 3));
        cove.checkPolicy(p, 3);

        p.delta = 333_333_333_333_333_333; // · 3 = 1e18 - 1: the largest δ below 1/3
        cove.checkPolicy(p, 3);
        (uint256 small,) = _publish(owner, params, p);
        (Policy memory stored,) = cove.policyOf(small);
        assertEq(stored.delta, p.delta, "stored");

        // The same δ is refused on the 1000-row dataset, by setPolicy as by checkPolicy.
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, ROWS));
        cove.checkPolicy(p, ROWS);
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, ROWS));
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));

        // setPolicy on the small dataset reads its own rows: the boundary holds there too.
        vm.prank(owner);
        cove.setPolicy(small, p, bytes32(0));
        assertEq(_version(small), 2, "set");
        p.delta += 1;
        vm.expectRevert(abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, 3));
        vm.prank(owner);
        cove.setPolicy(small, p, bytes32(0));
        assertEq(_version(small), 2, "unchanged");

        // One row: every δ below 1 is below 1/rows.
        p.delta = 1e18 - 1;
        cove.checkPolicy(p, 1);
    }

    function test_RevertWhen_MaxEpochsZero() public {
        Policy memory p = _pricedPolicy();
        p.maxEpochs = 0;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.InvalidMaxEpochs.selector));
    }

    function test_RevertWhen_PricedWithoutPaymentToken() public {
        Policy memory p = _pricedPolicy();
        p.paymentToken = address(0);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.MissingPaymentToken.selector));
        // A free cap does not stand in for a token on a priced dataset.
        p.freeCap = 10;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.MissingPaymentToken.selector));
    }

    function test_RevertWhen_FreeWithoutFreeCap() public {
        Policy memory p = _freePolicy(0);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.MissingFreeCap.selector));
        // A payment token does not make a free dataset valid either.
        p.paymentToken = address(usd);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.MissingFreeCap.selector));
    }

    function test_RevertWhen_ExpiryNow() public {
        Policy memory p = _pricedPolicy();
        p.expiry = uint40(block.timestamp);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.ExpiryInPast.selector, p.expiry, block.timestamp));
    }

    function test_RevertWhen_ExpiryInPast() public {
        Policy memory p = _pricedPolicy();
        p.expiry = 1;
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.ExpiryInPast.selector, 1, block.timestamp));
        p.expiry = uint40(block.timestamp - 1);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.ExpiryInPast.selector, p.expiry, block.timestamp));
    }

    function test_RevertWhen_ExpiryPassesBetweenCheckAndSet() public {
        Policy memory p = _pricedPolicy();
        p.expiry = uint40(block.timestamp + 100);
        cove.checkPolicy(p, ROWS);
        vm.warp(block.timestamp + 100);
        _expectRejected(p, abi.encodeWithSelector(AccessPolicies.ExpiryInPast.selector, p.expiry, block.timestamp));
    }

    // --------------------------------------------------------------- accepted boundaries

    function test_Accepts_Boundaries() public {
        Policy memory p = _pricedPolicy();
        p.perJobCap = p.budget; // cap == budget
        _expectAccepted(p);

        p = _pricedPolicy();
        p.delta = 1; // smallest δ
        _expectAccepted(p);

        p.delta = 1e15 - 1; // largest δ for 1000 rows (δ < 1/rows)
        _expectAccepted(p);

        // The smallest budget and cap. The publication's charge must fit the budget too: a
        // count noise of σ 1000 at the largest δ gives it ε 0 (RDP 0.000512 at α = 1024,
        // where ln(1/δ)/(α − 1) = 0.006753 is below the order's offset 0.007753).
        p = _pricedPolicy();
        p.maxEpochs = 1;
        p.budget = 1;
        p.perJobCap = 1;
        p.delta = 1e15 - 1;
        _expectAcceptedWithNoise(p, 1_000_000_000);

        p = _pricedPolicy();
        p.budget = type(uint32).max;
        p.perJobCap = type(uint32).max;
        p.maxEpochs = type(uint16).max;
        p.price = type(uint96).max;
        p.expiry = type(uint40).max;
        _expectAccepted(p);

        p = _pricedPolicy();
        p.expiry = uint40(block.timestamp + 1); // earliest future expiry
        _expectAccepted(p);

        p = _freePolicy(1); // free with no token and the smallest cap
        _expectAccepted(p);

        p = _freePolicy(type(uint16).max);
        p.paymentToken = address(usd); // a token on a free dataset is ignored
        _expectAccepted(p);

        p = _pricedPolicy();
        p.allowlistRoot = keccak256("allow");
        p.modelFamiliesRoot = keccak256("families");
        p.computeOnly = false;
        _expectAccepted(p);
    }

    /// @notice checkPolicy accepts exactly the policies its documented rules allow, and
    /// reports the first rule broken in the documented order.
    /// `repair` bits make one rule's fields valid each, so deep rules get reached too.
    function testFuzz_CheckPolicy_MatchesRules(Policy memory p, uint32 timeOffset, uint8 repair, uint64 rows) public {
        vm.warp(T0 + timeOffset);
        if (repair & 64 != 0) rows = uint64(bound(rows, 1, 1e9));
        if (repair & 1 != 0) p.budget = uint32(bound(p.budget, 1, type(uint32).max));
        if (repair & 2 != 0) p.perJobCap = uint32(bound(p.perJobCap, 1, p.budget == 0 ? 1 : p.budget));
        if (repair & 4 != 0) p.delta = uint64(bound(p.delta, 1, 1e18 - 1));
        // δ · rows < 1e18; no δ >= 1 qualifies once rows >= 1e18.
        if (repair & 128 != 0 && rows > 0 && rows < 1e18) p.delta = uint64(bound(p.delta, 1, (1e18 - 1) / rows));
        if (repair & 8 != 0) p.maxEpochs = uint16(bound(p.maxEpochs, 1, type(uint16).max));
        if (repair & 16 != 0) {
            if (p.price == 0) p.freeCap = uint16(bound(p.freeCap, 1, type(uint16).max));
            else if (p.paymentToken == address(0)) p.paymentToken = address(usd);
        }
        if (repair & 32 != 0 && p.expiry != 0) p.expiry = uint40(bound(p.expiry, block.timestamp + 1, type(uint40).max));
        bytes memory expected = _expectedError(p, rows);
        try cove.checkPolicy(p, rows) {
            assertEq(expected.length, 0, "accepted a policy the rules reject");
        } catch (bytes memory actual) {
            assertEq(actual, expected, "wrong error");
        }
    }

    // --------------------------------------------------------------- setPolicy & versions

    function test_SetPolicy_BumpsVersionAndEmits() public {
        Policy memory p = _freePolicy(3);
        bytes32 listsDigest = keccak256("lists v2");

        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(id, 2, p, listsDigest);
        vm.prank(owner);
        cove.setPolicy(id, p, listsDigest);

        (Policy memory stored, uint32 version) = cove.policyOf(id);
        assertEq(version, 2, "version");
        assertEq(cove.datasetOf(id).policyVersion, 2, "datasetOf.policyVersion");
        _assertPolicyEq(stored, p);

        Policy memory q = _pricedPolicy();
        q.price = 1;
        q.expiry = uint40(block.timestamp + 30 days);
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(id, 3, q, bytes32(0));
        vm.prank(owner);
        cove.setPolicy(id, q, bytes32(0));
        (stored, version) = cove.policyOf(id);
        assertEq(version, 3, "version 3");
        _assertPolicyEq(stored, q);
    }

    function test_SetPolicy_SamePolicyStillBumpsVersion() public {
        vm.startPrank(owner);
        cove.setPolicy(id, _pricedPolicy(), bytes32(0));
        cove.setPolicy(id, _pricedPolicy(), bytes32(0));
        vm.stopPrank();
        assertEq(_version(id), 3, "every set is a new version");
    }

    function test_SetPolicy_VersionsArePerDataset() public {
        (uint256 other,) = _publishFree(1);
        vm.prank(owner);
        cove.setPolicy(id, _freePolicy(2), bytes32(0));
        vm.prank(owner);
        cove.setPolicy(id, _freePolicy(3), bytes32(0));
        assertEq(_version(id), 3, "first dataset");
        assertEq(_version(other), 1, "second dataset untouched");
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(other, 2, _pricedPolicy(), bytes32(0));
        vm.prank(owner);
        cove.setPolicy(other, _pricedPolicy(), bytes32(0));
    }

    function testFuzz_SetPolicy_VersionCountsSets(uint8 sets) public {
        sets = uint8(bound(sets, 0, 40));
        vm.startPrank(owner);
        for (uint256 i; i < sets; ++i) {
            Policy memory p = _pricedPolicy();
            // forge-lint: disable-next-line(unsafe-typecast)
            p.price = uint96(i + 1); // i < 40
            cove.setPolicy(id, p, bytes32(i));
        }
        vm.stopPrank();
        (Policy memory stored, uint32 version) = cove.policyOf(id);
        assertEq(version, uint256(sets) + 1, "version = sets + 1");
        assertEq(stored.price, sets == 0 ? PRICE : sets, "last policy stored");
    }

    // --------------------------------------------------------------- helpers

    /// @dev `p` is refused with `err` by checkPolicy, publish and setPolicy, and nothing changes.
    function _expectRejected(Policy memory p, bytes memory err) private {
        (Policy memory before, uint32 version) = cove.policyOf(id);
        uint256 count = cove.datasetCount();

        vm.expectRevert(err);
        cove.checkPolicy(p, ROWS);

        vm.expectRevert(err);
        vm.prank(owner);
        cove.publish(_params(1000 + count), p, bytes32(0));

        vm.expectRevert(err);
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));

        (Policy memory afterwards, uint32 versionAfter) = cove.policyOf(id);
        assertEq(versionAfter, version, "version unchanged");
        _assertPolicyEq(afterwards, before);
        assertEq(cove.datasetCount(), count, "nothing published");
    }

    /// @dev `p` passes checkPolicy, publish and setPolicy, and is stored as given.
    function _expectAccepted(Policy memory p) private {
        _expectAcceptedWithNoise(p, COUNT_NOISE);
    }

    /// @dev As {_expectAccepted}, publishing with row-count noise `countNoise`.
    function _expectAcceptedWithNoise(Policy memory p, uint32 countNoise) private {
        cove.checkPolicy(p, ROWS);
        DatasetParams memory params = _params(2000 + cove.datasetCount());
        params.countNoise = countNoise;
        (uint256 fresh,) = _publish(owner, params, p);
        (Policy memory stored,) = cove.policyOf(fresh);
        _assertPolicyEq(stored, p);
        uint32 version = _version(id);
        vm.prank(owner);
        cove.setPolicy(id, p, bytes32(0));
        assertEq(_version(id), version + 1, "version bumped");
    }

    /// @dev The error the documented rules give for `p` (empty when valid).
    function _expectedError(Policy memory p, uint64 rows) private view returns (bytes memory) {
        if (p.budget == 0) return abi.encodeWithSelector(AccessPolicies.InvalidPrivacyBudget.selector);
        if (p.perJobCap == 0 || p.perJobCap > p.budget) {
            return abi.encodeWithSelector(AccessPolicies.InvalidPerJobCap.selector, p.perJobCap, p.budget);
        }
        if (p.delta == 0 || p.delta >= 1e18) return abi.encodeWithSelector(AccessPolicies.InvalidDelta.selector, p.delta);
        if (uint256(p.delta) * rows >= 1e18) {
            return abi.encodeWithSelector(AccessPolicies.DeltaNotBelowOneOverRows.selector, p.delta, rows);
        }
        if (p.maxEpochs == 0) return abi.encodeWithSelector(AccessPolicies.InvalidMaxEpochs.selector);
        if (p.price == 0 && p.freeCap == 0) return abi.encodeWithSelector(AccessPolicies.MissingFreeCap.selector);
        if (p.price != 0 && p.paymentToken == address(0)) {
            return abi.encodeWithSelector(AccessPolicies.MissingPaymentToken.selector);
        }
        // forge-lint: disable-next-line(block-timestamp)
        if (p.expiry != 0 && p.expiry <= block.timestamp) {
            return abi.encodeWithSelector(AccessPolicies.ExpiryInPast.selector, p.expiry, block.timestamp);
        }
        return "";
    }
}
