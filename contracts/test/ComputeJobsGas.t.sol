// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./utils/Test.sol";
import {Merkle} from "./utils/Merkle.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {ComputeJobs, JobRequest, RDP_ORDERS} from "../src/ComputeJobs.sol";
import {Cove} from "../src/Cove.sol";
import {FederatedRounds} from "../src/FederatedRounds.sol";
import {Policy} from "../src/modules/AccessPolicies.sol";

/**
 * @title GasMeter
 * @notice Turns {Vm.lastCallGas} into what a transaction's receipt would show: the intrinsic
 * 21,000, the calldata (4 gas a zero byte, 16 a nonzero one, or EIP-7623's floor of 10 a token
 * where that is more), the call's execution, less its refund (at most a fifth of the total).
 * @dev Forge runs setUp and each test as separate transactions, so a test that makes one call
 * sees the cold accounts and slots, and the original storage values, that a fresh transaction
 * would. Every measured call is therefore the first call of its test (after cooling the
 * contracts it touches, in case a helper read them).
 */
abstract contract GasMeter is JobsTest {
    /// @notice What the Python benchmark's receipts must stay under.
    uint256 internal constant REQUEST_BUDGET = 200_000;
    uint256 internal constant COMPLETE_BUDGET = 150_000;
    uint256 internal constant PUBLISH_BUDGET = 450_000;

    event log_named_uint(string key, uint256 val);

    address internal template;

    function setUp() public virtual override {
        super.setUp();
        template = cove.datatokenTemplate();
    }

    /// @notice Cools every contract a job call touches (nothing should be warm anyway).
    function _coolAll() internal {
        vm.cool(address(cove));
        vm.cool(address(jobs));
        vm.cool(address(credits));
        vm.cool(template);
    }

    /// @notice The receipt gas of a transaction with `data` whose call used `g`.
    function _txGas(bytes memory data, Vm.Gas memory g) internal pure returns (uint256 total) {
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) if (data[i] == 0) ++zeros;
        uint256 nonzeros = data.length - zeros;
        uint256 spent = 21_000 + 4 * zeros + 16 * nonzeros + g.gasTotalUsed;
        uint256 refund = g.gasRefunded > 0 ? uint256(int256(g.gasRefunded)) : 0;
        if (refund > spent / 5) refund = spent / 5;
        total = spent - refund;
        uint256 floor = 21_000 + 10 * (zeros + 4 * nonzeros);
        if (floor > total) total = floor;
    }

    /// @notice Logs and checks the receipt gas of the last call.
    function _report(string memory what, bytes memory data, uint256 budget) internal returns (uint256 gas) {
        gas = _txGas(data, vm.lastCallGas());
        emit log_named_uint(what, gas);
        assertLe(gas, budget, what);
    }
}

/// @notice Gas of the first job on a dataset (the ledger was opened at publish) and of publish.
contract ComputeJobsGasFirstTest is GasMeter {
    function test_Gas_Request_FirstJobOnDataset() public {
        JobRequest memory r = _request(_curveA());
        _coolAll();
        vm.prank(buyer);
        jobs.request(r);
        uint256 gas = _report("request: first job on the dataset", abi.encodeCall(ComputeJobs.request, (r)), REQUEST_BUDGET);
        assertGt(gas, 100_000, "measured something");
    }

    function test_Gas_Request_LastCredit() public {
        // The buyer's balance goes to zero (a storage refund): the cheapest case.
        vm.prank(buyer);
        assertTrue(credits.transfer(stranger, (START_CREDITS - 1) * 1e18), "transfer");
        JobRequest memory r = _request(_curveA());
        _coolAll();
        vm.prank(buyer);
        jobs.request(r);
        _report("request: spends the last credit", abi.encodeCall(ComputeJobs.request, (r)), REQUEST_BUDGET);
    }

    function test_Gas_Publish_Open() public {
        Policy memory policy = _pricedPolicy();
        _coolAll();
        vm.prank(owner);
        cove.publish(_params(2), policy, bytes32(0));
        _report("publish (priced, open)", abi.encodeCall(Cove.publish, (_params(2), policy, bytes32(0))), PUBLISH_BUDGET);
    }

    function test_Gas_Publish_Restricted() public {
        Policy memory policy = _pricedPolicy();
        policy.allowlistRoot = keccak256("allowlist");
        policy.modelFamiliesRoot = keccak256("families");
        bytes32 digest = keccak256("lists");
        _coolAll();
        vm.prank(owner);
        cove.publish(_params(2), policy, digest);
        _report("publish (allowlist + model families)", abi.encodeCall(Cove.publish, (_params(2), policy, digest)), PUBLISH_BUDGET);
    }
}

