"""Consortium governance of dataset policies: OpenZeppelin Governor + ERC20Votes + timelock.

A governed dataset's policy controller is the consortium's timelock, so only an executed
proposal changes its policy, runner or pause state, or hands it back. This module deploys
a consortium, builds proposals from plain field changes (no hand-written calldata), and
follows them through vote, queue and execute. A proposal that would set an invalid policy
is refused when it is proposed, with the policy setter's own sentence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address
from pydantic import BaseModel
from web3.logs import DISCARD

from exchange.catalog import policy_of
from exchange.chain.logs import LogReader
from exchange.chain.session import ChainSession
from exchange.client import CoveClient
from exchange.errors import InputError, PolicyError, TransactionReverted
from exchange.policy import parse_expiry, parse_terms
from exchange.documents import lists_digest, offer_lists
from exchange.units import scaled

ZERO_ADDRESS = "0x" + "00" * 20
PROPOSAL_STATES = ("pending", "active", "canceled", "defeated", "succeeded", "queued", "expired", "executed")
VOTE_CHOICES = {"against": 0, "for": 1, "abstain": 2}

# Policy fields a proposal may set, by the names `--set KEY=VALUE` uses.
POLICY_KEYS = {
    "price": "price", "token": "payment_token", "budget": "budget", "per_job_cap": "per_job_cap",
    "delta": "delta", "max_epochs": "max_epochs", "free_cap": "free_cap", "expiry": "expiry",
    "allowlist": "allowlist", "model_families": "model_families", "compute_only": "compute_only",
}  # fmt: skip
OTHER_KEYS = ("runner", "paused", "controller")


class Consortium(BaseModel):
    """Where one consortium lives on one chain."""

    name: str
    chain_id: int
    token: str
    timelock: str
    governor: str
    block: int


@dataclass(frozen=True)
class Action:
    """One call the timelock will make if the proposal passes."""

    target: str
    calldata: bytes
    summary: str


@dataclass(frozen=True)
class ProposalView:
    number: int  # 1, 2, ...: its place among the governor's proposals (see `proposal_number`)
    proposal_id: int
    state: str
    proposer: str
    description: str
    votes_for: Decimal
    votes_against: Decimal
    votes_abstain: Decimal
    quorum: Decimal
    vote_start: int
    vote_end: int
    eta: int
    actions: list[tuple[str, str]]  # (target, calldata hex)


# ---------------------------------------------------------------------------- deploy


class ConsortiumBook:
    """Consortia known to this Cove home, per chain (a small JSON file)."""

    def __init__(self, directory: Path):
        self.file = directory / "consortia.json"

    def _load(self) -> dict[str, Any]:
        return json.loads(self.file.read_text()) if self.file.exists() else {}

    def add(self, consortium: Consortium) -> None:
        entries = self._load()
        entries[f"{consortium.chain_id}:{consortium.name}"] = consortium.model_dump()
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True))
        os.replace(tmp, self.file)

    def get(self, chain_id: int, name: str | None) -> Consortium:
        known = {k.split(":", 1)[1]: Consortium(**v) for k, v in self._load().items() if k.startswith(f"{chain_id}:")}
        if name is None:
            if len(known) == 1:
                return next(iter(known.values()))
            if not known:
                raise InputError(
                    "This home knows no consortium on this chain: pass --consortium 0x… with its governor's "
                    "address, or run `cove gov deploy`."
                )
            raise InputError(f"Several consortia exist ({', '.join(sorted(known))}); pass --consortium NAME.")
        if name not in known:
            raise InputError(
                f"This home knows no consortium named {name!r} on this chain; pass its governor's address instead."
            )
        return known[name]


def consortium_at(client: CoveClient, governor: str) -> Consortium:
    """The consortium whose governor is at `governor`, read from the chain: what a voter on
    another machine needs, knowing only that address."""
    address = _address(governor, "governor")
    contract = client.session.contract("CoveGovernor", address)
    try:
        name = str(client.session.call(contract.functions.name()))
        token = to_checksum_address(client.session.call(contract.functions.token()))
        timelock = to_checksum_address(client.session.call(contract.functions.timelock()))
    except (TransactionReverted, ValueError):
        raise InputError(f"{address} is not a Cove consortium's governor; check the address.") from None
    return Consortium(name=name, chain_id=client.session.chain_id, token=token, timelock=timelock,
                      governor=address, block=client.deployment.block)  # fmt: skip


def find_consortium(client: CoveClient, book: ConsortiumBook, name_or_governor: str | None) -> Consortium:
    """A consortium by the name this home knows it by, or by its governor's address."""
    if name_or_governor is not None and is_address(name_or_governor.strip()):
        return consortium_at(client, name_or_governor)
    return book.get(client.session.chain_id, name_or_governor)


