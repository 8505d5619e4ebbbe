// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {Vm} from "./utils/Test.sol";
import {DatasetRegistry, DatasetParams, Dataset} from "../src/modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "../src/modules/AccessPolicies.sol";
import {Datatoken} from "../src/tokens/Datatoken.sol";
import {ComputeJobs} from "../src/ComputeJobs.sol";
import {FederatedRounds} from "../src/FederatedRounds.sol";

/// @notice `publish`: the registration record, its events, the field checks and the
/// commitment-uniqueness rule; and UnknownDataset on every entry point taking an id.
contract PublishTest is CoveTest {
    bytes32 internal constant LISTS_DIGEST = keccak256("lists document");

    function test_Deploy_EmptyRegistry() public view {
        assertEq(cove.datasetCount(), 0, "datasetCount");
        assertEq(cove.name(), "Cove Dataset", "name");
        assertEq(cove.symbol(), "COVE-DS", "symbol");
        assertEq(cove.CREDIT(), 1e18, "CREDIT");
        assertEq(cove.datatokenTemplate(), _createAddress(address(cove), 1), "template at hub nonce 1");
        assertEq(Datatoken(cove.datatokenTemplate()).hub(), address(cove), "template hub");
        assertEq(cove.computeJobs(), _createAddress(address(cove), 2), "ComputeJobs at hub nonce 2");
        assertEq(ComputeJobs(cove.computeJobs()).hub(), address(cove), "ComputeJobs hub");
        assertEq(ComputeJobs(cove.computeJobs()).jobCount(), 0, "no jobs");
        assertEq(cove.federatedRounds(), _createAddress(address(cove), 3), "FederatedRounds at hub nonce 3");
        assertEq(FederatedRounds(cove.federatedRounds()).computeJobs(), cove.computeJobs(), "FederatedRounds' ComputeJobs");
        assertTrue(cove.supportsInterface(type(IERC721).interfaceId), "IERC721");
        assertTrue(cove.supportsInterface(type(IERC721Metadata).interfaceId), "IERC721Metadata");
    }

    function test_Publish_EmitsTransferDatasetPublishedPolicyUpdatedLedgerOpened() public {
        DatasetParams memory params = _params(1);
        Policy memory policy = _pricedPolicy();
        address expectedToken = _nextDatatoken();

        vm.expectEmit(true, true, true, true, address(cove));
        emit IERC721.Transfer(address(0), owner, 1);
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.DatasetPublished(
            1, owner, expectedToken, params.metadataDigest, params.commitment, params.rows, COUNT_NOISE, params.runner
        );
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(1, 1, policy, LISTS_DIGEST);
        vm.expectEmit(true, true, true, true, cove.computeJobs());
        emit ComputeJobs.LedgerOpened(1, COUNT_NOISE, PUBLICATION_EPSILON);

        vm.prank(owner);
        (uint256 id, address token) = cove.publish(params, policy, LISTS_DIGEST);
        assertEq(id, 1, "id");
        assertEq(token, expectedToken, "datatoken address");
    }

    function test_Publish_StoresRecord() public {
        DatasetParams memory params = _params(7);
        params.rows = 123_456;
        params.countNoise = 2_500_000;
        Policy memory policy = _pricedPolicy();
        (uint256 id, Datatoken token) = _publish(owner, params, policy);

        Dataset memory d = cove.datasetOf(id);
        assertEq(d.metadataDigest, params.metadataDigest, "metadataDigest");
        assertEq(d.commitment, params.commitment, "commitment");
        assertEq(d.datatoken, address(token), "datatoken");
        assertEq(d.rows, 123_456, "rows");
        assertEq(d.policyVersion, 1, "policyVersion");
        assertEq(d.runner, runner, "runner");
        assertEq(d.countNoise, 2_500_000, "countNoise");
        assertEq(d.controller, address(0), "controller");

        assertEq(cove.datasetByCommitment(params.commitment), id, "datasetByCommitment");
        assertEq(cove.datasetByCommitment(keccak256("other")), 0, "unknown commitment");
        assertEq(cove.ownerOf(id), owner, "ownerOf");
        assertEq(cove.balanceOf(owner), 1, "balanceOf");
        assertEq(cove.policyController(id), owner, "policyController");
        assertEq(cove.datasetCount(), 1, "datasetCount");

        (Policy memory stored, uint32 version) = cove.policyOf(id);
        assertEq(version, 1, "version");
        _assertPolicyEq(stored, policy);

        assertEq(token.hub(), address(cove), "hub");
        assertEq(token.datasetId(), id, "datatoken datasetId");
        assertEq(token.totalSupply(), 0, "no credits yet");
    }

    function test_Publish_SequentialIdsAndDistinctDatatokens() public {
        (uint256 id1, Datatoken t1) = _publish(owner, _params(1), _pricedPolicy());
        (uint256 id2, Datatoken t2) = _publish(stranger, _params(2), _freePolicy(5));
        assertEq(id1, 1, "id1");
        assertEq(id2, 2, "id2");
        assertTrue(address(t1) != address(t2), "distinct datatokens");
        assertEq(address(t2), _createAddress(address(cove), 5), "clone 2 at hub nonce 5");
        assertEq(t2.datasetId(), 2, "t2 datasetId");
        assertEq(cove.ownerOf(id2), stranger, "owner of 2");
        assertEq(cove.datasetCount(), 2, "count");
        assertEq(_version(id2), 1, "own version counter");
    }

    function test_Publish_WithController_EmitsAndHandsControl() public {
        DatasetParams memory params = _params(1);
        params.controller = timelock;

        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.DatasetPublished(
            1, owner, _nextDatatoken(), params.metadataDigest, params.commitment, params.rows, COUNT_NOISE, runner
        );
        vm.expectEmit(true, true, true, true, address(cove));
        emit DatasetRegistry.PolicyControllerChanged(1, address(0), timelock);
        vm.expectEmit(true, true, true, true, address(cove));
        emit AccessPolicies.PolicyUpdated(1, 1, _pricedPolicy(), bytes32(0));
        vm.expectEmit(true, true, true, true, cove.computeJobs());
        emit ComputeJobs.LedgerOpened(1, COUNT_NOISE, PUBLICATION_EPSILON);
        (uint256 id,) = _publish(owner, params, _pricedPolicy());

        assertEq(cove.datasetOf(id).controller, timelock, "stored controller");
        assertEq(cove.policyController(id), timelock, "policyController");
        assertEq(cove.ownerOf(id), owner, "owner still holds the NFT");
    }

    function test_Publish_WithoutController_EmitsNoControllerEvent() public {
        vm.recordLogs();
        _publish(owner, _params(1), _pricedPolicy());
        Vm.Log[] memory logs = vm.getRecordedLogs();
        // ERC-721 Transfer, DatasetPublished, PolicyUpdated, then ComputeJobs' LedgerOpened;
        // no PolicyControllerChanged.
        assertEq(logs.length, 4, "log count");
        assertEq(logs[0].topics[0], IERC721.Transfer.selector, "log 0");
        assertEq(logs[1].topics[0], DatasetRegistry.DatasetPublished.selector, "log 1");
        assertEq(logs[2].topics[0], AccessPolicies.PolicyUpdated.selector, "log 2");
        assertEq(logs[2].topics[2], bytes32(uint256(1)), "version topic");
        assertEq(logs[3].topics[0], ComputeJobs.LedgerOpened.selector, "log 3");
        assertEq(logs[3].emitter, cove.computeJobs(), "log 3 emitter");
        assertEq(logs[3].topics[1], bytes32(uint256(1)), "LedgerOpened datasetId");
        assertEq(logs[3].data, abi.encode(COUNT_NOISE, PUBLICATION_EPSILON), "countNoise and epsilon");
        // DatasetPublished's data: datatoken, metadataDigest, commitment, rows, countNoise, runner.
        (,,, uint64 rows, uint32 countNoise, address runner_) =
            abi.decode(logs[1].data, (address, bytes32, bytes32, uint64, uint32, address));
        assertEq(rows, 1_000, "rows");
        assertEq(countNoise, COUNT_NOISE, "countNoise");
        assertEq(runner_, runner, "runner");
    }

    // --------------------------------------------------------------- the publication's charge

    function test_Publish_ChargesTheRowCountRelease() public {
        (uint256 id,) = _publishPriced();
        ComputeJobs jobs = ComputeJobs(cove.computeJobs());
        uint64[24] memory charge = jobs.countReleaseCurve(COUNT_NOISE);
        uint64[24] memory ledger = jobs.curveOf(id);
        for (uint256 i; i < 24; ++i) {
            assertEq(ledger[i], charge[i], "ledger = countReleaseCurve(countNoise)");
            // σ 100: α / (2 · 100²) = α · 5e-5, i.e. α · 50000 nano.
            assertEq(ledger[i], jobs.rdpOrders()[i] * 50_000 / 1e18, "alpha / (2 sigma^2)");
        }
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "the publication's epsilon");
    }

    function test_RevertWhen_BudgetBelowThePublication_LeavesNoTrace() public {
        DatasetParams memory params = _params(1);
        Policy memory policy = _pricedPolicy();
        policy.budget = PUBLICATION_EPSILON - 1;
        policy.perJobCap = policy.budget;
        address clone = _nextDatatoken();
        vm.expectRevert(
            abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, 1, PUBLICATION_EPSILON, policy.budget)
        );
        vm.prank(owner);
        cove.publish(params, policy, bytes32(0));

        assertEq(cove.datasetCount(), 0, "no dataset");
        assertEq(cove.datasetByCommitment(params.commitment), 0, "commitment free");
        assertEq(cove.balanceOf(owner), 0, "no NFT");
        assertEq(clone.code.length, 0, "no datatoken");
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 1));
        cove.datasetOf(1);
        ComputeJobs jobs = ComputeJobs(cove.computeJobs());
        vm.expectRevert(abi.encodeWithSelector(ComputeJobs.UnknownDataset.selector, 1));
        jobs.curveOf(1);

        // Control: a budget of exactly the publication's ε is enough (and then spent).
        policy.budget = PUBLICATION_EPSILON;
        (uint256 id, Datatoken token) = _publish(owner, params, policy);
        assertEq(id, 1, "id 1");
        assertEq(address(token), clone, "the same clone address");
        assertEq(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "budget spent");
    }

    function test_Publish_MoreCountNoise_CheaperPublication() public {
        DatasetParams memory params = _params(1);
        params.countNoise = 2 * COUNT_NOISE; // σ 200: a quarter of the RDP
        (uint256 id,) = _publish(owner, params, _pricedPolicy());
        ComputeJobs jobs = ComputeJobs(cove.computeJobs());
        uint64[24] memory ledger = jobs.curveOf(id);
        for (uint256 i; i < 24; ++i) {
            // α · 12500 nano, rounded up (α = 1.5 gives 18750 exactly).
            assertEq(ledger[i], (jobs.rdpOrders()[i] * 12_500 + 1e18 - 1) / 1e18, "alpha / (2 sigma^2)");
        }
        assertLt(jobs.composedEpsilon(id), PUBLICATION_EPSILON, "cheaper");
        assertEq(cove.datasetOf(id).countNoise, 2 * COUNT_NOISE, "stored");
    }

    // --------------------------------------------------------------- MissingDatasetField

    function test_RevertWhen_MetadataDigestMissing() public {
        DatasetParams memory params = _params(1);
        params.metadataDigest = 0;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "metadataDigest"));
    }

    function test_RevertWhen_CommitmentMissing() public {
        DatasetParams memory params = _params(1);
        params.commitment = 0;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "commitment"));
    }

    function test_RevertWhen_RowsMissing() public {
        DatasetParams memory params = _params(1);
        params.rows = 0;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "rows"));
    }

    function test_RevertWhen_CountNoiseMissing() public {
        DatasetParams memory params = _params(1);
        params.countNoise = 0;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "countNoise"));
        // Checked after rows and before runner.
        params.runner = address(0);
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "countNoise"));
        params.rows = 0;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "rows"));
        // The smallest noise is taken by the registry (and then charged, see ComputeJobsLedger).
        params = _params(1);
        params.countNoise = 1;
        Policy memory generous = _pricedPolicy();
        (generous.budget, generous.perJobCap) = (type(uint32).max, type(uint32).max);
        // σ 1e-6: every order saturates, so the publication has no finite ε.
        vm.expectRevert(
            abi.encodeWithSelector(ComputeJobs.BudgetExceeded.selector, 1, type(uint256).max, type(uint32).max)
        );
        vm.prank(owner);
        cove.publish(params, generous, bytes32(0));
        assertEq(cove.datasetCount(), 0, "nothing registered");
    }

    function test_RevertWhen_RunnerMissing() public {
        DatasetParams memory params = _params(1);
        params.runner = address(0);
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "runner"));
    }

    function test_RevertWhen_AllFieldsMissing_ReportsMetadataDigestFirst() public {
        DatasetParams memory params;
        _expectPublishRevert(params, abi.encodeWithSelector(DatasetRegistry.MissingDatasetField.selector, "metadataDigest"));
    }

    // --------------------------------------------------------------- CommitmentAlreadyPublished

    function test_RevertWhen_CommitmentAlreadyPublished_ReportsExistingId() public {
        _publish(owner, _params(1), _pricedPolicy());
        (uint256 id2,) = _publish(owner, _params(2), _pricedPolicy());

        // Another publisher, new metadata, same private data as dataset 2.
        DatasetParams memory copy = _params(3);
        copy.commitment = _params(2).commitment;
        vm.expectRevert(
            abi.encodeWithSelector(DatasetRegistry.CommitmentAlreadyPublished.selector, copy.commitment, id2)
        );
        vm.prank(stranger);
        cove.publish(copy, _pricedPolicy(), bytes32(0));

        assertEq(id2, 2, "existing id is 2, not 1");
        assertEq(cove.datasetCount(), 2, "nothing registered");
        assertEq(cove.datasetByCommitment(copy.commitment), id2, "commitment still maps to 2");
    }

    function test_RevertWhen_SameParamsPublishedTwice() public {
        DatasetParams memory params = _params(1);
        (uint256 id,) = _publish(owner, params, _pricedPolicy());
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.CommitmentAlreadyPublished.selector, params.commitment, id));
        vm.prank(owner);
        cove.publish(params, _freePolicy(1), bytes32(0));
    }

    function test_FailedPublish_LeavesNoTrace() public {
        DatasetParams memory params = _params(1);
        Policy memory bad = _pricedPolicy();
        bad.budget = 0; // registration succeeds, then the policy check rolls everything back
        vm.expectRevert(AccessPolicies.InvalidPrivacyBudget.selector);
        vm.prank(owner);
        cove.publish(params, bad, bytes32(0));

        assertEq(cove.datasetCount(), 0, "count");
        assertEq(cove.datasetByCommitment(params.commitment), 0, "commitment free");
        assertEq(cove.balanceOf(owner), 0, "no NFT");
        // The same commitment can then be published as id 1.
        (uint256 id,) = _publish(owner, params, _pricedPolicy());
        assertEq(id, 1, "id reused");
    }

    // --------------------------------------------------------------- UnknownDataset

    function test_RevertWhen_UnknownDataset_Views() public {
        _publishPriced();
        uint256[3] memory ids = [uint256(0), 2, type(uint256).max];
        for (uint256 i; i < ids.length; ++i) {
            bytes memory err = abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, ids[i]);
            vm.expectRevert(err);
            cove.datasetOf(ids[i]);
            vm.expectRevert(err);
            cove.policyController(ids[i]);
            vm.expectRevert(err);
            cove.policyOf(ids[i]);
        }
    }

    function test_RevertWhen_UnknownDataset_Setters() public {
        bytes memory err = abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 1);
        vm.expectRevert(err);
        vm.prank(owner);
        cove.setPolicy(1, _pricedPolicy(), bytes32(0));
        vm.expectRevert(err);
        vm.prank(owner);
        cove.setRunner(1, runner);
        vm.expectRevert(err);
        vm.prank(owner);
        cove.setPolicyController(1, timelock);
    }

    function test_RevertWhen_UnknownDataset_Buy() public {
        _publishPriced();
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 2));
        _buy(buyer, 2, 1, type(uint256).max);
        // Checked before the credit count.
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 0));
        _buy(buyer, 0, 0, 0);
    }

    function test_RevertWhen_UnknownDataset_BuyWithPermit() public {
        vm.expectRevert(abi.encodeWithSelector(DatasetRegistry.UnknownDataset.selector, 1));
        vm.prank(buyer);
        cove.buyWithPermit(1, 1, address(usd), 1 ether, _noProof(), block.timestamp, 27, bytes32(0), bytes32(0));
    }

    // --------------------------------------------------------------- helpers

    function _expectPublishRevert(DatasetParams memory params, bytes memory err) private {
        vm.expectRevert(err);
        vm.prank(owner);
        cove.publish(params, _pricedPolicy(), bytes32(0));
        assertEq(cove.datasetCount(), 0, "nothing registered");
    }

}