/// @notice Gas of later calls: job 1 requested and accepted, job 2 requested, in setUp.
contract ComputeJobsGasLaterTest is GasMeter {
    uint256 internal job1;
    uint256 internal job2;

    function setUp() public override {
        super.setUp();
        job1 = _requestAs(_curveA());
        _accept(job1);
        job2 = _requestAs(_curveB());
    }

    function test_Gas_Request_SecondJob() public {
        JobRequest memory r = _request(_gaussianCurve(10_000_000));
        r.encryptionKey = KEY65;
        _coolAll();
        vm.prank(buyer);
        jobs.request(r);
        _report("request: later job (65-byte key)", abi.encodeCall(ComputeJobs.request, (r)), REQUEST_BUDGET);
    }

    function test_Gas_Accept() public {
        _coolAll();
        vm.prank(runner);
        jobs.accept(job2);
        _report("accept", abi.encodeCall(ComputeJobs.accept, (job2)), COMPLETE_BUDGET);
    }

    function test_Gas_Complete() public {
        bytes32 a = keccak256("weights cid");
        bytes32 b = keccak256("weights");
        bytes32 c = keccak256("provenance");
        _coolAll();
        vm.prank(runner);
        jobs.complete(job1, a, b, c, a);
        _report("complete", abi.encodeCall(ComputeJobs.complete, (job1, a, b, c, a)), COMPLETE_BUDGET);
    }

    function test_Gas_Fail() public {
        uint64[RDP_ORDERS] memory curve = _curveA();
        _coolAll();
        vm.prank(runner);
        jobs.fail(job1, "out of memory", curve, false);
        _report("fail (released)", abi.encodeCall(ComputeJobs.fail, (job1, "out of memory", curve, false)), REQUEST_BUDGET);
    }

    function test_Gas_Fail_RowsRead() public {
        uint64[RDP_ORDERS] memory curve = _curveA();
        _coolAll();
        vm.prank(runner);
        jobs.fail(job1, "out of memory", curve, true);
        _report("fail (rows read, charge kept)", abi.encodeCall(ComputeJobs.fail, (job1, "out of memory", curve, true)), REQUEST_BUDGET);
    }

    function test_Gas_Refund() public {
        uint64[RDP_ORDERS] memory curve = _curveB();
        vm.warp(block.timestamp + 2 days);
        _coolAll();
        vm.prank(buyer);
        jobs.refund(job2, curve);
        _report("refund", abi.encodeCall(ComputeJobs.refund, (job2, curve)), REQUEST_BUDGET);
    }
}

/// @notice Gas of a request on a restricted dataset: allowlist of 8 and 4 model families, so
/// both proofs are checked (3 and 2 siblings).
contract ComputeJobsGasRestrictedTest is GasMeter {
    bytes32[] internal allow;
    bytes32[] internal families;

    function setUp() public override {
        super.setUp();
        allow = new bytes32[](8);
        for (uint256 i; i < 8; ++i) allow[i] = cove.allowlistLeaf(address(bytes20(keccak256(abi.encode("member", i)))));
        allow[5] = cove.allowlistLeaf(buyer);
        families = new bytes32[](4);
        for (uint256 i; i < 4; ++i) families[i] = keccak256(bytes.concat(keccak256(abi.encode(keccak256(abi.encode("family", i))))));
        Policy memory policy = _jobPolicy();
        policy.allowlistRoot = Merkle.root(allow);
        policy.modelFamiliesRoot = Merkle.root(families);
        vm.prank(owner);
        cove.setPolicy(id, policy, keccak256("lists"));
    }

    function test_Gas_Request_RestrictedDataset() public {
        JobRequest memory r = _request(_curveA());
        r.modelFamily = keccak256(abi.encode("family", uint256(2)));
        r.allowProof = Merkle.proof(allow, 5);
        r.familyProof = Merkle.proof(families, 2);
        _coolAll();
        vm.prank(buyer);
        jobs.request(r);
        _report("request: allowlist (8) + model families (4)", abi.encodeCall(ComputeJobs.request, (r)), REQUEST_BUDGET);
    }
}

