// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Datatoken} from "../tokens/Datatoken.sol";

/// @notice The on-chain record of one dataset: four storage slots, five with a controller.
struct Dataset {
    /// sha256 digest of the metadata document; its CID is the raw-codec CIDv1 of this digest.
    bytes32 metadataDigest;
    /// A hiding commitment to the private table (a keyed hash only its owner can recompute).
    bytes32 commitment;
    /// The dataset's ERC-20 job-credit token (an ERC-1167 clone).
    address datatoken;
    /// The public row count: the true count plus Gaussian noise of `countNoise` (a DP release
    /// charged to the ledger at publish). The privacy unit is one row, add/remove neighbours.
    uint64 rows;
    /// Version of the current access policy, from 1.
    uint32 policyVersion;
    /// The runner account allowed to serve compute jobs on this dataset.
    address runner;
    /// σ of the row count's noise, in millionths.
    uint32 countNoise;
    /// Who may change the policy; address(0) means the NFT owner.
    address controller;
}

/// @notice What the owner states when publishing a dataset.
struct DatasetParams {
    bytes32 metadataDigest;
    bytes32 commitment;
    /// The noisy row count (see {Dataset-rows}).
    uint64 rows;
    /// σ of the count's noise, in millionths; positive.
    uint32 countNoise;
    address runner;
    /// address(0) leaves control with the NFT owner; a timelock makes the dataset governed.
    address controller;
}

/**
 * @title DatasetRegistry
 * @notice One ERC-721 token per dataset, with its metadata digest, private-data commitment,
 * runner, policy controller and policy version. Every dataset gets its own datatoken clone.
 */
abstract contract DatasetRegistry is ERC721 {
    /// @notice The template every datatoken is a clone of.
    address public immutable datatokenTemplate;

    uint256 private _nextDatasetId = 1;
    mapping(uint256 datasetId => Dataset) internal _datasets;
    mapping(bytes32 commitment => uint256 datasetId) private _datasetByCommitment;

    /// @notice A dataset was registered and its datatoken created.
    event DatasetPublished(
        uint256 indexed datasetId,
        address indexed owner,
        address datatoken,
        bytes32 metadataDigest,
        bytes32 commitment,
        uint64 rows,
        uint32 countNoise,
        address runner
    );
    /// @notice The runner allowed to serve `datasetId` changed.
    event RunnerChanged(uint256 indexed datasetId, address runner);
    /// @notice The policy controller of `datasetId` changed (address(0): the NFT owner).
    event PolicyControllerChanged(uint256 indexed datasetId, address previousController, address controller);

    /// @notice No dataset has this id.
    error UnknownDataset(uint256 datasetId);
    /// @notice The same private data is already registered as `datasetId`.
    error CommitmentAlreadyPublished(bytes32 commitment, uint256 datasetId);
    /// @notice A required field of the dataset is empty.
    error MissingDatasetField(string field);
    /// @notice Only the policy controller of `datasetId` may do this.
    error NotPolicyController(uint256 datasetId, address caller, address controller);

    constructor() ERC721("Cove Dataset", "COVE-DS") {
        datatokenTemplate = address(new Datatoken());
    }

    /// @notice The full record of `datasetId`.
    function datasetOf(uint256 datasetId) external view returns (Dataset memory) {
        return _requireDataset(datasetId);
    }

    /// @notice The dataset holding `commitment`, or 0 when none does.
    function datasetByCommitment(bytes32 commitment) external view returns (uint256) {
        return _datasetByCommitment[commitment];
    }

    /// @notice Who may change the policy of `datasetId`: its controller, or else its owner.
    function policyController(uint256 datasetId) public view returns (address) {
        address controller = _requireDataset(datasetId).controller;
        return controller == address(0) ? _ownerOf(datasetId) : controller;
    }

    /// @notice Number of datasets published so far (ids run from 1 to this number).
    function datasetCount() external view returns (uint256) {
        return _nextDatasetId - 1;
    }

    /// @notice Sets the runner that serves `datasetId`. Only the policy controller.
    function setRunner(uint256 datasetId, address runner) external {
        _requirePolicyControllerOf(datasetId);
        if (runner == address(0)) revert MissingDatasetField("runner");
        _datasets[datasetId].runner = runner;
        emit RunnerChanged(datasetId, runner);
    }

    /**
     * @notice Hands control of the policy of `datasetId` to `controller` (a timelock makes it
     * governed; address(0) returns control to the owner). Only the current controller.
     */
    function setPolicyController(uint256 datasetId, address controller) external {
        address previous = _requirePolicyControllerOf(datasetId);
        _datasets[datasetId].controller = controller;
        emit PolicyControllerChanged(datasetId, previous, controller);
    }

    /// @dev Registers a dataset for `owner`, mints its NFT and clones its datatoken.
    function _registerDataset(address owner, DatasetParams calldata params)
        internal
        returns (uint256 datasetId, address datatoken)
    {
        if (params.metadataDigest == 0) revert MissingDatasetField("metadataDigest");
        if (params.commitment == 0) revert MissingDatasetField("commitment");
        if (params.rows == 0) revert MissingDatasetField("rows");
        if (params.countNoise == 0) revert MissingDatasetField("countNoise");
        if (params.runner == address(0)) revert MissingDatasetField("runner");
        uint256 existing = _datasetByCommitment[params.commitment];
        if (existing != 0) revert CommitmentAlreadyPublished(params.commitment, existing);

        datasetId = _nextDatasetId++;
        _datasetByCommitment[params.commitment] = datasetId;
        datatoken = Clones.cloneWithImmutableArgs(datatokenTemplate, abi.encode(datasetId));
        Dataset storage dataset = _datasets[datasetId];
        dataset.metadataDigest = params.metadataDigest;
        dataset.commitment = params.commitment;
        dataset.datatoken = datatoken;
        dataset.rows = params.rows;
        dataset.runner = params.runner;
        dataset.countNoise = params.countNoise;
        if (params.controller != address(0)) dataset.controller = params.controller;
        _mint(owner, datasetId);

        emit DatasetPublished(
            datasetId, owner, datatoken, params.metadataDigest, params.commitment, params.rows, params.countNoise,
            params.runner
        );
        if (params.controller != address(0)) {
            emit PolicyControllerChanged(datasetId, address(0), params.controller);
        }
    }

    /// @dev Reverts unless the caller is the policy controller; returns the controller.
    function _requirePolicyControllerOf(uint256 datasetId) internal view returns (address controller) {
        controller = policyController(datasetId);
        if (msg.sender != controller) revert NotPolicyController(datasetId, msg.sender, controller);
    }

    /// @dev Reverts with UnknownDataset (rather than ERC-721's error) for a missing id.
    function _requireDataset(uint256 datasetId) internal view returns (Dataset storage dataset) {
        dataset = _datasets[datasetId];
        if (dataset.datatoken == address(0)) revert UnknownDataset(datasetId);
    }
}
