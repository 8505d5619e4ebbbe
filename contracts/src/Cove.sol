// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DatasetRegistry, DatasetParams, Dataset} from "./modules/DatasetRegistry.sol";
import {AccessPolicies, Policy} from "./modules/AccessPolicies.sol";
import {Market} from "./modules/Market.sol";
import {Datatoken} from "./tokens/Datatoken.sol";

/**
 * @title Cove
 * @notice The Cove hub: dataset registry (ERC-721), access policies and market in one
 * deployment, so publishing is one transaction and a purchase makes no cross-contract call
 * besides the payment and the mint. Each concern lives in its own module.
 */
contract Cove is DatasetRegistry, AccessPolicies, Market {
    /**
     * @notice Publishes a dataset in one transaction: mints its NFT to the caller, clones
     * its datatoken and sets its first policy.
     * @param params Metadata digest, private-data commitment, rows, runner and controller.
     * @param policy The access policy (see {Policy}); validated as in {setPolicy}.
     * @param listsDigest Digest of the allowlist / model-family lists document (0 if none).
     * @return datasetId The new dataset's id (also its NFT id).
     * @return datatoken The dataset's credit token.
     */
    function publish(DatasetParams calldata params, Policy calldata policy, bytes32 listsDigest)
        external
        returns (uint256 datasetId, address datatoken)
    {
        (datasetId, datatoken) = _registerDataset(msg.sender, params);
        _setPolicy(datasetId, policy, listsDigest);
    }

    function _requirePolicyController(uint256 datasetId) internal view override {
        _requirePolicyControllerOf(datasetId);
    }

    function _policyVersion(uint256 datasetId) internal view override returns (uint32) {
        return _requireDataset(datasetId).policyVersion;
    }

    function _bumpPolicyVersion(uint256 datasetId) internal override returns (uint32 version) {
        Dataset storage dataset = _datasets[datasetId];
        version = dataset.policyVersion + 1;
        dataset.policyVersion = version;
    }

    function _saleParties(uint256 datasetId) internal view override returns (address owner, address datatoken) {
        datatoken = _requireDataset(datasetId).datatoken;
        owner = _ownerOf(datasetId);
    }

    function _policyStorage(uint256 datasetId) internal view override returns (Policy storage) {
        return _policies[datasetId];
    }

    function _mintCredits(address datatoken, address to, uint256 amount) internal override {
        Datatoken(datatoken).mint(to, amount);
    }
}