def parse_members(entries: list[str]) -> dict[str, int]:
    """`ADDRESS=VOTES` entries → {checksummed address: votes in token units (18 decimals)}."""
    members: dict[str, int] = {}
    for entry in entries:
        address, _, votes = entry.partition("=")
        if not is_address(address.strip()):
            raise InputError(f"Member {address.strip()!r} is not an address; use ADDRESS=VOTES.")
        try:
            units = scaled(votes or "1", 10**18, "voting power")
        except ValueError as error:
            raise InputError(f"The {error} of {address.strip()}.") from None
        if units <= 0:
            raise InputError(f"The voting power of {address.strip()} must be greater than 0.")
        members[to_checksum_address(address.strip())] = members.get(to_checksum_address(address.strip()), 0) + units
    if not members:
        raise InputError("A consortium needs at least one member: pass --member ADDRESS=VOTES.")
    return members


def deploy_consortium(
    session: ChainSession,
    book: ConsortiumBook,
    *,
    name: str,
    members: dict[str, int],
    voting_delay: int = 60,
    voting_period: int = 3600,
    min_delay: int = 600,
    quorum_percent: int = 30,
    threshold: int = 1,
) -> Consortium:
    """Membership token, timelock and governor; the timelock ends up administered by votes alone."""
    if not 0 < quorum_percent <= 100:
        raise InputError("The quorum must be a percentage between 1 and 100.")
    if voting_period <= 0 or voting_delay < 0 or min_delay < 0:
        raise InputError("Voting period must be positive, and the delays not negative.")
    token, receipt = session.deploy("CoveMembership", f"{name} membership", "MEMBER", list(members), list(members.values()))
    deployer = session.sender
    timelock, _ = session.deploy("CoveTimelock", min_delay, [], [ZERO_ADDRESS], deployer)
    governor, _ = session.deploy(
        "CoveGovernor", name, token, timelock, voting_delay, voting_period, threshold * 10**18, quorum_percent
    )
    lock = session.contract("CoveTimelock", timelock)
    for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        session.transact(lock.functions.grantRole(session.call(getattr(lock.functions, role)()), governor))
    session.transact(lock.functions.renounceRole(session.call(lock.functions.DEFAULT_ADMIN_ROLE()), deployer))
    consortium = Consortium(
        name=name, chain_id=session.chain_id, token=token, timelock=timelock, governor=governor,
        block=int(receipt["blockNumber"]),
    )  # fmt: skip
    book.add(consortium)
    return consortium


# ---------------------------------------------------------------------------- proposals


def build_actions(client: CoveClient, consortium: Consortium, dataset_id: int, changes: dict[str, str]) -> list[Action]:
    """The calls for `--set KEY=VALUE` changes of one governed dataset, validated now."""
    unknown = sorted(set(changes) - set(POLICY_KEYS) - set(OTHER_KEYS))
    if unknown:
        known = ", ".join([*POLICY_KEYS, *OTHER_KEYS])
        raise InputError(f"Unknown field(s) {', '.join(unknown)}; a proposal can set {known}.")
    controller = client.session.call(client.cove.functions.policyController(dataset_id))
    if controller.lower() != consortium.timelock.lower():
        raise InputError(
            f"Dataset #{dataset_id} is not governed by {consortium.name} (its controller is {controller}); "
            "only the dataset's controller can change it."
        )
    cove = client.cove
    actions: list[Action] = []
    policy_changes = {POLICY_KEYS[k]: _policy_value(k, v) for k, v in changes.items() if k in POLICY_KEYS}
    if policy_changes:
        current, _, _ = policy_of(client, dataset_id)
        fields = current.model_dump() | policy_changes
        _check_payment_token(client, fields)
        terms = parse_terms(**fields)
        struct = terms.to_onchain(client.token_decimals(terms.payment_token))
        rows = client.session.call(cove.functions.datasetOf(dataset_id))[3]
        client.session.call(cove.functions.checkPolicy(struct, rows))  # the policy setter's own refusal, now
        offer_lists(client, client.session.call(cove.functions.datasetOf(dataset_id))[5], terms)
        digest = lists_digest(terms)
        calldata = cove.encode_abi("setPolicy", [dataset_id, struct, digest])
        summary = ", ".join(f"{k}={v}" for k, v in changes.items() if k in POLICY_KEYS)
        actions.append(Action(cove.address, bytes.fromhex(calldata[2:]), f"set policy of #{dataset_id}: {summary}"))
    if "runner" in changes:
        runner = _address(changes["runner"], "runner")
        actions.append(Action(cove.address, _encode(cove, "setRunner", dataset_id, runner), f"runner of #{dataset_id} → {runner}"))
    if "paused" in changes:
        paused = _boolean(changes["paused"], "paused")
        actions.append(Action(cove.address, _encode(cove, "setJobsPaused", dataset_id, paused),
                              f"{'pause' if paused else 'unpause'} new jobs on #{dataset_id}"))  # fmt: skip
    if "controller" in changes:
        target = ZERO_ADDRESS if changes["controller"] in ("owner", "0", "") else _address(changes["controller"], "controller")
        actions.append(Action(cove.address, _encode(cove, "setPolicyController", dataset_id, target),
                              f"hand #{dataset_id} to {'its owner' if target == ZERO_ADDRESS else target}"))  # fmt: skip
    if not actions:
        raise InputError("The proposal changes nothing: pass at least one --set KEY=VALUE.")
    return actions


