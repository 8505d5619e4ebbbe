// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {PolicyRecord} from "./AccessPolicies.sol";

/**
 * @title Market
 * @notice Sells a dataset's job credits at its policy's fixed price, paid in the policy's
 * ERC-20 straight to the dataset owner (no fee), or gives them away up to a per-address
 * cap when the dataset is free. Credits are minted on purchase, so there is no stock to run out.
 */
abstract contract Market is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice One credit is one whole datatoken.
    uint256 public constant CREDIT = 1e18;

    mapping(uint256 datasetId => mapping(address buyer => uint256)) private _freeCreditsTaken;

    /// @notice `buyer` bought `credits` credits of `datasetId` for `cost` of `paymentToken`.
    event CreditsPurchased(
        uint256 indexed datasetId, address indexed buyer, uint64 credits, address paymentToken, uint256 cost
    );

    /// @notice At least one credit must be bought.
    error ZeroCredits();
    /// @notice The price rose above what the buyer agreed to pay.
    error CostAboveMaximum(uint256 cost, uint256 maxCost);
    /// @notice The dataset is now priced in `actual`, not the token the buyer agreed to pay in.
    error PaymentTokenChanged(uint256 datasetId, address expected, address actual);
    /// @notice The buyer is not on the dataset's allowlist.
    error NotAllowlisted(uint256 datasetId, address buyer);
    /// @notice The dataset's policy expired at `expiry`.
    error PolicyExpired(uint256 datasetId, uint40 expiry);
    /// @notice The free dataset's per-address cap would be exceeded.
    error FreeCapExceeded(uint256 datasetId, uint16 cap, uint256 alreadyTaken);

    /**
     * @notice Buys `credits` credits of `datasetId`, paying at most `maxCost` of `paymentToken`
     * with an allowance given to this contract beforehand. The maximum names its token, so a
     * policy that switched tokens since the buyer's quote cannot charge the same number of
     * units of another token. `proof` shows the caller is on the allowlist (empty when open).
     * @param datasetId The dataset.
     * @param credits How many credits (at least one).
     * @param paymentToken The token the buyer agreed to pay in (ignored when nothing is due).
     * @param maxCost The most the buyer pays, in `paymentToken`'s smallest units.
     * @param proof Merkle proof of the caller on the allowlist.
     */
    function buy(uint256 datasetId, uint64 credits, address paymentToken, uint256 maxCost, bytes32[] calldata proof)
        external
        nonReentrant
    {
        _buy(datasetId, credits, paymentToken, maxCost, proof);
    }

    /**
     * @notice Like {buy}, with an EIP-2612 permit of `paymentToken` for `maxCost`, so approval
     * and purchase take one transaction. A permit that fails (for instance, front-run) is
     * ignored when the allowance is already in place; otherwise the payment reverts.
     * @param deadline The permit's deadline (unix time).
     * @param v The permit signature's `v`.
     * @param r The permit signature's `r`.
     * @param s The permit signature's `s`.
     */
    function buyWithPermit(
        uint256 datasetId,
        uint64 credits,
        address paymentToken,
        uint256 maxCost,
        bytes32[] calldata proof,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant {
        // No code (address(0) for a free dataset, a typo): skip the permit, since the
        // compiler's code-size check before the call would revert outside the try.
        if (paymentToken.code.length != 0) {
            try IERC20Permit(paymentToken).permit(msg.sender, address(this), maxCost, deadline, v, r, s) {} catch {}
        }
        _buy(datasetId, credits, paymentToken, maxCost, proof);
    }

    /// @notice Free credits `buyer` has taken from `datasetId`.
    function freeCreditsTaken(uint256 datasetId, address buyer) external view returns (uint256) {
        return _freeCreditsTaken[datasetId][buyer];
    }

    function _buy(uint256 datasetId, uint64 credits, address paymentToken, uint256 maxCost, bytes32[] calldata proof)
        private
    {
        (address owner, address datatoken) = _saleParties(datasetId);
        PolicyRecord storage policy = _policyStorage(datasetId);
        if (credits == 0) revert ZeroCredits();
        _requireBuyer(datasetId, policy, proof);

        uint256 cost = uint256(policy.price) * credits;
        if (cost == 0) {
            _takeFreeCredits(datasetId, credits, policy.freeCap);
            emit CreditsPurchased(datasetId, msg.sender, credits, address(0), 0);
        } else {
            address token = policy.paymentToken;
            if (token != paymentToken) revert PaymentTokenChanged(datasetId, paymentToken, token);
            if (cost > maxCost) revert CostAboveMaximum(cost, maxCost);
            emit CreditsPurchased(datasetId, msg.sender, credits, token, cost);
            IERC20(token).safeTransferFrom(msg.sender, owner, cost);
        }
        _mintCredits(datatoken, msg.sender, credits * CREDIT);
    }

    /// @dev Reverts unless the policy is live and admits the caller.
    function _requireBuyer(uint256 datasetId, PolicyRecord storage policy, bytes32[] calldata proof) private view {
        uint40 expiry = policy.expiry;
        if (expiry != 0 && block.timestamp > expiry) revert PolicyExpired(datasetId, expiry);
        bytes32 root = policy.allowlistRoot;
        if (root != 0 && !MerkleProof.verifyCalldata(proof, root, allowlistLeaf(msg.sender))) {
            revert NotAllowlisted(datasetId, msg.sender);
        }
    }

    /// @dev Counts free credits against the caller's per-address cap.
    function _takeFreeCredits(uint256 datasetId, uint64 credits, uint16 cap) private {
        uint256 taken = _freeCreditsTaken[datasetId][msg.sender];
        if (taken + credits > cap) revert FreeCapExceeded(datasetId, cap, taken);
        _freeCreditsTaken[datasetId][msg.sender] = taken + credits;
    }

    /// @notice The allowlist leaf of `account`: OpenZeppelin's double-hashed standard leaf.
    function allowlistLeaf(address account) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account))));
    }

    /// @dev The owner paid and the datatoken minted in a sale; reverts for an unknown dataset.
    function _saleParties(uint256 datasetId) internal view virtual returns (address owner, address datatoken);

    function _policyStorage(uint256 datasetId) internal view virtual returns (PolicyRecord storage);

    function _mintCredits(address datatoken, address to, uint256 amount) internal virtual;
}
