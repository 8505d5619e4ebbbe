// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./utils/Test.sol";
import {JobsTest} from "./utils/JobsTest.sol";
import {ComputeJobs, JobRequest, JobStatus} from "../src/ComputeJobs.sol";
import {FederatedRounds, Federation} from "../src/FederatedRounds.sol";

/**
 * @title FederationFixture
 * @notice Three free datasets of three owners (the fixture's, owner2's, owner3's), the buyer
 * holding credits of each, and builders for the buyer's jobs on them.
 */
abstract contract FederationFixture is JobsTest {
    bytes32 internal constant INITIAL = keccak256("initial model");

    FederatedRounds internal fed;
    address internal owner2 = address(0x0B2);
    address internal owner3 = address(0x0B3);
    address internal aggregator = address(0xA66);
    uint256 internal id2;
    uint256 internal id3;

    function setUp() public virtual override {
        super.setUp();
        fed = FederatedRounds(cove.federatedRounds());
        vm.label(address(fed), "FederatedRounds");
        vm.label(aggregator, "aggregator");
        (id2,) = _publish(owner2, _params(2), _jobPolicy());
        (id3,) = _publish(owner3, _params(3), _jobPolicy());
        _buy(buyer, id2, START_CREDITS, 0);
        _buy(buyer, id3, START_CREDITS, 0);
    }

    /// @notice `consumer` requests a job on `datasetId` (curve A).
    function _jobOn(address consumer, uint256 datasetId) internal returns (uint256 jobId) {
        JobRequest memory r = _request(_curveA());
        r.datasetId = datasetId;
        return _send(consumer, r);
    }

    /// @notice As {_jobOn} with curve B: the budget of a fixture dataset holds A and B, not A twice.
    function _secondJobOn(address consumer, uint256 datasetId) internal returns (uint256 jobId) {
        JobRequest memory r = _request(_curveB());
        r.datasetId = datasetId;
        return _send(consumer, r);
    }

    /// @notice The buyer's jobs on the three datasets, in order.
    function _threeJobs() internal returns (uint256[] memory jobIds) {
        jobIds = new uint256[](3);
        jobIds[0] = _jobOn(buyer, id);
        jobIds[1] = _jobOn(buyer, id2);
        jobIds[2] = _jobOn(buyer, id3);
    }

    /// @notice `[a, b]`.
    function _pair(uint256 a, uint256 b) internal pure returns (uint256[] memory jobIds) {
        jobIds = new uint256[](2);
        jobIds[0] = a;
        jobIds[1] = b;
    }

    /// @notice The buyer opens a federation of `jobIds` for the aggregator, `rounds` rounds.
    function _open(uint256[] memory jobIds, uint16 rounds) internal returns (uint256 fedId) {
        vm.prank(buyer);
        fedId = fed.open(jobIds, aggregator, rounds, INITIAL);
    }

    /// @notice The aggregator commits `round` of `fedId`.
    function _commit(uint256 fedId, uint16 round, bytes32 modelDigest, bytes32 updatesRoot) internal {
        vm.prank(aggregator);
        fed.commitRound(fedId, round, modelDigest, updatesRoot);
    }

    /// @notice The digest of round `round`'s model, for the tests.
    function _model(uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("model", round));
    }

    /// @notice The updates root of round `round`, for the tests.
    function _root(uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("updates", round));
    }
}