/// @notice A federation of three jobs, one on each of three datasets of three owners (requested
/// in setUp), run by an aggregator.
abstract contract FederationGasMeter is GasMeter {
    uint256 internal constant OPEN_BUDGET = 220_000;
    uint256 internal constant COMMIT_ROUND_BUDGET = 80_000;

    FederatedRounds internal fed;
    address internal aggregator = address(0xA66);
    uint256[] internal jobIds;

    function setUp() public virtual override {
        super.setUp();
        fed = FederatedRounds(cove.federatedRounds());
        (uint256 id2,) = _publish(address(0x0B2), _params(2), _jobPolicy());
        (uint256 id3,) = _publish(address(0x0B3), _params(3), _jobPolicy());
        _buy(buyer, id2, 1, 0);
        _buy(buyer, id3, 1, 0);
        uint256[3] memory datasets = [id, id2, id3];
        for (uint256 i; i < 3; ++i) {
            JobRequest memory r = _request(_curveA());
            r.datasetId = datasets[i];
            jobIds.push(_send(buyer, r));
        }
    }

    /// @notice Cools the contracts a federation call touches.
    function _coolFederation() internal {
        vm.cool(address(fed));
        vm.cool(address(jobs));
    }
}

/// @notice Gas of opening a federation of three jobs (the first federation of the contract).
contract FederatedRoundsGasOpenTest is FederationGasMeter {
    function test_Gas_Open_ThreeJobs() public {
        uint256[] memory ids = jobIds;
        bytes32 initial = keccak256("initial model");
        _coolFederation();
        vm.prank(buyer);
        fed.open(ids, aggregator, 3, initial);
        bytes memory data = abi.encodeCall(FederatedRounds.open, (ids, aggregator, 3, initial));
        uint256 gas = _report("federation open: 3 jobs", data, OPEN_BUDGET);
        assertGt(gas, 50_000, "measured something");
    }
}

/// @notice As FederationGasMeter, with the three-round federation opened.
abstract contract OpenFederationGasMeter is FederationGasMeter {
    uint256 internal fedId;

    function setUp() public virtual override {
        super.setUp();
        vm.prank(buyer);
        fedId = fed.open(jobIds, aggregator, 3, keccak256("initial model"));
    }
}

/// @notice Gas of committing the first round.
contract FederatedRoundsGasCommitTest is OpenFederationGasMeter {

    function test_Gas_CommitRound_WithUpdatesRoot() public {
        bytes32 model = keccak256("model 1");
        bytes32 root = keccak256("updates 1");
        _coolFederation();
        vm.prank(aggregator);
        fed.commitRound(fedId, 1, model, root);
        _report("commitRound (updates root)", abi.encodeCall(FederatedRounds.commitRound, (fedId, 1, model, root)), COMMIT_ROUND_BUDGET);
    }

    function test_Gas_CommitRound_SecureAggregation() public {
        bytes32 model = keccak256("model 1");
        _coolFederation();
        vm.prank(aggregator);
        fed.commitRound(fedId, 1, model, bytes32(0));
        _report("commitRound (secure aggregation: no root)", abi.encodeCall(FederatedRounds.commitRound, (fedId, 1, model, bytes32(0))), COMMIT_ROUND_BUDGET);
    }
}

/// @notice Gas of a later round: round 1 committed in setUp, round 2 measured.
contract FederatedRoundsGasLaterRoundTest is OpenFederationGasMeter {
    function setUp() public override {
        super.setUp();
        vm.prank(aggregator);
        fed.commitRound(fedId, 1, keccak256("model 1"), keccak256("updates 1"));
    }

    function test_Gas_CommitRound_LaterRound() public {
        bytes32 model = keccak256("model 2");
        bytes32 root = keccak256("updates 2");
        _coolFederation();
        vm.prank(aggregator);
        fed.commitRound(fedId, 2, model, root);
        _report("commitRound: round 2 (updates root)", abi.encodeCall(FederatedRounds.commitRound, (fedId, 2, model, root)), COMMIT_ROUND_BUDGET);
    }
}
