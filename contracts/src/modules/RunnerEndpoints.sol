// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title RunnerEndpoints
 * @notice Where each runner's public endpoint is: the base URL of the HTTP server on its
 * owner's premises that serves the content of the datasets it runs (metadata, allowlists,
 * provenance records, encrypted weights) over the IPFS trustless gateway protocol. A buyer
 * learns a dataset's endpoint from the chain alone: the dataset names its runner, and the
 * runner names its endpoint here.
 * @dev Any account may set its own endpoint; it only matters for accounts that datasets name
 * as their runner. The URL's form (http or https, no credentials) is checked off-chain by
 * readers, which fetch nothing they cannot verify against a CID.
 */
abstract contract RunnerEndpoints {
    /// @notice The longest endpoint URL, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    mapping(address runner => string) private _endpoints;

    /// @notice `runner` set its endpoint to `url` (empty: it has none).
    event EndpointSet(address indexed runner, string url);

    /// @notice The endpoint URL is `length` bytes, above MAX_ENDPOINT_LENGTH.
    error EndpointTooLong(uint256 length, uint256 maxLength);

    /**
     * @notice Sets (or, with an empty string, removes) the caller's public endpoint URL.
     * @param url The endpoint's base URL, e.g. "https://hospital.example/cove".
     */
    function setEndpoint(string calldata url) external {
        if (bytes(url).length > MAX_ENDPOINT_LENGTH) revert EndpointTooLong(bytes(url).length, MAX_ENDPOINT_LENGTH);
        _endpoints[msg.sender] = url;
        emit EndpointSet(msg.sender, url);
    }

    /// @notice The public endpoint URL of `runner` (empty when it set none).
    function endpointOf(address runner) public view virtual returns (string memory) {
        return _endpoints[runner];
    }
}
