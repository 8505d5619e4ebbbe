"""A federated model's lineage, checked round by round against the chain.

The buyer fetches every completed part (each runner's signed provenance, checked as any
job's is: signature, hashes, ε against the ledger) and checks that:

- every round the federation promised is committed on-chain;
- each part says it belongs to this federation and trained each round from the model the
  chain committed for the round before (round 1: the initial digest);
- each round's `updatesRoot` is the Merkle root of the parts' update digests for that round
  (checkable when every part completed; a part that failed left no record);
- the model in hand is the last round's committed model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange.federated.arrays import model_digest, updates_root
from exchange.federated.server import read_federation
from exchange.jobs import JobResult, fetch_result, job_info
from exchange.provenance import Check


def round_digests(client: Any, federation_id: int, rounds: int) -> list[tuple[bytes, bytes]]:
    """(model digest, updates root) of rounds 0..rounds as FederatedRounds records them."""
    contract = client.session.contract("FederatedRounds", client.deployment.federated_rounds)
    return [
        tuple(bytes(x) for x in client.session.call(contract.functions.roundDigest(federation_id, r)))  # type: ignore[misc]
        for r in range(rounds + 1)
    ]


def check_lineage(client: Any, federation_id: int, final_model: Sequence[Any] | None = None) -> list[Check]:
    """Every check above, each passed or failed with a sentence."""
    federation = read_federation(client, federation_id)
    chain = round_digests(client, federation_id, federation.rounds)
    checks = [Check(
        name="rounds committed",
        passed=federation.committed == federation.rounds,
        reason=f"{federation.committed} of {federation.rounds} rounds are committed on-chain.",
    )]  # fmt: skip
    parts: dict[int, JobResult] = {}
    for job_id in federation.jobs:
        status = job_info(client, job_id).status
        if status != "completed":
            checks.append(Check(name=f"job #{job_id}", passed=False, reason=f"job #{job_id} is {status}, not completed."))
            continue
        result = fetch_result(client, job_id)
        parts[job_id] = result
        checks.append(Check(
            name=f"job #{job_id} provenance", passed=result.verified,
            reason="; ".join(c.reason for c in result.checks if not c.passed) or "signature, hashes and ε check out.",
        ))  # fmt: skip
        checks.append(_part_check(job_id, result, federation, chain))
    if len(parts) == len(federation.jobs):
        for r in range(1, federation.committed + 1):
            leaves = [_update(parts[j], r) for j in federation.jobs]
            ok = None not in leaves and updates_root(leaves) == chain[r][1]  # type: ignore[arg-type]
            checks.append(Check(name=f"round {r} updates", passed=ok, reason=(
                f"round {r}'s updates root is the Merkle root of the {len(leaves)} parts' update digests." if ok
                else f"round {r}'s on-chain updates root is not the root of the parts' update digests."
            )))  # fmt: skip
    if final_model is not None:
        ok = model_digest(final_model) == chain[federation.rounds][0]
        checks.append(Check(name="final model", passed=ok, reason=(
            "the model in hand is the last round's committed model." if ok
            else "the model in hand does not hash to the last round's committed digest."
        )))  # fmt: skip
    return checks


def _part_check(job_id: int, result: JobResult, federation: Any, chain: list[tuple[bytes, bytes]]) -> Check:
    part = result.provenance.record.federation
    name = f"job #{job_id} rounds"
    if part is None or part.federation_id != federation.federation_id or part.rounds != federation.rounds:
        return Check(name=name, passed=False, reason=f"job #{job_id}'s record is not a part of federation "
                     f"#{federation.federation_id}.")  # fmt: skip
    wrong = [r + 1 for r, digest in enumerate(part.round_models) if bytes.fromhex(digest[2:]) != chain[r][0]]
    if wrong:
        return Check(name=name, passed=False, reason=f"job #{job_id} trained round(s) {wrong} from a model the chain "
                     "did not commit.")  # fmt: skip
    return Check(name=name, passed=True, reason=f"job #{job_id} trained every round from the committed model.")


def _update(result: JobResult, round_number: int) -> bytes | None:
    part = result.provenance.record.federation
    if part is None or len(part.updates) < round_number:
        return None
    return bytes.fromhex(part.updates[round_number - 1][2:])
