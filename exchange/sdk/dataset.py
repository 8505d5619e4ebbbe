"""`Dataset`: one published dataset as seen by one account (browse, buy, try, train)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from exchange.catalog import DatasetView, dataset_view, policy_of
from exchange.datasets import DatasetMetadata, generate_mock
from exchange.datasets.schema import DatasetSchema
from exchange.errors import InputError
from exchange.market import Purchase, buy_credits
from exchange.ml.spec import ModelSpec
from exchange.policy import PolicyTerms, parse_terms
from exchange.sdk import display, ledger
from exchange.sdk.spec import Spec, check_spec, spec_of
from exchange.units import delta_text, number_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from exchange.sdk.cove import Cove
    from exchange.sdk.job import Job


class Policy:
    """A dataset's current access policy (`PolicyTerms`' fields, plus its version)."""

    def __init__(self, terms: PolicyTerms, version: int, symbol: str, dataset_id: int):
        self.terms = terms
        self.version = version
        self.symbol = symbol
        self.dataset_id = dataset_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "terms":
            raise AttributeError(name)
        return getattr(self.terms, name)

    def price_text(self) -> str:
        t = self.terms
        return f"free, {t.free_cap} credit(s) per address" if t.is_free else f"{number_text(t.price)} {self.symbol} per credit"

    def summary(self) -> str:
        """One line: budget, per-job cap, δ, epochs, who may buy, which models."""
        t = self.terms
        parts = [
            f"budget ε {number_text(t.budget)}",
            f"at most ε {number_text(t.per_job_cap)} per job",
            f"δ {delta_text(t.delta)}",
            f"≤ {t.max_epochs} epochs",
            f"allowlist of {len(t.allowlist)}" if t.allowlist else "open to everyone",
        ]
        if t.model_families:
            parts.append("models: " + ", ".join(t.model_families))
        if t.expiry:
            parts.append(f"sells until {t.expiry:%Y-%m-%d %H:%M} UTC")
        return ", ".join(parts)

    def pairs(self) -> list[tuple[str, Any]]:
        t = self.terms
        return [
            ("version", self.version),
            ("price", self.price_text()),
            ("privacy budget ε", number_text(t.budget)),
            ("per-job cap ε", number_text(t.per_job_cap)),
            ("δ", delta_text(t.delta)),
            ("max epochs", t.max_epochs),
            ("access", "compute only" if t.compute_only else "compute and download"),
            ("expires", t.expiry.isoformat() if t.expiry else "never"),
            ("allowlist", ", ".join(t.allowlist) if t.allowlist else "open to everyone"),
            ("model families", ", ".join(t.model_families) if t.model_families else "any the runner supports"),
        ]

    def _repr_html_(self) -> str:
        return display.fields(self.pairs(), caption=f"Policy of dataset #{self.dataset_id}")

    def __repr__(self) -> str:
        return display.text_fields(self.pairs(), f"Policy of dataset #{self.dataset_id}")


class Dataset:
    """One published dataset, seen by the account of the Cove it came from.

    Static facts (name, rows, schema, mock) are read once; the policy, the ε spent and
    your credits are read from the chain each time you ask.
    """

    def __init__(self, cove: Cove, dataset_id: int, view: DatasetView | None = None):
        self._cove = cove
        self.id = int(dataset_id)
        self._view = view or dataset_view(cove.client, self.id)
        self.published: Any = None  # the PublishResult, when this Cove published it

    # ------------------------------------------------------------------ static facts

    @property
    def cove(self) -> Cove:
        return self._cove

    @property
    def metadata(self) -> DatasetMetadata:
        """The public metadata document (name, description, schema, rows, commitment, mock)."""
        return self._view.metadata

    @property
    def name(self) -> str:
        return self._view.metadata.name if self._view.metadata else f"dataset #{self.id}"

    @property
    def description(self) -> str:
        return self._view.metadata.description if self._view.metadata else ""

    @property
    def rows(self) -> int:
        return self._view.rows

    @property
    def owner(self) -> str:
        return self._view.owner

    @property
    def runner(self) -> str:
        return self._view.runner

    @property
    def datatoken(self) -> str:
        return self._view.datatoken

    @property
    def schema_(self) -> DatasetSchema:
        """The public schema as Cove's own model (what specs are checked against)."""
        return self.metadata.schema_

    @property
    def schema(self) -> pd.DataFrame:
        """The public schema: column, kind, nullable, range (numbers, dates), categories."""
        columns = self.schema_.columns
        return pd.DataFrame({
            "column": [c.name for c in columns],
            "kind": [c.kind for c in columns],
            "nullable": [c.nullable for c in columns],
            "range": pd.Series([None if c.minimum is None else f"{c.minimum} .. {c.maximum}" for c in columns],
                               dtype=object),
            "categories": pd.Series([list(c.categories) if c.categories else None for c in columns], dtype=object),
        })  # fmt: skip

    @property
    def columns(self) -> list[str]:
        return self.schema_.names

    def mock(self, rows: int | None = None, seed: int = 0) -> pd.DataFrame:
        """The published mock sample, generated from the schema alone (no private row).

        With `rows`, a fresh sample of that size drawn from the schema the same way.
        """
        if rows is None:
            return self.metadata.mock_frame()
        return generate_mock(self.schema_, rows=rows, seed=seed)

    def refresh(self) -> Dataset:
        """Re-reads the on-chain record (owner, runner, policy version)."""
        self._view = dataset_view(self._cove.client, self.id)
        return self

    # ------------------------------------------------------------------ live state

    @property
    def policy(self) -> Policy:
        client = self._cove.client
        terms, version, _ = policy_of(client, self.id)
        return Policy(terms, version, client.token_symbol(terms.payment_token), self.id)

    @property
    def price(self) -> float:
        """The price of one credit in the payment token (0 for a free dataset)."""
        terms, _, _ = policy_of(self._cove.client, self.id)
        return float(terms.price)

    @property
    def currency(self) -> str:
        terms, _, _ = policy_of(self._cove.client, self.id)
        return "free" if terms.is_free else self._cove.client.token_symbol(terms.payment_token)

    @property
    def budget(self) -> float:
        """The total privacy budget ε."""
        terms, _, _ = policy_of(self._cove.client, self.id)
        return float(terms.budget)

    @property
    def epsilon_spent(self) -> float:
        """The ε composed on the chain's ledger so far (charged and pending jobs)."""
        return ledger.composed_epsilon(self._cove.client, self.id)

    @property
    def budget_remaining(self) -> float:
        """ε left: the budget minus the ε composed on-chain (never below 0)."""
        terms, _, _ = policy_of(self._cove.client, self.id)
        spent = Decimal(int(self._cove.client.session.call(self._cove.client.jobs.functions.composedEpsilon(self.id))))
        return float(max(Decimal(0), terms.budget - spent / 10**6))

    @property
    def credits(self) -> int:
        """Job credits of this dataset held by this Cove's account."""
        return ledger.credits_of(self._cove.client, self.datatoken, self._cove.address)

    # ------------------------------------------------------------------ buying and training

    def buy(self, n: int = 1) -> Purchase:
        """Buys `n` job credits at the policy's price (free datasets: up to the per-address cap)."""
        return buy_credits(self._cove.client, self.id, int(n))

    def spec_mlp(self, features: Any = None, target: str | None = None, **options: Any) -> ModelSpec:
        """`Spec.mlp(features, target, ..., dataset=self)`: an MLP spec checked against this dataset."""
        if target is None:
            raise InputError(f"Name the target column; dataset #{self.id} has: {', '.join(self.columns)}.")
        return Spec.mlp(features, target, dataset=self, **options)

    def check(self, spec: Any) -> ModelSpec:
        """The spec, checked against the schema and the policy (SpecError with the runner's sentence)."""
        spec = spec_of(spec)
        check_spec(spec, self)
        return spec

    def try_spec(self, spec: Any, *, epochs: int = 3, rows: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Trains the spec a few epochs on the MOCK sample, locally, without DP or the chain.

        Checks that it runs end to end: {"ran": True, "loss_first", "loss_last", "rows", ...}.
        `rows` draws a larger schema-only mock sample than the published one.
        """
        from exchange.sdk.tryout import try_spec

        spec = spec_of(spec)
        return try_spec(spec, self.schema_, self.mock(rows, seed) if rows else self.mock(), epochs=epochs, seed=seed)

    def cost(self, spec: Any) -> dict[str, Any]:
        """What training `spec` would cost, priced as the chain will charge it (nothing is sent).

        {"epsilon": the job's ε, "composed_epsilon": the dataset's ε after it,
        "budget_remaining_after", "noise_multiplier", "sample_rate", "steps"}, and the same two
        figures from a tight accountant ("tight_epsilon", "tight_composed_epsilon", with
        "tight_accountant" and "tight_note"; None where it gives none): information only, the
        ledger charges the RDP figures. PrivacyError or SpecError when the request would be refused.
        """
        from exchange.jobs import price_job
        from exchange.ml.tight_accounting import NOT_ENFORCED, tight_or_reason

        spec = self.check(spec)
        quote = price_job(self._cove.client, self.id, spec)
        params = quote.params
        job = (params.noise_multiplier, params.sample_rate, params.steps)
        alone, why = tight_or_reason([job], params.delta)
        composed, _ = tight_or_reason([*ledger.charged_mechanisms(self._cove.client, self.id), job], params.delta)
        return {
            "epsilon": quote.epsilon / 10**6,
            "composed_epsilon": quote.composed / 10**6,
            "budget_remaining_after": max(0.0, self.budget - quote.composed / 10**6),
            "noise_multiplier": params.noise_multiplier,
            "sample_rate": params.sample_rate,
            "steps": params.steps,
            "tight_epsilon": alone.epsilon if alone else None,
            "tight_composed_epsilon": composed.epsilon if composed else None,
            "tight_accountant": alone.source if alone else None,
            "tight_note": NOT_ENFORCED if alone else why,
        }

    def train(self, spec: Any, *, deadline_hours: float = 24) -> Job:
        """Asks the dataset's runner to train `spec`: spends one credit and reserves its ε.

        Refused before any transaction (CoveError with one sentence) when the spec does not
        fit, the job's ε is above the per-job cap or the budget left, or you hold no credit.
        """
        from exchange.jobs import request_job
        from exchange.sdk.job import Job

        spec = self.check(spec)
        if self.credits < 1:
            raise InputError(
                f"{self._cove.address} holds no credit of dataset #{self.id}; buy one first with "
                f"dataset.buy() (price: {self.policy.price_text()})."
            )
        ticket = request_job(self._cove.client, self.id, spec, deadline_seconds=int(deadline_hours * 3600))
        return Job(self._cove, ticket.job_id, ticket=ticket)

    def jobs(self, everyone: bool = True) -> pd.DataFrame:
        """The jobs on this dataset (everyone's; `everyone=False`: only this account's)."""
        client = self._cove.client
        rows = ledger.indexed_jobs(client, dataset_id=self.id)
        if not everyone:
            rows = [row for row in rows if row["consumer"] == self._cove.address.lower()]
        return ledger.jobs_frame(client, rows, {self.id: float(self.policy.delta)})

    def budget_history(self) -> pd.DataFrame:
        """The charged jobs in order: job, status, epsilon (its own), composed_epsilon (after it)."""
        return ledger.budget_history(self._cove.client, self.id, float(self.policy.delta))

    def plot_budget(self, ax: Axes | None = None) -> Axes:
        """Composed ε after each charged job (a step line) against the total budget."""
        from exchange.sdk import plots

        return plots.budget(self.budget_history(), self.budget, ax, title=f"Privacy budget of #{self.id} {self.name}")

    # ------------------------------------------------------------------ the owner's side

    def set_policy(self, **changes: Any) -> Policy:
        """Changes policy fields (budget=, per_job_cap=, price=, ...); only the policy controller may."""
        from exchange.policy_update import set_policy

        client = self._cove.client
        current, _, _ = policy_of(client, self.id)
        if "price" in changes and current.payment_token is None and "payment_token" not in changes:
            changes["payment_token"] = client.deployment.payment_token
        set_policy(client, self.id, parse_terms(**(current.model_dump() | changes)))
        return self.policy

    # ------------------------------------------------------------------ display

    def _pairs(self) -> list[tuple[str, Any]]:
        policy = self.policy
        spent = self.epsilon_spent
        remaining = max(0.0, float(policy.budget) - spent)
        meta = self._view.metadata
        # The caption names the dataset (`_title`); the rows do not repeat it.
        return [
            ("description", meta.description if meta and meta.description else None),
            ("rows", self.rows),
            ("columns", ", ".join(f"{c.name} ({c.kind})" for c in meta.schema_.columns) if meta else None),
            ("price", policy.price_text()),
            ("policy", policy.summary()),
            ("ε spent / remaining", f"{spent:g} / {remaining:g} of {number_text(policy.budget)}"),
            ("my credits", self.credits),
            ("owner", self.owner),
        ]

    def _title(self) -> str:
        """"Dataset #1 Patients", or "Dataset #1" while its metadata is out of reach."""
        meta = self._view.metadata
        return f"Dataset #{self.id} {meta.name}" if meta else f"Dataset #{self.id}"

    def _repr_html_(self) -> str:
        return display.fields(self._pairs(), caption=self._title())

    def __repr__(self) -> str:
        return f"<Dataset #{self.id} {self.name!r}: {self.rows} rows>"