def _check_payment_token(client: CoveClient, fields: dict[str, Any]) -> None:
    """The policy setter's refusal of a price without a token, told in `--set` terms."""
    try:
        priced = Decimal(str(fields.get("price") or 0).strip()) != 0
    except ArithmeticError:
        return  # not a number: parse_terms says so
    if priced and not fields.get("payment_token"):
        known = client.deployment.payment_token
        example = f" (this hub's payment token is {known})" if known else ""
        raise PolicyError(
            f"A priced dataset needs a payment token: add --set token=0x… with the address of the ERC-20 token "
            f"buyers pay in{example}."
        )


def propose(client: CoveClient, consortium: Consortium, actions: list[Action], description: str) -> int:
    if not description.strip():
        raise InputError("A proposal needs a --description saying what it does and why.")
    governor = _governor(client, consortium)
    function = governor.functions.propose(
        [a.target for a in actions], [0] * len(actions), [a.calldata for a in actions], description
    )
    client.session.simulate(function)
    receipt = client.session.transact(function)
    event = governor.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return int(event["proposalId"])


def _created(client: CoveClient, consortium: Consortium) -> list[Any]:
    """The governor's ProposalCreated events, in the order the chain holds them."""
    governor = _governor(client, consortium)
    head = int(client.session.w3.eth.block_number)
    logs = LogReader(client.session.w3, client.log_range).read_events(governor.events.ProposalCreated(), consortium.block, head)
    return sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))


def proposals(client: CoveClient, consortium: Consortium) -> list[ProposalView]:
    governor = _governor(client, consortium)
    views = []
    for number, log in enumerate(_created(client, consortium), start=1):
        args = log["args"]
        pid = int(args["proposalId"])
        against, for_, abstain = client.session.call(governor.functions.proposalVotes(pid))
        snapshot = int(client.session.call(governor.functions.proposalSnapshot(pid)))
        now = int(client.session.w3.eth.get_block("latest")["timestamp"])
        quorum = client.session.call(governor.functions.quorum(min(snapshot, now - 1)))
        views.append(ProposalView(
            number=number,
            proposal_id=pid,
            state=PROPOSAL_STATES[int(client.session.call(governor.functions.state(pid)))],
            proposer=args["proposer"],
            description=args["description"],
            votes_for=Decimal(for_) / 10**18, votes_against=Decimal(against) / 10**18,
            votes_abstain=Decimal(abstain) / 10**18, quorum=Decimal(quorum) / 10**18,
            vote_start=int(args["voteStart"]), vote_end=int(args["voteEnd"]),
            eta=int(client.session.call(governor.functions.proposalEta(pid))),
            actions=[(t, "0x" + bytes(c).hex()) for t, c in zip(args["targets"], args["calldatas"], strict=True)],
        ))  # fmt: skip
    return views


# A proposal id is a keccak hash (about 77 decimal digits); a proposal's number is its place
# among its governor's proposals. Anything this long is an id, anything shorter a number.
_ID_MIN_DIGITS = 20


@dataclass(frozen=True)
class ProposalRef:
    """One proposal of a consortium, by both of its names."""

    number: int
    proposal_id: int
    log: Any  # its ProposalCreated event