/// @notice FederatedRounds: the wiring with the hub, `open` and `commitRound` with their
/// events and every custom error, and the views.
contract FederatedRoundsTest is FederationFixture {
    // =============================================================== wiring

    function test_Wiring_HubDeploysFederatedRounds() public view {
        assertEq(cove.federatedRounds(), address(fed), "cove.federatedRounds");
        assertEq(fed.computeJobs(), address(jobs), "over the hub's ComputeJobs");
        assertEq(fed.federationCount(), 0, "none yet");
        assertEq(fed.MIN_JOBS(), 2, "MIN_JOBS");
        assertEq(fed.MAX_JOBS(), 16, "MAX_JOBS");
        assertEq(fed.federationOfJob(1), 0, "no job federated");
        assertLt(address(fed).code.length, 24_576, "FederatedRounds runtime under 24 KiB");
    }

    // =============================================================== open

    function test_Open_StoresIndexesAndEmits() public {
        uint256[] memory jobIds = _threeJobs();
        _accept(jobIds[1]); // a Requested or an Accepted job may join
        vm.expectEmit(true, true, true, true, address(fed));
        emit FederatedRounds.FederationOpened(1, buyer, aggregator, 3, jobIds, INITIAL);
        uint256 fedId = _open(jobIds, 3);

        assertEq(fedId, 1, "ids from 1");
        assertEq(fed.federationCount(), 1, "count");
        Federation memory f = fed.federationOf(fedId);
        assertEq(f.consumer, buyer, "consumer");
        assertEq(f.aggregator, aggregator, "aggregator");
        assertEq(f.rounds, 3, "rounds");
        assertEq(f.committed, 0, "nothing committed");
        assertEq(f.initialModelDigest, INITIAL, "initial model");
        uint256[] memory stored = fed.jobsOf(fedId);
        assertEq(stored.length, 3, "three jobs");
        for (uint256 i; i < 3; ++i) {
            assertEq(stored[i], jobIds[i], "job, in order");
            assertEq(fed.federationOfJob(jobIds[i]), fedId, "job -> federation");
        }
        (bytes32 model, bytes32 root) = fed.roundDigest(fedId, 0);
        assertEq(model, INITIAL, "round 0 is the initial model");
        assertEq(root, bytes32(0), "round 0 has no updates");
        (model, root) = fed.roundDigest(fedId, 1);
        assertEq(model, bytes32(0), "round 1 not committed");
        assertEq(root, bytes32(0), "no root yet");
        // The jobs themselves are untouched: still in ComputeJobs, as they were.
        assertEq(uint256(jobs.jobOf(jobIds[0]).status), uint256(JobStatus.Requested), "still requested");
        assertEq(uint256(jobs.jobOf(jobIds[1]).status), uint256(JobStatus.Accepted), "still accepted");
    }

    function test_Open_EmitsOneEvent() public {
        uint256[] memory jobIds = _threeJobs();
        vm.recordLogs();
        _open(jobIds, 5);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "FederationOpened only");
        assertEq(logs[0].emitter, address(fed), "from FederatedRounds");
        assertEq(logs[0].topics[0], FederatedRounds.FederationOpened.selector, "FederationOpened");
        assertEq(logs[0].topics[1], bytes32(uint256(1)), "fedId topic");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(buyer))), "consumer topic");
        assertEq(logs[0].topics[3], bytes32(uint256(uint160(aggregator))), "aggregator topic");
    }

    /// @notice Jobs 1 to 3 share one slot of the job -> federation index (ids 0 to 3), job 4
    /// starts the next: federations that interleave in a slot keep their own lanes.
    function test_Open_InterleavedFederationsKeepTheirJobs() public {
        uint256 a1 = _jobOn(buyer, id); // job 1
        uint256 b1 = _secondJobOn(buyer, id); // job 2
        uint256 a2 = _jobOn(buyer, id2); // job 3
        uint256 b2 = _jobOn(buyer, id3); // job 4
        uint256 first = _open(_pair(a1, a2), 1);
        vm.prank(buyer);
        uint256 second = fed.open(_pair(b2, b1), stranger, 7, keccak256("other model"));
        assertEq(second, 2, "next id");
        assertEq(fed.federationCount(), 2, "count");
        assertEq(fed.federationOfJob(a1), first, "a1");
        assertEq(fed.federationOfJob(b1), second, "b1");
        assertEq(fed.federationOfJob(a2), first, "a2");
        assertEq(fed.federationOfJob(b2), second, "b2");
        assertEq(fed.federationOfJob(5), 0, "job 5: none");
        uint256[] memory stored = fed.jobsOf(second);
        assertEq(stored.length, 2, "two");
        assertEq(stored[0], b2, "in the order given");
        assertEq(stored[1], b1, "second");
        assertEq(fed.federationOf(second).aggregator, stranger, "own aggregator");
        assertEq(fed.federationOf(second).rounds, 7, "own rounds");
        (bytes32 model,) = fed.roundDigest(second, 0);
        assertEq(model, keccak256("other model"), "own initial model");
    }

    function test_Open_SixteenJobs() public {
        uint256[] memory jobIds = new uint256[](16);
        for (uint256 i; i < 16; ++i) {
            uint256 datasetId = i == 0 ? id : i == 1 ? id2 : i == 2 ? id3 : _freshDataset(i);
            jobIds[i] = _jobOn(buyer, datasetId);
        }
        uint256 fedId = _open(jobIds, 2);
        uint256[] memory stored = fed.jobsOf(fedId);
        assertEq(stored.length, 16, "all sixteen, over four slots");
        for (uint256 i; i < 16; ++i) {
            assertEq(stored[i], jobIds[i], "job");
            assertEq(fed.federationOfJob(jobIds[i]), fedId, "indexed");
        }
    }

    // ----------------------------------------------------------- open: reverts

    function test_RevertWhen_Open_TooFewJobs() public {
        uint256 jobId = _jobOn(buyer, id);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.TooFewJobs.selector, 0));
        _open(new uint256[](0), 3);
        uint256[] memory one = new uint256[](1);
        one[0] = jobId;
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.TooFewJobs.selector, 1));
        _open(one, 3);
        assertEq(fed.federationCount(), 0, "none opened");
    }

    function test_RevertWhen_Open_TooManyJobs() public {
        uint256[] memory jobIds = new uint256[](17);
        for (uint256 i; i < 17; ++i) jobIds[i] = i + 1;
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.TooManyJobs.selector, 17, 16));
        _open(jobIds, 3);
    }

    function test_RevertWhen_Open_ZeroRoundsAggregatorOrDigest() public {
        uint256[] memory jobIds = _threeJobs();
        vm.expectRevert(FederatedRounds.ZeroRounds.selector);
        _open(jobIds, 0);
        vm.expectRevert(FederatedRounds.ZeroAggregator.selector);
        vm.prank(buyer);
        fed.open(jobIds, address(0), 3, INITIAL);
        vm.expectRevert(FederatedRounds.EmptyDigest.selector);
        vm.prank(buyer);
        fed.open(jobIds, aggregator, 3, bytes32(0));
        assertEq(fed.federationCount(), 0, "none opened");
        assertEq(fed.federationOfJob(jobIds[0]), 0, "nothing indexed");
    }

    function test_RevertWhen_Open_UnknownJob() public {
        uint256 jobId = _jobOn(buyer, id);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 99));
        _open(_pair(jobId, 99), 3);
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.JobNotFound.selector, 0));
        _open(_pair(0, jobId), 3);
    }

    function test_RevertWhen_Open_JobNotOpen() public {
        uint256[] memory jobIds = _threeJobs();
        _accept(jobIds[1]);
        _complete(jobIds[1]);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.JobNotOpen.selector, jobIds[1], JobStatus.Completed));
        _open(jobIds, 3);

        vm.prank(runner);
        jobs.fail(jobIds[2], "out of memory", _curveA(), false);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.JobNotOpen.selector, jobIds[2], JobStatus.Failed));
        _open(_pair(jobIds[0], jobIds[2]), 3);

        uint256 late = _secondJobOn(buyer, id2);
        vm.warp(block.timestamp + 2 days);
        vm.prank(buyer);
        jobs.refund(late, _curveB());
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.JobNotOpen.selector, late, JobStatus.Refunded));
        _open(_pair(jobIds[0], late), 3);
    }

    function test_RevertWhen_Open_NotJobConsumer() public {
        _buy(stranger, id2, 1, 0);
        uint256 mine = _jobOn(buyer, id);
        uint256 theirs = _jobOn(stranger, id2);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.NotJobConsumer.selector, theirs, buyer, stranger));
        _open(_pair(mine, theirs), 3);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.NotJobConsumer.selector, mine, stranger, buyer));
        vm.prank(stranger);
        fed.open(_pair(mine, theirs), aggregator, 3, INITIAL);
        // The same selector as ComputeJobs' error: clients decode them alike.
        assertEq(FederatedRounds.NotJobConsumer.selector, ComputeJobs.NotJobConsumer.selector, "one selector");
    }

    function test_RevertWhen_Open_DuplicateDataset() public {
        uint256 a = _jobOn(buyer, id);
        uint256 b = _jobOn(buyer, id2);
        uint256 c = _secondJobOn(buyer, id);
        uint256[] memory jobIds = new uint256[](3);
        (jobIds[0], jobIds[1], jobIds[2]) = (a, b, c);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.DuplicateDataset.selector, id));
        _open(jobIds, 3);
        // The same job twice is the same dataset twice.
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.DuplicateDataset.selector, id2));
        _open(_pair(b, b), 3);
    }

    function test_RevertWhen_Open_AlreadyFederated() public {
        uint256[] memory jobIds = _threeJobs();
        uint256 fedId = _open(_pair(jobIds[0], jobIds[1]), 3);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.AlreadyFederated.selector, jobIds[1], fedId));
        _open(_pair(jobIds[2], jobIds[1]), 3);
        assertEq(fed.federationCount(), 1, "only the first");
        assertEq(fed.federationOfJob(jobIds[2]), 0, "the refused one indexed nothing");
    }

    // =============================================================== commitRound

    function test_CommitRound_AllRoundsInOrder() public {
        uint256 fedId = _open(_threeJobs(), 3);
        for (uint16 round = 1; round <= 3; ++round) {
            // Round 2 under secure aggregation: no per-client updates root.
            bytes32 root = round == 2 ? bytes32(0) : _root(round);
            vm.expectEmit(true, true, true, true, address(fed));
            emit FederatedRounds.RoundCommitted(fedId, round, _model(round), root);
            _commit(fedId, round, _model(round), root);
            assertEq(fed.federationOf(fedId).committed, round, "committed");
        }
        for (uint16 round = 1; round <= 3; ++round) {
            (bytes32 model, bytes32 root) = fed.roundDigest(fedId, round);
            assertEq(model, _model(round), "model digest");
            assertEq(root, round == 2 ? bytes32(0) : _root(round), "updates root");
        }
        (bytes32 initial,) = fed.roundDigest(fedId, 0);
        assertEq(initial, INITIAL, "round 0 unchanged");
        (bytes32 none, bytes32 noRoot) = fed.roundDigest(fedId, 4);
        assertEq(none, bytes32(0), "no round 4");
        assertEq(noRoot, bytes32(0), "no round 4 root");
    }

    function test_RevertWhen_CommitRound_FourthOfThreeRounds() public {
        uint256 fedId = _open(_threeJobs(), 3);
        for (uint16 round = 1; round <= 3; ++round) _commit(fedId, round, _model(round), _root(round));
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 4, 4, 3));
        _commit(fedId, 4, _model(4), _root(4));
        assertEq(fed.federationOf(fedId).committed, 3, "still three");
    }

    function test_RevertWhen_CommitRound_SkippedRepeatedOrZero() public {
        uint256 fedId = _open(_threeJobs(), 3);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 0, 1, 3));
        _commit(fedId, 0, _model(0), 0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 2, 1, 3));
        _commit(fedId, 2, _model(2), 0);
        _commit(fedId, 1, _model(1), _root(1));
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 1, 2, 3));
        _commit(fedId, 1, keccak256("another model"), _root(1));
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 3, 2, 3));
        _commit(fedId, 3, _model(3), 0);
        (bytes32 model,) = fed.roundDigest(fedId, 1);
        assertEq(model, _model(1), "round 1 kept its first model");
    }

    function test_RevertWhen_CommitRound_NotAggregator() public {
        uint256 fedId = _open(_threeJobs(), 3);
        address[3] memory callers = [buyer, stranger, owner];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(FederatedRounds.NotAggregator.selector, fedId, callers[i], aggregator));
            vm.prank(callers[i]);
            fed.commitRound(fedId, 1, _model(1), 0);
        }
        assertEq(fed.federationOf(fedId).committed, 0, "nothing committed");
    }

    function test_RevertWhen_CommitRound_UnknownFederationOrEmptyDigest() public {
        uint256 fedId = _open(_threeJobs(), 3);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 2));
        _commit(2, 1, _model(1), 0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 0));
        _commit(0, 1, _model(1), 0);
        vm.expectRevert(FederatedRounds.EmptyDigest.selector);
        _commit(fedId, 1, bytes32(0), _root(1));
    }

    function test_CommitRound_OneRoundFederation() public {
        uint256 fedId = _open(_pair(_jobOn(buyer, id), _jobOn(buyer, id2)), 1);
        _commit(fedId, 1, _model(1), 0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, 2, 2, 1));
        _commit(fedId, 2, _model(2), 0);
    }

    function test_CommitRound_FederationsAdvanceIndependently() public {
        uint256 first = _open(_pair(_jobOn(buyer, id), _jobOn(buyer, id2)), 2);
        uint256 second = _open(_pair(_secondJobOn(buyer, id), _jobOn(buyer, id3)), 2);
        _commit(first, 1, _model(1), 0);
        _commit(first, 2, _model(2), 0);
        _commit(second, 1, keccak256("second's round 1"), 0);
        assertEq(fed.federationOf(first).committed, 2, "first done");
        assertEq(fed.federationOf(second).committed, 1, "second at 1");
        (bytes32 model,) = fed.roundDigest(second, 1);
        assertEq(model, keccak256("second's round 1"), "own digest");
    }

    function testFuzz_CommitRound_OnlyTheNextRound(uint16 round, uint8 done) public {
        uint16 rounds = 5;
        uint256 fedId = _open(_threeJobs(), rounds);
        uint16 committed = uint16(bound(done, 0, rounds));
        for (uint16 r = 1; r <= committed; ++r) _commit(fedId, r, _model(r), 0);
        if (round == committed + 1 && round <= rounds) {
            _commit(fedId, round, _model(round), 0);
            assertEq(fed.federationOf(fedId).committed, round, "accepted");
        } else {
            vm.expectRevert(
                abi.encodeWithSelector(FederatedRounds.RoundOutOfRange.selector, fedId, round, committed + 1, rounds)
            );
            _commit(fedId, round, _model(round), 0);
        }
    }

    // =============================================================== views

    function test_RevertWhen_Views_UnknownFederation() public {
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 0));
        fed.federationOf(0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 1));
        fed.jobsOf(1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 1));
        fed.roundDigest(1, 0);
        _open(_threeJobs(), 3);
        vm.expectRevert(abi.encodeWithSelector(FederatedRounds.UnknownFederation.selector, 2));
        fed.federationOf(2);
    }

    // =============================================================== helpers

    /// @notice Publishes one more free dataset (seed `seed`) and gives the buyer a credit of it.
    function _freshDataset(uint256 seed) internal returns (uint256 datasetId) {
        (datasetId,) = _publish(owner, _params(100 + seed), _jobPolicy());
        _buy(buyer, datasetId, 1, 0);
    }
}
