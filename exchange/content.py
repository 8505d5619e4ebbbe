"""Getting content by CID from wherever it is: the local cache, the dataset's endpoint, gateways.

Every party keeps a local cache (a `LocalDirectoryStore` in its own home). What is not in
it is fetched from the endpoints the chain names (a dataset's runner publishes its
endpoint's URL on-chain), then from the IPFS gateways the user configured (`--gateway`),
over the trustless gateway protocol. Every byte is checked against its CID before use,
and what was fetched is cached, so each document crosses the network once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from exchange.errors import ContentIntegrityError, ContentNotFound, ContentUnavailable, StorageError
from exchange.storage import Cid, LocalDirectoryStore, as_cid

log = logging.getLogger("cove.content")

Fetch = Callable[[str, Cid], bytes]


def _fetch_over_http(base_url: str, cid: Cid) -> bytes:
    from exchange.storage.gateway_client import fetch_verified  # requests is only needed here

    return fetch_verified(base_url, cid)


class ContentSources:
    """The local cache first, then the given endpoints, then the configured gateways; with
    `fetch=None`, the cache alone (an owner's endpoint reading its own store)."""

    def __init__(self, cache: LocalDirectoryStore, gateways: Sequence[str] = (), fetch: Fetch | None = _fetch_over_http):
        self.cache = cache
        self.gateways = tuple(gateways)
        self._fetch = fetch

    def put(self, data: bytes) -> Cid:
        return self.cache.put(data)

    def has(self, cid: Cid | str) -> bool:
        return self.cache.has(cid)

    def get(self, cid: Cid | str, endpoints: Sequence[str] = (), what: str = "content") -> bytes:
        """The content of `cid`, verified: cached, or fetched from `endpoints` then the gateways.

        Raises ContentUnavailable, one sentence naming every place tried and why it failed
        (a source that served altered bytes is named as such).
        """
        cid = as_cid(cid)
        failures: list[str] = []
        try:
            return self.cache.get(cid)
        except ContentNotFound:
            pass
        except ContentIntegrityError:  # a damaged cache entry: fetched again when it can be
            failures.append(f"its copy in this home's cache is damaged ({self.cache.path_for(cid)})")
        if self._fetch is None:
            raise ContentUnavailable(f"The {what} ({cid}) is not in this store, and nothing is fetched from elsewhere here.")
        for url in _unique([*endpoints, *self.gateways]):
            try:
                data = self._fetch(url, cid)
            except StorageError as error:
                failures.append(_reason(url, error))
                continue
            self.cache.put(data)  # verified against the CID by the fetch
            if failures:
                log.warning("got %s from %s after: %s", cid, url, "; ".join(failures))
            return data
        raise ContentUnavailable(_unavailable(what, cid, failures, bool(endpoints)))


def _unique(urls: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(url.rstrip("/"), None)
    return list(seen)


def _reason(url: str, error: StorageError) -> str:
    if isinstance(error, ContentIntegrityError):
        return f"{url} served bytes that do not match the CID (refused)"
    if isinstance(error, ContentNotFound):
        return f"{url} does not have it"
    return f"{url} did not answer"


def _unavailable(what: str, cid: Cid, failures: list[str], had_endpoint: bool) -> str:
    if not failures:
        hint = "" if had_endpoint else "; its runner publishes no endpoint on-chain"
        return (
            f"The {what} ({cid}) is not in this home's cache and there is nowhere to fetch it from{hint}; "
            "pass --gateway URL of an IPFS gateway that has it."
        )
    return (
        f"The {what} ({cid}) could not be fetched ({'; '.join(failures)}); "
        "try again later, or pass --gateway URL of an IPFS gateway that has it."
    )
