// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {FixedPointMathLib} from "solady/src/utils/FixedPointMathLib.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {ComputeJobs, RDP_ORDERS} from "../src/ComputeJobs.sol";

/**
 * @notice The privacy ledger's RDP → (ε, δ) conversion: against figures computed in Python
 * with floats, against a slow reference that derives every constant on-chain, and its
 * rounding, flooring, monotonicity and input checks.
 */
contract ComputeJobsPrivacyTest is JobsTest {
    // ------------------------------------------------------------------ Python figures

    /*
     * ε × 1e6 of the fixture's curves at δ = 1e-6, at the ledger's 24 orders, with opacus 1.6.0
     * and the project's accountant (which skips saturated orders as the chain does):
     *
     *   from opacus.accountants.analysis.rdp import compute_rdp
     *   from exchange.ml import accounting as acc  # acc.ORDERS: the 24 orders
     *   A = list(acc.ORDERS)
     *   a = [min(math.ceil(x * 1e9), 2**64 - 1) for x in compute_rdp(q=0.01, noise_multiplier=1.5, steps=1000, orders=A)]
     *   b = [min(math.ceil(x * 1e9), 2**64 - 1) for x in compute_rdp(q=0.02, noise_multiplier=2.0, steps=500, orders=A)]
     *   pub = acc.count_release_curve(100_000_000)          # the fixture's publication, σ 100
     *   g = [(d * 1_000_000 + 1) // 2 for d in (3, 4, 5, 6, 8, ..., 1024, 2048)]  # _gaussianCurve(1e6)
     *   for c in (a, b, (a, b), (a, b, a), (pub,), (pub, a), (pub, a, b), (pub, a, b, a), g, (pub, g), ...):
     *       print(acc.epsilon(acc.compose(c) if isinstance(c, tuple) else c, 1e-6) * 1e6)
     *
     * printed 1167354.1299107284, 1160011.5085814118, 1665732.8039107283, 2026846.1057536674
     * (best orders 16, 20, 16, 12: the same as at the former 16 orders), 38473.11767481263
     * (the publication, best order 512: a new one), 1168154.1299107282, 1666532.8039107283,
     * 2027446.105753668, 182909.3566221408 (best order 96, new), 187709.35662214083, and for
     * _gaussianCurve(1e4) 15992.225994758746 (best order 1024). opacus' own get_privacy_spent
     * on the same integer curves gives the same figures (it knows nothing of saturation, but
     * the saturated orders are far from the minimum). The chain rounds up to whole
     * millionths, so it must give the next integer: at most 1 micro-ε above the float figure
     * and never below it.
     */
    uint256 internal constant PY_A = 1_167_354_129_910_728; // × 1e-9 micro-ε
    uint256 internal constant PY_B = 1_160_011_508_581_411;
    uint256 internal constant PY_A_PLUS_B = 1_665_732_803_910_728;
    uint256 internal constant PY_A_PLUS_B_PLUS_A = 2_026_846_105_753_667;
    uint256 internal constant PY_PUB = 38_473_117_674_812;
    uint256 internal constant PY_PUB_A = 1_168_154_129_910_728;
    uint256 internal constant PY_PUB_A_B = 1_666_532_803_910_728;
    uint256 internal constant PY_PUB_A_B_A = 2_027_446_105_753_668;
    uint256 internal constant PY_G3 = 182_909_356_622_140; // _gaussianCurve(1e6): ρ 0.001
    uint256 internal constant PY_PUB_G3 = 187_709_356_622_140;
    uint256 internal constant PY_G5 = 15_992_225_994_758; // _gaussianCurve(1e4): ρ 0.00001

    function test_KnownCurves_ComposedOnChainMatchesPython() public {
        _assertMatchesPython(jobs.composedEpsilon(id), PY_PUB, "the publication alone");
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "publication");
        _requestAs(_curveA());
        _assertMatchesPython(jobs.composedEpsilon(id), PY_PUB_A, "publication + A");
        _requestAs(_curveB());
        uint256 composed = jobs.composedEpsilon(id);
        _assertMatchesPython(composed, PY_PUB_A_B, "publication + A + B composed on the ledger");
        assertEq(composed, 1_666_533, "publication + A + B");
    }

    function test_KnownCurves_EpsilonOfMatchesPython() public view {
        _assertMatchesPython(jobs.epsilonOf(_curveA(), DELTA), PY_A, "A");
        _assertMatchesPython(jobs.epsilonOf(_curveB(), DELTA), PY_B, "B");
        _assertMatchesPython(jobs.epsilonOf(_add(_curveA(), _curveB()), DELTA), PY_A_PLUS_B, "A + B");
        _assertMatchesPython(
            jobs.epsilonOf(_add(_add(_curveA(), _curveB()), _curveA()), DELTA), PY_A_PLUS_B_PLUS_A, "A + B + A"
        );
        // Best at the new orders (512, 96, 1024).
        _assertMatchesPython(jobs.epsilonOf(_publication(), DELTA), PY_PUB, "publication");
        _assertMatchesPython(jobs.epsilonOf(_gaussianCurve(1_000_000), DELTA), PY_G3, "Gaussian rho 0.001");
        _assertMatchesPython(jobs.epsilonOf(_gaussianCurve(10_000), DELTA), PY_G5, "Gaussian rho 0.00001");
        _assertMatchesPython(
            jobs.epsilonOf(_charged(_gaussianCurve(1_000_000)), DELTA), PY_PUB_G3, "publication + Gaussian"
        );
        _assertMatchesPython(jobs.epsilonOf(_charged(_curveA()), DELTA), PY_PUB_A, "publication + A");
        _assertMatchesPython(jobs.epsilonOf(_charged(_curveA(), _curveB()), DELTA), PY_PUB_A_B, "publication + A + B");
        _assertMatchesPython(
            jobs.epsilonOf(_charged(_curveA(), _curveB(), _curveA()), DELTA), PY_PUB_A_B_A, "publication + A + B + A"
        );
    }

    /// @notice Saturated entries count as infinite, not as their (huge) values: A's entries
    /// from α = 48 on exceed SATURATED, and raising or lowering them to any other value of
    /// SATURATED or more changes nothing.
    function test_KnownCurves_SaturatedEntriesAreSkipped() public view {
        uint64[RDP_ORDERS] memory a = _curveA();
        uint256 epsilon = jobs.epsilonOf(a, DELTA);
        for (uint256 i = 14; i < RDP_ORDERS; ++i) {
            assertGe(a[i], SATURATED, "saturated in A");
            a[i] = i % 2 == 0 ? type(uint64).max : SATURATED;
        }
        assertEq(jobs.epsilonOf(a, DELTA), epsilon, "same epsilon");
        assertEq(_reference(a, DELTA), epsilon, "reference");
    }

    /// @dev `onChain` (micro-ε, rounded up) is within 1 of the float `pythonNano` (1e-9 micro-ε) and not below it.
    function _assertMatchesPython(uint256 onChain, uint256 pythonNano, string memory what) internal pure {
        assertGe(onChain * 1e9, pythonNano, what);
        assertLe(onChain * 1e9, pythonNano + 1e9, what);
    }

    // ------------------------------------------------------------------ ln δ

    /// @notice solady's lnWad at the δ values policies use, against 60-digit Decimal ln
    /// (`int((Decimal(d) / 10**18).ln() * 10**18)`, truncated toward zero).
    function test_LnWad_MatchesDecimal() public pure {
        uint64[7] memory deltas = [uint64(1e12), 1e13, 1e9, 1e6, 5e17, 1, 1e18 - 1];
        int256[7] memory exact = [
            int256(-13815510557964274104), -11512925464970228420, -20723265836946411156, -27631021115928548208,
            -693147180559945309, -41446531673892822312, -1
        ];
        for (uint256 i; i < deltas.length; ++i) {
            int256 got = FixedPointMathLib.lnWad(int256(uint256(deltas[i])));
            int256 diff = got - exact[i];
            assertTrue(diff >= -2 && diff <= 2, "lnWad within 2 wei");
        }
    }

    // ------------------------------------------------------------------ reference

    /// @notice The contract's tables agree with a reference that derives every per-order
    /// constant on-chain with lnWad, to 1 micro-ε (one rounding step), on random curves and δ.
    function testFuzz_EpsilonOf_MatchesReference(uint256 seed, uint64 delta) public view {
        delta = uint64(bound(delta, 1, 1e18 - 1));
        uint64[RDP_ORDERS] memory curve = _randomCurve(seed);
        uint256 got = jobs.epsilonOf(curve, delta);
        uint256 want = _reference(curve, delta);
        assertLe(got, want + 1, "not more than one step above");
        assertGe(got + 1, want, "not more than one step below");
    }

    function testFuzz_EpsilonOf_GaussianMatchesReference(uint256 rho, uint64 delta) public view {
        delta = uint64(bound(delta, 1e6, 1e17));
        uint64[RDP_ORDERS] memory curve = _gaussianCurve(bound(rho, 1, 1e12));
        uint256 got = jobs.epsilonOf(curve, delta);
        uint256 want = _reference(curve, delta);
        assertLe(got, want + 1, "above");
        assertGe(got + 1, want, "below");
    }

    /// @notice Each order on its own: the other entries are huge, so the minimum is at `order`.
    function testFuzz_EpsilonOf_EachOrder(uint256 order, uint64 entry, uint64 delta) public view {
        order = bound(order, 0, RDP_ORDERS - 1);
        entry = uint64(bound(entry, 1, 1e12));
        delta = uint64(bound(delta, 1, 1e18 - 1));
        uint64[RDP_ORDERS] memory curve;
        // The largest finite entry (RDP 4398) everywhere else: above any order's ε for `entry`.
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = SATURATED - 1;
        curve[order] = entry;
        uint256 got = jobs.epsilonOf(curve, delta);
        uint256 want = _reference(curve, delta);
        assertLe(got, want + 1, "above");
        assertGe(got + 1, want, "below");
        // Saturated (infinite) everywhere else: the same order decides.
        for (uint256 i; i < RDP_ORDERS; ++i) if (i != order) curve[i] = SATURATED;
        assertEq(jobs.epsilonOf(curve, delta), got, "only that order is finite");
    }

    /// @notice Any entry of SATURATED or more is infinite: it never decides ε, whatever its value.
    function testFuzz_EpsilonOf_SaturatedEntriesAreInfinite(uint256 seed, uint256 mask, uint64 delta) public view {
        delta = uint64(bound(delta, 1, 1e18 - 1));
        uint64[RDP_ORDERS] memory curve = _randomCurve(seed);
        uint64[RDP_ORDERS] memory max = curve;
        uint256 finite;
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if ((mask >> i) & 1 == 0) {
                if (curve[i] < SATURATED) ++finite;
                continue;
            }
            uint256 r = uint256(keccak256(abi.encode(seed, mask, i)));
            // casting to 'uint64' is safe because the value is at most type(uint64).max
            // forge-lint: disable-next-line(unsafe-typecast)
            curve[i] = uint64(bound(r, SATURATED, type(uint64).max));
            max[i] = type(uint64).max;
        }
        uint256 got = jobs.epsilonOf(curve, delta);
        assertEq(got, jobs.epsilonOf(max, delta), "the value past SATURATED does not matter");
        uint256 want = _reference(curve, delta);
        if (finite == 0) {
            assertEq(got, type(uint256).max, "no finite order: infinite");
            assertEq(want, type(uint256).max, "reference agrees");
        } else {
            assertLe(got, want + 1, "above");
            assertGe(got + 1, want, "below");
        }
    }

    function test_EpsilonOf_NoFiniteOrderIsInfinite() public view {
        uint64[RDP_ORDERS] memory curve;
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = SATURATED;
        assertEq(jobs.epsilonOf(curve, DELTA), type(uint256).max, "all at SATURATED");
        assertEq(jobs.epsilonOf(curve, 1e18 - 1), type(uint256).max, "at any delta");
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = type(uint64).max;
        assertEq(jobs.epsilonOf(curve, DELTA), type(uint256).max, "all at the uint64 max");
        // One order just below the threshold is finite again.
        curve[7] = SATURATED - 1;
        assertEq(jobs.epsilonOf(curve, DELTA), _reference(curve, DELTA), "one finite order");
        assertLt(jobs.epsilonOf(curve, DELTA), type(uint256).max, "finite");
    }

    // ------------------------------------------------------------------ shape

    function test_EpsilonOf_EmptyCurveIsZero() public view {
        assertEq(jobs.epsilonOf(_zeroCurve(), DELTA), 0, "no job, no loss");
        assertEq(jobs.epsilonOf(_zeroCurve(), 1), 0, "at any delta");
    }

    function test_EpsilonOf_FloorsAtZero() public view {
        // RDP 1e-9 everywhere at δ = 0.5: every order's figure is negative
        // (at α = 64: 1e-9 + ln 2 / 63 − 0.0818 < 0; at α = 1024: 1e-9 + ln 2 / 1023 − 0.00775 < 0).
        uint64[RDP_ORDERS] memory curve;
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = 1;
        assertEq(jobs.epsilonOf(curve, 5e17), 0, "floored");
        assertEq(_reference(curve, 5e17), 0, "reference agrees");
    }

    function test_EpsilonOf_RoundsUp() public view {
        // The smallest positive ε: one wei of ε in wad is still one micro-ε.
        uint64[RDP_ORDERS] memory curve = _gaussianCurve(1_000); // ρ 1e-6
        uint256 micro = jobs.epsilonOf(curve, DELTA);
        assertGt(micro, 0, "positive");
        assertGe(micro, _reference(curve, DELTA), "never below the reference");
    }

    function testFuzz_EpsilonOf_MonotoneInCurve(uint256 seed, uint256 extraSeed, uint64 delta) public view {
        delta = uint64(bound(delta, 1, 1e18 - 1));
        uint64[RDP_ORDERS] memory curve = _randomCurve(seed);
        uint64[RDP_ORDERS] memory more = _add(curve, _randomCurve(extraSeed));
        assertGe(jobs.epsilonOf(more, delta), jobs.epsilonOf(curve, delta), "more RDP, no less epsilon");
    }

    function testFuzz_EpsilonOf_MonotoneInDelta(uint256 seed, uint64 d1, uint64 d2) public view {
        d1 = uint64(bound(d1, 1, 1e18 - 1));
        d2 = uint64(bound(d2, d1, 1e18 - 1));
        uint64[RDP_ORDERS] memory curve = _randomCurve(seed);
        assertGe(jobs.epsilonOf(curve, d1), jobs.epsilonOf(curve, d2), "larger delta, no more epsilon");
    }

    function testFuzz_EpsilonOf_ComposesSubadditively(uint256 rho1, uint256 rho2) public view {
        // Gaussian curves compose to a Gaussian curve; the composed ε never exceeds the sum.
        uint64[RDP_ORDERS] memory a = _gaussianCurve(bound(rho1, 1e3, 1e10));
        uint64[RDP_ORDERS] memory b = _gaussianCurve(bound(rho2, 1e3, 1e10));
        assertLe(jobs.epsilonOf(_add(a, b), DELTA), jobs.epsilonOf(a, DELTA) + jobs.epsilonOf(b, DELTA), "subadditive");
    }

    function test_RevertWhen_EpsilonOf_InvalidDelta() public {
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.InvalidDelta.selector, 0));
        jobs.epsilonOf(_curveA(), 0);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.InvalidDelta.selector, 1e18));
        jobs.epsilonOf(_curveA(), 1e18);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.InvalidDelta.selector, type(uint64).max));
        jobs.epsilonOf(_curveA(), type(uint64).max);
    }

    function test_EpsilonOf_ExtremeEntries() public view {
        // The largest finite entries the ledger can hold convert without overflow.
        uint64[RDP_ORDERS] memory curve;
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = SATURATED - 1;
        uint256 micro = jobs.epsilonOf(curve, 1);
        assertGt(micro, (SATURATED - 1) * 1e6 / 1e9, "about the RDP itself");
        assertEq(micro, _reference(curve, 1), "reference");
        // The largest uint64 entries are infinite, not an overflow.
        for (uint256 i; i < RDP_ORDERS; ++i) curve[i] = type(uint64).max;
        assertEq(jobs.epsilonOf(curve, 1), type(uint256).max, "infinite");
    }

    // ------------------------------------------------------------------ helpers

    /// @notice Random curve: entries between 1 and about 1e13 nano (RDP 1e4), no shape.
    function _randomCurve(uint256 seed) internal pure returns (uint64[RDP_ORDERS] memory curve) {
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            // Spread over magnitudes: 1 to 1e13.
            curve[i] = uint64(1 + (r >> 64) % (10 ** (1 + (r % 13))));
        }
    }

    /**
     * @notice Reference conversion: every constant derived here with lnWad in signed wad,
     * ε = min_i RDP_i + ln((α_i − 1)/α_i) − (ln δ + ln α_i)/(α_i − 1) over the finite orders
     * (entry below SATURATED), floored at 0, rounded up to millionths; type(uint256).max when
     * no order is finite. A curve of zeros is 0, as in the contract.
     */
    function _reference(uint64[RDP_ORDERS] memory curve, uint64 delta) internal pure returns (uint256) {
        bool zero = true;
        for (uint256 i; i < RDP_ORDERS; ++i) if (curve[i] != 0) zero = false;
        if (zero) return 0;
        uint256[RDP_ORDERS] memory twiceAlpha = _doubledOrders();
        int256 lnDelta = FixedPointMathLib.lnWad(int256(uint256(delta)));
        int256 best = type(int256).max;
        for (uint256 i; i < RDP_ORDERS; ++i) {
            if (curve[i] >= SATURATED) continue; // infinite at this order
            int256 alpha = int256(twiceAlpha[i]) * 5e17;
            int256 alphaMinusOne = alpha - 1e18;
            int256 lnAlpha = FixedPointMathLib.lnWad(alpha);
            int256 lnRatio = FixedPointMathLib.lnWad(alphaMinusOne * 1e18 / alpha);
            int256 epsilon = int256(uint256(curve[i])) * 1e9 + lnRatio - (lnDelta + lnAlpha) * 1e18 / alphaMinusOne;
            if (epsilon < best) best = epsilon;
        }
        if (best == type(int256).max) return type(uint256).max;
        if (best <= 0) return 0;
        // casting to 'uint256' is safe because best > 0 was checked above
        // forge-lint: disable-next-line(unsafe-typecast)
        return (uint256(best) + 1e12 - 1) / 1e12;
    }
}
