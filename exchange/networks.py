"""Named networks: an RPC URL, a hub address and content gateways under one short name.

`cove network add sepolia --rpc URL --hub 0x…` writes `networks.json` in the Cove home;
`--network sepolia` (or $COVE_NETWORK) then stands for all of it. Explicit options win
over the network's values, and the file holds nothing the chain does not confirm: the hub
is re-checked on-chain every time it is used.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange.chain.deployment import checked_hub_address
from exchange.errors import InputError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def checked_http_url(text: str, what: str) -> str:
    """`text` as an http(s) base URL without credentials, query or fragment (trailing / dropped)."""
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{text!r} is not a usable {what}; give an http:// or https:// URL.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InputError(f"The {what} {text!r} must not carry credentials, a query or a fragment.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InputError(f"The {what} {text!r} has a malformed port.") from None
    return value.rstrip("/")


class Network(BaseModel):
    """One named network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc: str
    hub: str
    gateways: tuple[str, ...] = ()
    log_range: int | None = Field(default=None, gt=0)


class NetworkBook:
    """The named networks of one Cove home (`networks.json`)."""

    def __init__(self, file: Path):
        self.file = file

    def all(self) -> dict[str, Network]:
        try:
            raw = json.loads(self.file.read_text())
            return {name: Network.model_validate(entry) for name, entry in dict(raw).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, ValidationError):
            raise InputError(f"The network file {self.file} is damaged; fix it or remove it and add the networks again.") from None

    def get(self, name: str) -> Network:
        networks = self.all()
        if name not in networks:
            known = ", ".join(sorted(networks)) or "none yet"
            raise InputError(f"There is no network named {name!r} (known: {known}); add it with `cove network add`.")
        return networks[name]

    @staticmethod
    def validated(
        name: str, rpc: str, hub: str, gateways: list[str] | None = None, log_range: int | None = None
    ) -> Network:
        """The network these values describe, or InputError with what is wrong (nothing written)."""
        if not _NAME.match(name):
            raise InputError(f"{name!r} is not a network name; use up to 32 lowercase letters, digits, - and _.")
        if log_range is not None and log_range < 1:
            raise InputError("--log-range must be a positive number of blocks.")
        return Network(
            rpc=checked_http_url(rpc, "RPC URL"),
            hub=checked_hub_address(hub),
            gateways=tuple(checked_http_url(g, "gateway URL") for g in gateways or []),
            log_range=log_range,
        )

    def save(self, name: str, network: Network) -> None:
        self._write(self.all() | {name: network})

    def remove(self, name: str) -> None:
        networks = self.all()
        self.get(name)  # the same sentence for an unknown name
        del networks[name]
        self._write(networks)

    def _write(self, networks: dict[str, Network]) -> None:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: v.model_dump(mode="json") for k, v in sorted(networks.items())}, indent=2))
            os.replace(tmp, self.file)
        except OSError as error:
            raise InputError(f"Cannot write {self.file}: {error.strerror}; check that the Cove home is writable.") from None
