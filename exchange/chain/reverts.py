"""Turns revert data into one readable sentence.

Contracts fail with custom errors; this module decodes them against the artifacts' ABIs
and phrases each one for a person, with fixed-point values in human units.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from exchange.chain.artifacts import error_specs
from exchange.errors import TransactionReverted
from exchange.units import delta_from_fixed, epsilon_from_fixed

_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
_JOB_STATUS = {0: "none", 1: "requested", 2: "accepted", 3: "completed", 4: "failed", 5: "refunded"}
_PROPOSAL_STATE = ("pending", "active", "canceled", "defeated", "succeeded", "queued", "expired", "executed")


def _states(bitmap: bytes, names: tuple[str, ...]) -> list[str]:
    bits = int.from_bytes(bitmap, "big")
    return [name for i, name in enumerate(names) if bits >> i & 1] or ["in another state"]


_PANICS = {0x01: "an assertion failed", 0x11: "an arithmetic overflow", 0x12: "a division by zero"}


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "UnknownDataset": lambda a: f"there is no dataset #{a['datasetId']}; list them with `cove datasets`",
    "CommitmentAlreadyPublished": lambda a: (
        f"this data is already published as dataset #{a['datasetId']}; "
        "publish different data or manage that dataset instead"
    ),
    "MissingDatasetField": lambda a: f"the dataset's {a['field']} is missing",
    "NotPolicyController": lambda a: (
        f"only the policy controller of dataset #{a['datasetId']} ({a['controller']}) may change it, "
        f"not {a['caller']}; use the controller's account"
    ),
    "InvalidPrivacyBudget": lambda a: "the privacy budget must be greater than 0",
    "InvalidPerJobCap": lambda a: (
        f"the per-job privacy cap (ε {epsilon_from_fixed(a['perJobCap'])}) must be positive and at most "
        f"the budget (ε {epsilon_from_fixed(a['budget'])})"
    ),
    "InvalidDelta": lambda a: f"δ must lie strictly between 0 and 1, not {delta_from_fixed(a['delta'])}",
    "DeltaNotBelowOneOverRows": lambda a: (
        f"δ must be below 1/n for the dataset's public row count n = {a['rows']}, not {delta_from_fixed(a['delta'])}; "
        f"choose a δ below {1 / a['rows']:.2g}"
    ),
    "ZeroCountNoise": lambda a: "a dataset's row count must be released with noise above 0 (--count-noise)",
    "InvalidMaxEpochs": lambda a: "the policy must allow at least one epoch",
    "MissingPaymentToken": lambda a: "a priced dataset needs a payment token",
    "MissingFreeCap": lambda a: "a free dataset needs a per-address credit cap above 0",
    "ExpiryInPast": lambda a: f"the expiry {_when(a['expiry'])} is already past; choose a later one",
    "ZeroCredits": lambda a: "buy at least one credit",
    "CostAboveMaximum": lambda a: (
        f"the price changed: the purchase now costs {a['cost']} units, above your maximum of "
        f"{a['maxCost']}; check `cove policy show` and try again"
    ),
    "PaymentTokenChanged": lambda a: (
        f"dataset #{a['datasetId']} is now priced in the token {a['actual']}, not in {a['expected']} as quoted, "
        f"so nothing was paid; check `cove policy show {a['datasetId']}` and buy again"
    ),
    "EndpointTooLong": lambda a: f"the endpoint URL is {a['length']} bytes; at most {a['maxLength']} are allowed",
    "InvalidSpecLength": lambda a: (
        f"the request carries a spec of {a['length']} bytes; it must carry 1 to {a['maxLength']} "
        "(compressed); use fewer or shorter feature names"
    ),
    "NotAllowlisted": lambda a: (
        f"{a['buyer']} is not on the allowlist of dataset #{a['datasetId']}; ask its owner to add you"
    ),
    "PolicyExpired": lambda a: (
        f"dataset #{a['datasetId']} stopped selling credits at {_when(a['expiry'])}"
    ),
    "FreeCapExceeded": lambda a: (
        f"dataset #{a['datasetId']} gives at most {a['cap']} free credits per address and you already "
        f"took {a['alreadyTaken']}"
    ),
    "DatatokenUnauthorized": lambda a: f"{a['caller']} may not mint datatokens; only the Cove hub can",
    "FaucetLimitExceeded": lambda a: "the faucet gives at most 10000 tokens per call",
    "ERC20InsufficientBalance": lambda a: (
        f"{a['sender']} holds {a['balance']} units of the payment token but {a['needed']} are needed; "
        "get more (on a local chain: `cove faucet`)"
    ),
    "ERC20InsufficientAllowance": lambda a: (
        f"the allowance to {a['spender']} is {a['allowance']} units but {a['needed']} are needed; "
        "approve more or let `cove buy` approve"
    ),
    "ModelFamilyNotAllowed": lambda a: (
        f"dataset #{a['datasetId']} does not allow this model family; see its policy's model families"
    ),
    "InvalidEpochs": lambda a: f"the job asks for {a['epochs']} epochs; the policy allows 1 to {a['maxEpochs']}",
    "ZeroNoiseMultiplier": lambda a: "a job without noise is not differentially private; set a noise multiplier",
    "InvalidSampleRate": lambda a: "the job's sample rate must lie in (0, 1]",
    "ZeroSteps": lambda a: "the job must train at least one step",
    "ZeroClipNorm": lambda a: "the clipping norm must be greater than 0",
    "ZeroRdpEntry": lambda a: "the job's RDP curve has a zero entry, which only a noiseless or dishonest curve has",
    "JobEpsilonAboveCap": lambda a: (
        f"this job would spend ε {epsilon_from_fixed(a['epsilon'])}, above the per-job cap of "
        f"ε {epsilon_from_fixed(a['perJobCap'])}; add noise, train fewer epochs or use a smaller batch"
    ),
    "BudgetExceeded": lambda a: (
        f"dataset #{a['datasetId']} has not enough privacy budget left: with this job its spent ε would be "
        f"{epsilon_from_fixed(a['epsilon'])}, above its budget of ε {epsilon_from_fixed(a['budget'])}"
    ),
    "DeadlineInPast": lambda a: f"the job's deadline {_when(a['deadline'])} is already past",
    "InvalidEncryptionKey": lambda a: "the encryption key must be a 33- or 65-byte secp256k1 public key",
    "NoCredit": lambda a: (
        f"{a['consumer']} holds no credit of dataset #{a['datasetId']}; buy one with `cove buy {a['datasetId']}`"
    ),
    "JobNotFound": lambda a: f"there is no job #{a['jobId']}; list them with `cove jobs`",
    "JobAlreadyAccepted": lambda a: f"job #{a['jobId']} was already accepted by runner {a['runner']}",
    "JobNotAccepted": lambda a: f"job #{a['jobId']} has not been accepted by a runner yet",
    "JobClosed": lambda a: f"job #{a['jobId']} is already closed ({_JOB_STATUS.get(a['status'], a['status'])})",
    "NotJobRunner": lambda a: f"only runner {a['runner']} may do this for job #{a['jobId']}, not {a['caller']}",
    "NotJobConsumer": lambda a: (
        f"job #{a['jobId']} belongs to its buyer {a['consumer']}: only the buyer may take it back or federate it, "
        f"not {a['caller']}"
    ),
    "DeadlinePassed": lambda a: f"job #{a['jobId']} passed its deadline {_when(a['deadline'])}",
    "DeadlineNotPassed": lambda a: (
        f"job #{a['jobId']} can be taken back only after its deadline {_when(a['deadline'])}"
    ),
    "CurveMismatch": lambda a: f"that RDP curve is not the one job #{a['jobId']} was requested with",
    "EmptyResultHash": lambda a: "a completed job needs its weights and provenance hashes",
    "TooFewJobs": lambda a: f"a federation needs at least 2 jobs (one per dataset), not {a['count']}",
    "TooManyJobs": lambda a: f"a federation groups at most {a['maxJobs']} jobs, not {a['count']}",
    "ZeroRounds": lambda a: "a federation must run at least one round",
    "ZeroAggregator": lambda a: "a federation needs an aggregator address",
    "EmptyDigest": lambda a: "a model digest must not be zero",
    "JobNotOpen": lambda a: (
        f"job #{a['jobId']} is {_JOB_STATUS.get(a['status'], a['status'])}; only a requested or accepted job "
        "can join a federation"
    ),
    "DuplicateDataset": lambda a: (
        f"two of the jobs train on dataset #{a['datasetId']}; a federation has one job per dataset"
    ),
    "AlreadyFederated": lambda a: f"job #{a['jobId']} is already in federation #{a['fedId']}",
    "UnknownFederation": lambda a: f"there is no federation #{a['fedId']}",
    "NotAggregator": lambda a: (
        f"only the aggregator {a['aggregator']} commits the rounds of federation #{a['fedId']}, not {a['caller']}"
    ),
    "RoundOutOfRange": lambda a: (
        f"federation #{a['fedId']} has committed all its {a['rounds']} rounds; round {a['round']} is refused"
        if a["expected"] > a["rounds"]
        else f"federation #{a['fedId']} takes round {a['expected']} of {a['rounds']} next, not round {a['round']}"
    ),
    "JobsPaused": lambda a: f"new jobs on dataset #{a['datasetId']} are paused by its policy controller",
    "GovernorInsufficientProposerVotes": lambda a: (
        f"{a['proposer']} has {a['votes'] / 10**18:g} votes but proposing needs {a['threshold'] / 10**18:g}; "
        "ask members to delegate to you (votes count from one second after delegating)"
    ),
    "GovernorAlreadyCastVote": lambda a: f"{a['voter']} has already voted on this proposal",
    "GovernorUnexpectedProposalState": lambda a: (
        f"the proposal is {_PROPOSAL_STATE[a['current']]}, but this needs it "
        f"{' or '.join(_states(a['expectedStates'], _PROPOSAL_STATE))}"
        + ("; wait for the voting period (`cove chain mine --seconds N` on the local chain)" if a['current'] == 0 else "")
    ),
    "GovernorNonexistentProposal": lambda a: "there is no such proposal; see `cove gov proposals`",
    "GovernorInvalidVoteType": lambda a: "vote for, against or abstain",
    "GovernorNotQueuedProposal": lambda a: "the proposal must be queued first (`cove gov queue`)",
    "TimelockUnexpectedOperationState": lambda a: (
        "the timelock delay has not passed yet (or the proposal was not queued); wait, then execute"
        if int.from_bytes(a['expectedStates'], "big") == 0b100 else "the timelock operation is not in the expected state"
    ),
    "TimelockInsufficientDelay": lambda a: f"the timelock needs a delay of at least {a['minDelay']} seconds",
    "AccessControlUnauthorizedAccount": lambda a: f"{a['account']} lacks the role this call needs",
    "MembershipLengthMismatch": lambda a: "every member needs a voting power",
    "NoMembers": lambda a: "a consortium needs at least one member",
    "ZeroMemberVotes": lambda a: f"member {a['member']} needs a voting power above 0",
    "ERC721NonexistentToken": lambda a: f"there is no dataset #{a['tokenId']}",
}


def _sentence(text: str) -> str:
    """`text` as one sentence: one line, a capital (ASCII only: δ must stay δ), a full stop."""
    text = " ".join(text.split()).rstrip(".")
    if text[:1].isascii():
        text = text[:1].upper() + text[1:]
    return text + "."


def describe_revert(data: bytes | str | None) -> TransactionReverted:
    """The TransactionReverted for raw revert `data` (hex or bytes)."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data else b""
    if not data or len(data) < 4:
        return TransactionReverted(_sentence("the transaction reverted without a reason"))
    selector, payload = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING_SELECTOR:
            (reason,) = decode(["string"], payload)
            return TransactionReverted(_sentence(f"the transaction reverted: {reason}"), "Error", (reason,))
        if selector == _PANIC_SELECTOR:
            (code,) = decode(["uint256"], payload)
            what = _PANICS.get(code, f"panic code {code:#x}")
            return TransactionReverted(_sentence(f"the contract stopped on {what}"), "Panic", (code,))
        spec = error_specs().get(selector)
        if spec is None:
            return TransactionReverted(_sentence(f"the transaction reverted with unknown error 0x{selector.hex()}"))
        decoded = decode(list(spec.input_types), payload)
    except DecodingError:
        return TransactionReverted(_sentence(f"the transaction reverted with malformed error data (selector 0x{selector.hex()})"))
    values = tuple(
        to_checksum_address(v) if t == "address" else v
        for t, v in zip(spec.input_types, decoded, strict=True)
    )
    args = dict(zip(spec.input_names, values, strict=True))
    phrase = _MESSAGES.get(spec.name)
    message = phrase(args) if phrase else f"the transaction reverted with {spec.name}{tuple(values)}"
    return TransactionReverted(_sentence(message), spec.name, tuple(values))