def find_proposal(client: CoveClient, consortium: Consortium, ref: int | str) -> ProposalRef:
    """The proposal `ref` names: its short number (`3` or `#3`, the same for every member on
    every machine, since it is read off the chain) or its full id (decimal or 0x hex)."""
    proposal_id, number = _parse_ref(ref)
    created = _created(client, consortium)
    for position, log in enumerate(created, start=1):
        if position == number or int(log["args"]["proposalId"]) == proposal_id:
            return ProposalRef(position, int(log["args"]["proposalId"]), log)
    if number is not None:
        has = f"it has proposals #1 to #{len(created)}" if created else "it has no proposals yet"
        raise InputError(f"There is no proposal #{number} in {consortium.name} ({has}); see `cove gov proposals`.")
    raise InputError(f"There is no proposal {proposal_id} in {consortium.name}; see `cove gov proposals`.")


def _parse_ref(ref: int | str) -> tuple[int | None, int | None]:
    """(full id, None) or (None, number) from what a user typed."""
    if isinstance(ref, bool):
        raise InputError(f"{ref!r} is not a proposal number or id; see `cove gov proposals`.")
    if isinstance(ref, int):
        return (ref, None) if ref >= 10 ** (_ID_MIN_DIGITS - 1) else (None, ref)
    text = ref.strip().removeprefix("#")
    if text.lower().startswith("0x"):
        try:
            return int(text, 16), None
        except ValueError:
            pass
    elif text.isdigit() and text.isascii():
        return (int(text), None) if len(text) >= _ID_MIN_DIGITS else (None, int(text))
    raise InputError(
        f"{ref!r} is not a proposal number or id; use the number in the # column of `cove gov proposals`."
    )


def proposal_number(client: CoveClient, consortium: Consortium, proposal_id: int) -> int:
    """The short number of the proposal with id `proposal_id`."""
    return find_proposal(client, consortium, proposal_id).number


def vote(client: CoveClient, consortium: Consortium, proposal: int | str, choice: str, reason: str = "") -> ProposalRef:
    """Votes on `proposal` (its number or full id, see `find_proposal`)."""
    if choice not in VOTE_CHOICES:
        raise InputError(f"Vote for, against or abstain, not {choice!r}.")
    found = find_proposal(client, consortium, proposal)
    governor = _governor(client, consortium)
    client.session.transact(governor.functions.castVoteWithReason(found.proposal_id, VOTE_CHOICES[choice], reason))
    return found


def delegate(client: CoveClient, consortium: Consortium, to: str) -> None:
    token = client.session.contract("CoveMembership", consortium.token)
    client.session.transact(token.functions.delegate(_address(to, "delegate")))


def queue(client: CoveClient, consortium: Consortium, proposal: int | str) -> ProposalRef:
    return _lifecycle(client, consortium, proposal, "queue")


def execute(client: CoveClient, consortium: Consortium, proposal: int | str) -> ProposalRef:
    return _lifecycle(client, consortium, proposal, "execute")


def _lifecycle(client: CoveClient, consortium: Consortium, proposal: int | str, step: str) -> ProposalRef:
    governor = _governor(client, consortium)
    found = find_proposal(client, consortium, proposal)
    args = found.log["args"]
    targets = list(args["targets"])
    calldatas = [bytes(c) for c in args["calldatas"]]
    description_hash = keccak(text=args["description"])
    function = getattr(governor.functions, step)(targets, [0] * len(targets), calldatas, description_hash)
    client.session.transact(function)
    return found


# ---------------------------------------------------------------------------- helpers


def _governor(client: CoveClient, consortium: Consortium):  # type: ignore[no-untyped-def]
    return client.session.contract("CoveGovernor", consortium.governor)


def _encode(contract: Any, name: str, *args: Any) -> bytes:
    return bytes.fromhex(contract.encode_abi(name, list(args))[2:])



def _policy_value(key: str, value: str) -> Any:
    if key in ("allowlist", "model_families"):
        return [v.strip() for v in value.split(",") if v.strip()]
    if key == "compute_only":
        return _boolean(value, key)
    if key == "expiry":
        return parse_expiry(value)
    if key in ("max_epochs", "free_cap"):
        try:
            return int(value)
        except ValueError:
            raise InputError(f"{key} must be a whole number, not {value!r}.") from None
    return value


def _address(value: str, what: str) -> str:
    if not is_address(value.strip()):
        raise InputError(f"The {what} {value!r} is not an address.")
    return to_checksum_address(value.strip())


def _boolean(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise InputError(f"{what} must be true or false, not {value!r}.")
