// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {Cove} from "../../src/Cove.sol";
import {DatasetParams, Dataset} from "../../src/modules/DatasetRegistry.sol";
import {Policy} from "../../src/modules/AccessPolicies.sol";
import {Datatoken} from "../../src/tokens/Datatoken.sol";
import {TestPaymentToken} from "../../src/tokens/TestPaymentToken.sol";

/**
 * @title CoveTest
 * @notice Shared fixture: a fresh hub and payment token, named actors, and builders for
 * valid dataset parameters and policies that each test then breaks one field of.
 */
abstract contract CoveTest is Test {
    /// @notice A fixed, realistic start time (so "in the past" has room below it).
    uint256 internal constant T0 = 1_750_000_000;
    /// @notice ε 10.0 in millionths.
    uint32 internal constant BUDGET = 10_000_000;
    /// @notice ε 1.0 in millionths.
    uint32 internal constant PER_JOB_CAP = 1_000_000;
    /// @notice δ = 1e-6 in 1e-18 units.
    uint64 internal constant DELTA = 1e12;
    /// @notice 5 tUSD per credit.
    uint96 internal constant PRICE = 5 ether;
    /// @notice σ 100.0 (millionths) of the noise on the published row count: its release
    /// costs RDP α/20000 per order, a small but nonzero charge on every fresh ledger.
    uint32 internal constant COUNT_NOISE = 100_000_000;
    /**
     * @notice ε (millionths) of that publication charge at δ 1e-6 (the fixture policies' δ):
     * `exchange.ml.accounting.epsilon(count_release_curve(100_000_000), 1e-6)` (and opacus'
     * get_privacy_spent on the same integer curve) gives 38473.11767481263 micro-ε, at α = 512;
     * the chain rounds up to the next millionth.
     */
    uint32 internal constant PUBLICATION_EPSILON = 38_474;

    Cove internal cove;
    TestPaymentToken internal usd;

    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant BUYER_KEY = 0xB0B;
    address internal owner;
    address internal buyer;
    address internal runner = address(0x5EED);
    address internal stranger = address(0xBAD);
    address internal timelock = address(0x7113);

    function setUp() public virtual {
        vm.warp(T0);
        usd = new TestPaymentToken("Cove Test Dollar", "tUSD", 18);
        cove = new Cove(address(usd));
        owner = vm.addr(OWNER_KEY);
        buyer = vm.addr(BUYER_KEY);
        vm.label(address(cove), "Cove");
        vm.label(address(usd), "tUSD");
        vm.label(owner, "owner");
        vm.label(buyer, "buyer");
        vm.label(runner, "runner");
        vm.label(stranger, "stranger");
        vm.label(timelock, "timelock");
    }

    // ------------------------------------------------------------------ builders

    /// @notice Valid, owner-controlled dataset parameters derived from `seed`.
    function _params(uint256 seed) internal view returns (DatasetParams memory) {
        return DatasetParams({
            metadataDigest: keccak256(abi.encode("metadata", seed)),
            commitment: keccak256(abi.encode("commitment", seed)),
            rows: 1_000,
            countNoise: COUNT_NOISE,
            runner: runner,
            controller: address(0)
        });
    }

    /// @notice A valid priced policy: PRICE tUSD a credit, no expiry, open to all.
    function _pricedPolicy() internal view returns (Policy memory) {
        return Policy({
            paymentToken: address(usd),
            price: PRICE,
            expiry: 0,
            budget: BUDGET,
            perJobCap: PER_JOB_CAP,
            delta: DELTA,
            maxEpochs: 20,
            freeCap: 0,
            computeOnly: true,
            allowlistRoot: 0,
            modelFamiliesRoot: 0
        });
    }

    /// @notice A valid free policy allowing `cap` credits per address.
    function _freePolicy(uint16 cap) internal pure returns (Policy memory policy) {
        policy = Policy({
            paymentToken: address(0),
            price: 0,
            expiry: 0,
            budget: BUDGET,
            perJobCap: PER_JOB_CAP,
            delta: DELTA,
            maxEpochs: 20,
            freeCap: cap,
            computeOnly: false,
            allowlistRoot: 0,
            modelFamiliesRoot: 0
        });
    }

    // ------------------------------------------------------------------ actions

    /// @notice Publishes `params` under `policy` as `publisher`.
    function _publish(address publisher, DatasetParams memory params, Policy memory policy)
        internal
        returns (uint256 datasetId, Datatoken datatoken)
    {
        vm.prank(publisher);
        address token;
        (datasetId, token) = cove.publish(params, policy, bytes32(0));
        datatoken = Datatoken(token);
    }

    /// @notice Publishes a priced dataset (seed = next id) as `owner`.
    function _publishPriced() internal returns (uint256 datasetId, Datatoken datatoken) {
        return _publish(owner, _params(cove.datasetCount() + 1), _pricedPolicy());
    }

    /// @notice Publishes a free dataset capped at `cap` credits per address as `owner`.
    function _publishFree(uint16 cap) internal returns (uint256 datasetId, Datatoken datatoken) {
        return _publish(owner, _params(cove.datasetCount() + 1), _freePolicy(cap));
    }

    /// @notice Gives `account` `amount` tUSD through the faucet (in FAUCET_LIMIT chunks).
    function _fund(address account, uint256 amount) internal {
        uint256 limit = usd.FAUCET_LIMIT();
        vm.startPrank(account);
        while (amount > 0) {
            uint256 chunk = amount > limit ? limit : amount;
            usd.faucet(chunk);
            amount -= chunk;
        }
        vm.stopPrank();
    }

    /// @notice Funds `account` with `amount` tUSD and approves the hub for all of it.
    function _fundAndApprove(address account, uint256 amount) internal {
        _fund(account, amount);
        vm.prank(account);
        usd.approve(address(cove), amount);
    }

    /// @notice Buys as `account` with no allowlist proof, agreeing to pay in tUSD.
    function _buy(address account, uint256 datasetId, uint64 credits, uint256 maxCost) internal {
        _buyIn(account, datasetId, credits, address(usd), maxCost);
    }

    /// @notice Buys as `account` with no allowlist proof, agreeing to pay in `token`.
    function _buyIn(address account, uint256 datasetId, uint64 credits, address token, uint256 maxCost) internal {
        vm.prank(account);
        cove.buy(datasetId, credits, token, maxCost, new bytes32[](0));
    }

    // ------------------------------------------------------------------ EIP-2612

    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @notice The EIP-712 domain separator of tUSD, computed here from its definition.
    function _usdDomainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH, keccak256("Cove Test Dollar"), keccak256("1"), block.chainid, address(usd)
            )
        );
    }

    /// @notice The EIP-712 digest of a tUSD permit.
    function _permitDigest(address holder, address spender, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, holder, spender, value, nonce, deadline));
        return keccak256(abi.encodePacked("\x19\x01", _usdDomainSeparator(), structHash));
    }

    /// @notice Signs, with `key`, a tUSD permit letting `spender` take `value` from the key's
    /// account, at that account's current nonce.
    function _signPermit(uint256 key, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address holder = vm.addr(key);
        return vm.sign(key, _permitDigest(holder, spender, value, usd.nonces(holder), deadline));
    }

    // ------------------------------------------------------------------ helpers

    /// @notice An empty Merkle proof.
    function _noProof() internal pure returns (bytes32[] memory) {
        return new bytes32[](0);
    }

    /// @notice The address the hub's next `publish` clones the datatoken to: the hub's CREATE
    /// nonce starts at 1, the template took nonce 1, ComputeJobs nonce 2 and FederatedRounds
    /// nonce 3, so dataset n's clone uses nonce n + 3.
    function _nextDatatoken() internal view returns (address) {
        return _createAddress(address(cove), cove.datasetCount() + 4);
    }

    /// @notice The CREATE address of `deployer` at `nonce` (1 <= nonce <= 255).
    function _createAddress(address deployer, uint256 nonce) internal pure returns (address) {
        require(nonce > 0 && nonce <= 0xff, "nonce out of range");
        // casting to 'uint8' is safe because nonce <= 0xff was checked above
        // forge-lint: disable-next-item(unsafe-typecast)
        bytes memory rlp = nonce < 0x80
            ? abi.encodePacked(bytes1(0xd6), bytes1(0x94), deployer, uint8(nonce))
            : abi.encodePacked(bytes1(0xd7), bytes1(0x94), deployer, bytes1(0x81), uint8(nonce));
        return address(uint160(uint256(keccak256(rlp))));
    }

    /// @notice Asserts two policies are field-for-field equal.
    function _assertPolicyEq(Policy memory a, Policy memory b) internal pure {
        assertEq(a.paymentToken, b.paymentToken, "policy.paymentToken");
        assertEq(a.price, b.price, "policy.price");
        assertEq(a.expiry, b.expiry, "policy.expiry");
        assertEq(a.budget, b.budget, "policy.budget");
        assertEq(a.perJobCap, b.perJobCap, "policy.perJobCap");
        assertEq(a.delta, b.delta, "policy.delta");
        assertEq(a.maxEpochs, b.maxEpochs, "policy.maxEpochs");
        assertEq(a.freeCap, b.freeCap, "policy.freeCap");
        assertEq(a.computeOnly, b.computeOnly, "policy.computeOnly");
        assertEq(a.allowlistRoot, b.allowlistRoot, "policy.allowlistRoot");
        assertEq(a.modelFamiliesRoot, b.modelFamiliesRoot, "policy.modelFamiliesRoot");
    }

    /// @notice The current policy version of `datasetId`.
    function _version(uint256 datasetId) internal view returns (uint32 version) {
        (, version) = cove.policyOf(datasetId);
    }
}
