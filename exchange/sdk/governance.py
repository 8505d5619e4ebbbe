"""Consortium governance from a notebook: `cove.deploy_consortium(...)`, `cove.consortium()`.

A thin layer over `exchange.governance`: members are named by account (dev2, a keystore
name) or address, proposals by field changes, and listings are DataFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from exchange import governance as gov

if TYPE_CHECKING:
    from exchange.sdk.cove import Cove


class Consortium:
    """One consortium, acting as the account of the `Cove` it came from."""

    def __init__(self, cove: Cove, record: gov.Consortium):
        self.cove = cove
        self.record = record

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def timelock(self) -> str:
        return self.record.timelock

    @property
    def governor(self) -> str:
        """The governor's address: how members on other machines name this consortium."""
        return self.record.governor

    def propose(self, dataset_id: int, description: str, **changes: Any) -> int:
        """Proposes changes of a governed dataset (`budget=8`, `price=5`, `runner=...`, `paused=True`)."""
        client = self.cove.client
        actions = gov.build_actions(client, self.record, dataset_id, {k: _text(v) for k, v in changes.items()})
        return gov.propose(client, self.record, actions, description)

    # A proposal is named by its short number (the `number` column of `proposals()`, the same
    # for every member) or by its full id.

    def vote(self, proposal: int | str, choice: str, reason: str = "") -> None:
        gov.vote(self.cove.client, self.record, proposal, choice, reason)

    def delegate(self, to: str) -> None:
        gov.delegate(self.cove.client, self.record, to)

    def queue(self, proposal: int | str) -> None:
        gov.queue(self.cove.client, self.record, proposal)

    def execute(self, proposal: int | str) -> None:
        gov.execute(self.cove.client, self.record, proposal)

    def proposals(self) -> pd.DataFrame:
        columns = ["number", "id", "state", "for", "against", "abstain", "quorum", "description"]
        rows = [
            {"number": p.number, "id": p.proposal_id, "state": p.state, "for": float(p.votes_for),
             "against": float(p.votes_against), "abstain": float(p.votes_abstain), "quorum": float(p.quorum),
             "description": p.description}
            for p in gov.proposals(self.cove.client, self.record)
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        return f"<Consortium {self.name}: governor {self.record.governor}, timelock {self.timelock}>"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
