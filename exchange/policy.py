"""Access policies in human units, and their exact on-chain form.

`PolicyTerms` is what an owner writes (price in tokens, ε and δ as decimals, an allowlist
of addresses, model-family names). Its checks mirror `AccessPolicies.checkPolicy` and give
the same messages, so a bad policy is refused before any transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exchange.errors import PolicyError
from exchange.merkle import MerkleTree, address_leaf, bytes32_leaf
from exchange.ml.families import MODEL_FAMILIES
from exchange.units import DELTA_SCALE, EPSILON_SCALE, epsilon_from_fixed, from_fixed, scaled, to_decimal
from exchange.validation_messages import sentence

ZERO32 = b"\x00" * 32
UINT96_MAX = 2**96 - 1
UINT32_MAX = 2**32 - 1
_LABELS = {"price": "price", "budget": "privacy budget", "per_job_cap": "per-job privacy cap", "delta": "δ"}


def model_family_hash(family: str) -> bytes:
    """The on-chain identifier of a model family name, e.g. "mlp"."""
    return keccak(text=family.strip().lower())


class PolicyTerms(BaseModel):
    """A dataset's access policy, in the units people use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Decimal = Field(default=Decimal(0), description="price of one credit, in payment tokens")
    payment_token: str | None = Field(default=None, description="ERC-20 address; none for free datasets")
    budget: Decimal = Field(description="total privacy budget ε over all jobs")
    per_job_cap: Decimal = Field(description="largest ε one job may spend")
    delta: Decimal = Field(default=Decimal("1e-5"), description="δ of every (ε, δ) guarantee")
    max_epochs: int = Field(default=20, description="most epochs a job may train")
    free_cap: int = Field(default=0, description="free credits per address (free datasets)")
    compute_only: bool = True
    expiry: datetime | None = None
    allowlist: tuple[str, ...] = ()
    model_families: tuple[str, ...] = ()

    @field_validator("price", "budget", "per_job_cap", "delta", mode="before")
    @classmethod
    def _number(cls, value: Any, info: Any) -> Decimal:
        try:
            return to_decimal(value, _LABELS[info.field_name])
        except ValueError as error:
            raise PolicyError(f"The {error}.") from None

    @field_validator("payment_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not is_address(value):
            raise PolicyError(f"The payment token {value!r} is not a valid address.")
        return to_checksum_address(value)

    @field_validator("allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> tuple[str, ...]:
        addresses = []
        for position, entry in enumerate(_as_list(value), start=1):
            text = str(entry).strip()
            if not is_address(text):
                raise PolicyError(
                    f"Allowlist entry {position} ({text!r}) is not a valid address; "
                    "use 0x followed by 40 hexadecimal characters."
                )
            addresses.append(to_checksum_address(text))
        return tuple(sorted(set(addresses)))

    @field_validator("model_families", mode="before")
    @classmethod
    def _families(cls, value: Any) -> tuple[str, ...]:
        families = {str(f).strip().lower() for f in _as_list(value)}
        if "" in families:
            raise PolicyError("A model family name must not be empty.")
        # Credits for a family no runner can train could never be used. Only written policies
        # pass here: `from_onchain` reads an older policy's unknown names without this check.
        unknown = sorted(families - set(MODEL_FAMILIES))
        if unknown:
            raise PolicyError(
                f"The runner cannot train the model famil{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(f) for f in unknown)}; the known model families are: {', '.join(MODEL_FAMILIES)}."
            )
        return tuple(sorted(families))

    @field_validator("expiry")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PolicyTerms:
        # Same order and wording as AccessPolicies.checkPolicy.
        if self.price < 0:
            raise PolicyError(f"The price must not be negative (got {self.price}).")
        if self.budget <= 0:
            raise PolicyError("The privacy budget must be greater than 0.")
        if self.per_job_cap <= 0 or self.per_job_cap > self.budget:
            raise PolicyError(
                f"The per-job privacy cap (ε {self.per_job_cap}) must be positive and at most "
                f"the budget (ε {self.budget})."
            )
        if not 0 < self.delta < 1:
            raise PolicyError(f"δ must lie strictly between 0 and 1, not {self.delta}.")
        if self.max_epochs < 1:
            raise PolicyError("The policy must allow at least one epoch.")
        if self.price == 0 and self.free_cap < 1:
            raise PolicyError("A free dataset needs a per-address credit cap above 0 (--free-cap).")
        if self.price > 0 and self.payment_token is None:
            raise PolicyError("A priced dataset needs a payment token: give the address of the ERC-20 token buyers pay in.")
        for name, value, limit in (("max epochs", self.max_epochs, 2**16 - 1), ("free cap", self.free_cap, 2**16 - 1)):
            if not 0 <= value <= limit:
                raise PolicyError(f"The {name} must be between 0 and {limit}.")
        if self.budget > epsilon_from_fixed(UINT32_MAX):  # compared, not multiplied: no overflow
            raise PolicyError(f"The privacy budget must be at most ε {epsilon_from_fixed(UINT32_MAX)}.")
        return self

    @property
    def is_free(self) -> bool:
        return self.price == 0

    def check_expiry(self, now: int) -> None:
        """PolicyError if the expiry is not after `now`, the chain's clock: the chain refuses such
        a policy (ExpiryInPast), whole, so an expiry kept from an older version counts too."""
        if self.expiry is not None and int(self.expiry.timestamp()) <= now:
            raise PolicyError(f"The expiry {self.expiry:%Y-%m-%d %H:%M:%S} UTC is already past; choose a later one.")

    def lists_document(self) -> dict[str, list[str]] | None:
        """The public lists behind the Merkle roots, or None when both are empty."""
        if not self.allowlist and not self.model_families:
            return None
        return {"allowlist": list(self.allowlist), "model_families": list(self.model_families)}

    def to_onchain(self, token_decimals: int) -> tuple[Any, ...]:
        """The `Policy` struct as a tuple for the contract, in fixed point."""
        try:
            price = scaled(self.price, 10**token_decimals, "price")
            budget = scaled(self.budget, EPSILON_SCALE, "privacy budget")
            cap = scaled(self.per_job_cap, EPSILON_SCALE, "per-job privacy cap")
            delta = scaled(self.delta, DELTA_SCALE, "δ")
        except ValueError as error:
            raise PolicyError(f"The {error}.") from None
        if price > UINT96_MAX:
            raise PolicyError("The price is too large for the chain to store.")
        expiry = int(self.expiry.timestamp()) if self.expiry else 0
        allow_root = MerkleTree([address_leaf(a) for a in self.allowlist]).root if self.allowlist else ZERO32
        family_root = (
            MerkleTree([bytes32_leaf(model_family_hash(f)) for f in self.model_families]).root
            if self.model_families
            else ZERO32
        )
        token = self.payment_token or "0x" + "00" * 20
        return (token, price, expiry, budget, cap, delta, self.max_epochs, self.free_cap,
                self.compute_only, allow_root, family_root)  # fmt: skip

    @classmethod
    def from_onchain(
        cls, struct: tuple[Any, ...], token_decimals: int, lists: dict[str, list[str]] | None
    ) -> PolicyTerms:
        """Rebuilds the terms from the contract's struct and the published lists document."""
        token, price, expiry, budget, cap, delta, max_epochs, free_cap, compute_only, _, _ = struct
        lists = lists or {}
        return cls.model_construct(
            price=from_fixed(price, 10**token_decimals),
            payment_token=None if int(token, 16) == 0 else to_checksum_address(token),
            budget=epsilon_from_fixed(budget),
            per_job_cap=epsilon_from_fixed(cap),
            delta=Decimal(delta) / DELTA_SCALE,
            max_epochs=max_epochs,
            free_cap=free_cap,
            compute_only=compute_only,
            expiry=_expiry_datetime(expiry),
            allowlist=tuple(lists.get("allowlist", ())),
            model_families=tuple(lists.get("model_families", ())),
        )


def parse_expiry(text: str) -> datetime | None:
    if text.strip().lower() in ("never", "none", ""):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PolicyError(f"The expiry {text!r} is not a date; use ISO form like 2027-01-31 or 2027-01-31T12:00.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _expiry_datetime(timestamp: int) -> datetime | None:
    """The expiry as a datetime; 0, or a time past what datetime holds (year 9999), is never."""
    try:
        return datetime.fromtimestamp(timestamp, UTC) if timestamp else None
    except (OverflowError, ValueError, OSError):
        return None


def parse_terms(**fields: Any) -> PolicyTerms:
    """PolicyTerms from loose input (CLI strings), PolicyError on any invalid field."""
    try:
        return PolicyTerms(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, PolicyError):
            raise cause from None
        raise PolicyError(sentence(error, "The policy")) from None


def _as_list(value: Any) -> list[Any]:
    """A list of entries; one string is one entry (never its characters)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
