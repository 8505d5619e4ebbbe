// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CoveTest} from "./CoveTest.sol";
import {ComputeJobs, JobRequest, DpParams, Job, JobStatus, RDP_ORDERS} from "../../src/ComputeJobs.sol";
import {Policy} from "../../src/modules/AccessPolicies.sol";
import {Datatoken} from "../../src/tokens/Datatoken.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/**
 * @title JobsTest
 * @notice Fixture for ComputeJobs: a free dataset with a small privacy budget, a buyer holding
 * credits, and builders for valid requests and RDP curves.
 */
abstract contract JobsTest is CoveTest {
    /// @notice ε 2.0: room for the publication and the known jobs A and B (composed ε 1.6665),
    /// not for A again (2.0274).
    uint32 internal constant JOB_BUDGET = 2_000_000;
    /// @notice ε 1.5 per job.
    uint32 internal constant JOB_CAP = 1_500_000;
    /// @notice The ledger's saturation threshold, 2^42 − 2 (ComputeJobs.SATURATED, written out).
    uint64 internal constant SATURATED = 4_398_046_511_102; // 2^42 - 2
    /// @notice Credits the buyer starts with.
    uint64 internal constant START_CREDITS = 10;
    /// @notice A spec as a request carries it: zlib-compressed canonical JSON ({"task":"classification"}).
    bytes internal constant SPEC = hex"78daab562a492cce56b2524ace492c2ece4ccb4c4e2cc9cccf53aa0500743d093a";
    /// @notice A compressed secp256k1 public key (the generator point G).
    bytes internal constant KEY33 = hex"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    /// @notice The same point uncompressed.
    bytes internal constant KEY65 =
        hex"0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";

    ComputeJobs internal jobs;
    uint256 internal id;
    Datatoken internal credits;

    function setUp() public virtual override {
        super.setUp();
        jobs = ComputeJobs(cove.computeJobs());
        vm.label(address(jobs), "ComputeJobs");
        (id, credits) = _publish(owner, _params(1), _jobPolicy());
        _buy(buyer, id, START_CREDITS, 0);
    }

    // ------------------------------------------------------------------ builders

    /// @notice A free policy (100 credits per address) with budget 2.0, cap 1.5, δ 1e-6.
    function _jobPolicy() internal pure returns (Policy memory policy) {
        policy = _freePolicy(100);
        policy.budget = JOB_BUDGET;
        policy.perJobCap = JOB_CAP;
    }

    /// @notice The ledger's 24 Rényi orders, doubled (2α) so that they are integers; written
    /// out here rather than read from the contract.
    function _doubledOrders() internal pure returns (uint256[RDP_ORDERS] memory) {
        return [
            uint256(3), 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 1024, 2048
        ];
    }

    /**
     * @notice Opacus' RDP curve (nano-units, rounded up) of DP-SGD with σ 1.5, q 0.01, 1000
     * steps at the ledger's orders: ε 1.1674 alone at δ 1e-6 (at α = 16). Produced by
     * `[min(math.ceil(x * 1e9), 2**64 - 1) for x in compute_rdp(q=0.01, noise_multiplier=1.5, steps=1000, orders=A)]`
     * with opacus 1.6.0 (`opacus.accountants.analysis.rdp`), A = the 24 orders
     * (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160, 192, 256, 512, 1024).
     * Entries 14 to 23 (α >= 48) are SATURATED (2^42 − 2) or more: infinite on the ledger.
     */
    function _curveA() internal pure returns (uint64[RDP_ORDERS] memory) {
        return [
            uint64(41834502), 55960784, 70180071, 84493784, 113410385, 142722797, 172443956, 233168332,
            295704572, 360191490, 495697862, 681378867, 531778562475, 2357493260782, 5963514221971, 9543954096844,
            13114314298297, 16679687671704, 23803013075890, 30921422035065, 38037385642009, 52265659211976,
            109163595517062, 222945883736933
        ];
    }

    /// @notice As {_curveA} for σ 2.0, q 0.02, 500 steps: ε 1.1600 alone at δ 1e-6 (at α = 20).
    /// Entries 18 to 23 (α >= 128) are SATURATED or more.
    function _curveB() internal pure returns (uint64[RDP_ORDERS] memory) {
        return [
            uint64(42473066), 56801857, 71218046, 85722775, 115002550, 144650844, 174677756, 235910222,
            298790785, 363419602, 498378674, 641842788, 795166430, 8720353012, 1002569105888, 2012944292266,
            3019228923673, 4023398903721, 6028586831911, 8031686538150, 10033747599366, 14036317863942,
            30040160686127, 62042076462582
        ];
    }

    /// @notice The curve of a Gaussian mechanism with RDP(α) = α·ρ, ρ = `rhoNano` / 1e9 (rounded up).
    function _gaussianCurve(uint256 rhoNano) internal pure returns (uint64[RDP_ORDERS] memory curve) {
        uint256[RDP_ORDERS] memory twiceAlpha = _doubledOrders();
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 value = (twiceAlpha[i] * rhoNano + 1) / 2;
            require(value <= type(uint64).max, "curve entry overflows");
            // forge-lint: disable-next-line(unsafe-typecast)
            curve[i] = uint64(value);
        }
    }

    /**
     * @notice The RDP curve of publishing a row count with Gaussian noise of σ =
     * `countNoise` / 1e6, computed here from the formula: α/(2σ²) per order, in nano-units
     * rounded up, i.e. ceil(2α · 1e21 / (4 · countNoise²)); values of SATURATED or more are
     * type(uint64).max (infinite).
     */
    function _countCurve(uint32 countNoise) internal pure returns (uint64[RDP_ORDERS] memory curve) {
        uint256[RDP_ORDERS] memory twiceAlpha = _doubledOrders();
        uint256 denominator = 4 * uint256(countNoise) ** 2;
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 value = (twiceAlpha[i] * 1e21 + denominator - 1) / denominator;
            // casting to 'uint64' is safe because value < SATURATED < 2^64 on that branch
            // forge-lint: disable-next-line(unsafe-typecast)
            curve[i] = value >= SATURATED ? type(uint64).max : uint64(value);
        }
    }

    /**
     * @notice What every fixture dataset's ledger is charged at publish: the count release at
     * σ 100 (COUNT_NOISE), α · 50000 nano at each order. The same figures as
     * `exchange.ml.accounting.count_release_curve(100_000_000)`.
     */
    function _publication() internal pure returns (uint64[RDP_ORDERS] memory) {
        return [
            uint64(75000), 100000, 125000, 150000, 200000, 250000, 300000, 400000, 500000, 600000, 800000,
            1000000, 1200000, 1600000, 2400000, 3200000, 4000000, 4800000, 6400000, 8000000, 9600000, 12800000,
            25600000, 51200000
        ];
    }

    /// @notice The ledger of a fresh fixture dataset after charging `curve`: the publication
    /// plus `curve`, saturating.
    function _charged(uint64[RDP_ORDERS] memory curve) internal pure returns (uint64[RDP_ORDERS] memory) {
        return _satAdd(_publication(), curve);
    }

    /// @notice As {_charged} with two curves.
    function _charged(uint64[RDP_ORDERS] memory a, uint64[RDP_ORDERS] memory b)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory)
    {
        return _satAdd(_satAdd(_publication(), a), b);
    }

    /// @notice As {_charged} with three curves.
    function _charged(uint64[RDP_ORDERS] memory a, uint64[RDP_ORDERS] memory b, uint64[RDP_ORDERS] memory c)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory)
    {
        return _satAdd(_charged(a, b), c);
    }

    /// @notice Valid DP parameters (σ 1.5, q 0.01, 1000 steps, C 1.0, 10 epochs).
    function _dp() internal pure returns (DpParams memory) {
        return DpParams({noiseMultiplier: 1_500_000, sampleRate: 10_000_000, steps: 1000, clipNorm: 1_000_000, epochs: 10});
    }

    /// @notice A valid request on the fixture's dataset with `curve`, due in a day.
    function _request(uint64[RDP_ORDERS] memory curve) internal view returns (JobRequest memory r) {
        r.datasetId = id;
        r.specHash = keccak256("spec");
        r.spec = SPEC;
        r.dp = _dp();
        r.rdpCurve = curve;
        r.modelFamily = keccak256("mlp");
        r.familyProof = new bytes32[](0);
        r.allowProof = new bytes32[](0);
        r.deadline = uint64(block.timestamp + 1 days);
        r.encryptionKey = KEY33;
    }

    // ------------------------------------------------------------------ actions

    /// @notice Sends `r` as `consumer`.
    function _send(address consumer, JobRequest memory r) internal returns (uint256 jobId) {
        vm.prank(consumer);
        jobId = jobs.request(r);
    }

    /// @notice The buyer requests a job with `curve`.
    function _requestAs(uint64[RDP_ORDERS] memory curve) internal returns (uint256 jobId) {
        return _send(buyer, _request(curve));
    }

    /// @notice The runner accepts `jobId`.
    function _accept(uint256 jobId) internal {
        vm.prank(runner);
        jobs.accept(jobId);
    }

    /// @notice The runner completes `jobId` with fixed result hashes.
    function _complete(uint256 jobId) internal {
        vm.prank(runner);
        jobs.complete(jobId, keccak256("weights cid"), keccak256("weights"), keccak256("provenance"), keccak256("provenance digest"));
    }

    // ------------------------------------------------------------------ helpers

    /// @notice `a + b`, entry by entry.
    function _add(uint64[RDP_ORDERS] memory a, uint64[RDP_ORDERS] memory b)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory sum)
    {
        for (uint256 i; i < RDP_ORDERS; ++i) sum[i] = a[i] + b[i];
    }

    /**
     * @notice `a + b` as the ledger adds them: an order where either is SATURATED or more, or
     * where the sum reaches SATURATED, is type(uint64).max (infinite).
     */
    function _satAdd(uint64[RDP_ORDERS] memory a, uint64[RDP_ORDERS] memory b)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory sum)
    {
        for (uint256 i; i < RDP_ORDERS; ++i) {
            uint256 total = uint256(a[i]) + b[i];
            // casting to 'uint64' is safe because total < SATURATED < 2^64 on that branch
            // forge-lint: disable-next-line(unsafe-typecast)
            sum[i] = a[i] >= SATURATED || b[i] >= SATURATED || total >= SATURATED ? type(uint64).max : uint64(total);
        }
    }

    /**
     * @notice `ledger` once a job of curve `curve` left it: each finite order less the
     * job's entry; a saturated order (type(uint64).max) stays saturated.
     */
    function _released(uint64[RDP_ORDERS] memory ledger, uint64[RDP_ORDERS] memory curve)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory rest)
    {
        for (uint256 i; i < RDP_ORDERS; ++i) rest[i] = ledger[i] == type(uint64).max ? ledger[i] : ledger[i] - curve[i];
    }

    /// @notice `curve` with every order where `mask` is SATURATED or more set to type(uint64).max.
    function _saturatedLike(uint64[RDP_ORDERS] memory curve, uint64[RDP_ORDERS] memory mask)
        internal
        pure
        returns (uint64[RDP_ORDERS] memory out)
    {
        for (uint256 i; i < RDP_ORDERS; ++i) out[i] = mask[i] >= SATURATED ? type(uint64).max : curve[i];
    }

    /// @notice Asserts two curves are equal entry by entry.
    function _assertCurveEq(uint64[RDP_ORDERS] memory a, uint64[RDP_ORDERS] memory b, string memory what)
        internal
        pure
    {
        for (uint256 i; i < RDP_ORDERS; ++i) {
            assertEq(a[i], b[i], string.concat(what, " [order ", Strings.toString(i), "]"));
        }
    }

    /// @notice The zero curve.
    function _zeroCurve() internal pure returns (uint64[RDP_ORDERS] memory curve) {}
}
