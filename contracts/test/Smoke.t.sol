// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;
import {Cove} from "../src/Cove.sol";
contract SmokeTest {
    function testDeploy() public {
        Cove c = new Cove();
        require(c.datasetCount() == 0, "count");
    }
}
