// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {CoveTest} from "./utils/CoveTest.sol";
import {TestPaymentToken} from "../src/tokens/TestPaymentToken.sol";

/// @notice The test payment token: faucet bounds and EIP-2612 permits.
contract PaymentTokenTest is CoveTest {
    function test_Metadata() public view {
        assertEq(usd.name(), "Cove Test Dollar", "name");
        assertEq(usd.symbol(), "tUSD", "symbol");
        assertEq(usd.decimals(), 18, "decimals");
        assertEq(usd.FAUCET_LIMIT(), 10_000 ether, "limit");
        assertEq(usd.totalSupply(), 0, "supply");
    }

    function test_Metadata_SixDecimals() public {
        TestPaymentToken usdc = new TestPaymentToken("Cove Test USDC", "tUSDC", 6);
        assertEq(usdc.name(), "Cove Test USDC", "name");
        assertEq(usdc.symbol(), "tUSDC", "symbol");
        assertEq(usdc.decimals(), 6, "decimals");
        assertEq(usdc.FAUCET_LIMIT(), 10_000e6, "limit: 10,000 whole tokens");
        vm.expectRevert(abi.encodeWithSelector(TestPaymentToken.FaucetLimitExceeded.selector, 10_000e6 + 1, 10_000e6));
        usdc.faucet(10_000e6 + 1);
    }

    function test_Faucet_MintsToCaller() public {
        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Transfer(address(0), buyer, 25 ether);
        vm.prank(buyer);
        usd.faucet(25 ether);
        assertEq(usd.balanceOf(buyer), 25 ether, "balance");
        assertEq(usd.totalSupply(), 25 ether, "supply");
    }

    function test_Faucet_AtLimit_AndRepeatable() public {
        vm.startPrank(buyer);
        usd.faucet(10_000 ether);
        usd.faucet(10_000 ether); // the limit is per call
        vm.stopPrank();
        assertEq(usd.balanceOf(buyer), 20_000 ether, "two calls at the limit");
    }

    function test_RevertWhen_FaucetAboveLimit() public {
        vm.expectRevert(
            abi.encodeWithSelector(TestPaymentToken.FaucetLimitExceeded.selector, 10_000 ether + 1, 10_000 ether)
        );
        vm.prank(buyer);
        usd.faucet(10_000 ether + 1);
        vm.expectRevert(
            abi.encodeWithSelector(TestPaymentToken.FaucetLimitExceeded.selector, type(uint256).max, 10_000 ether)
        );
        usd.faucet(type(uint256).max);
        assertEq(usd.totalSupply(), 0, "nothing minted");
    }

    function testFuzz_Faucet(uint256 amount) public {
        if (amount > usd.FAUCET_LIMIT()) {
            vm.expectRevert(
                abi.encodeWithSelector(TestPaymentToken.FaucetLimitExceeded.selector, amount, usd.FAUCET_LIMIT())
            );
            vm.prank(stranger);
            usd.faucet(amount);
            assertEq(usd.balanceOf(stranger), 0, "nothing");
        } else {
            vm.prank(stranger);
            usd.faucet(amount);
            assertEq(usd.balanceOf(stranger), amount, "minted");
        }
    }

    // --------------------------------------------------------------- permit

    function test_DomainSeparator_MatchesEip712() public view {
        assertEq(usd.DOMAIN_SEPARATOR(), _usdDomainSeparator(), "DOMAIN_SEPARATOR");
        (, string memory name, string memory version, uint256 chainId, address verifying,,) = usd.eip712Domain();
        assertEq(name, "Cove Test Dollar", "domain name");
        assertEq(version, "1", "domain version");
        assertEq(chainId, block.chainid, "chain id");
        assertEq(verifying, address(usd), "verifying contract");
    }

    function test_Permit_SetsAllowance() public {
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(BUYER_KEY, address(cove), 42 ether, deadline);
        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Approval(buyer, address(cove), 42 ether);
        vm.prank(stranger); // anyone may submit it
        usd.permit(buyer, address(cove), 42 ether, deadline, v, r, s);
        assertEq(usd.allowance(buyer, address(cove)), 42 ether, "allowance");
        assertEq(usd.nonces(buyer), 1, "nonce");
    }

    function test_RevertWhen_PermitReplayed() public {
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(BUYER_KEY, address(cove), 1 ether, deadline);
        usd.permit(buyer, address(cove), 1 ether, deadline, v, r, s);
        // Under nonce 1 the same signature recovers some other address.
        address recovered =
            ecrecover(_permitDigest(buyer, address(cove), 1 ether, 1, deadline), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, buyer));
        usd.permit(buyer, address(cove), 1 ether, deadline, v, r, s);
    }

    function test_RevertWhen_PermitExpired() public {
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(BUYER_KEY, address(cove), 1 ether, deadline);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        usd.permit(buyer, address(cove), 1 ether, deadline, v, r, s);
    }

    function test_Permit_AtDeadline() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(BUYER_KEY, address(cove), 1 ether, deadline);
        usd.permit(buyer, address(cove), 1 ether, deadline, v, r, s);
        assertEq(usd.allowance(buyer, address(cove)), 1 ether, "allowance");
    }

    function test_RevertWhen_PermitValueTampered() public {
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(BUYER_KEY, address(cove), 1 ether, deadline);
        address recovered = ecrecover(_permitDigest(buyer, address(cove), 2 ether, 0, deadline), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, buyer));
        usd.permit(buyer, address(cove), 2 ether, deadline, v, r, s);
    }
}
