"""Fetch content by CID from any IPFS trustless gateway, trusting none of its bytes.

A raw CID (content of one chunk) is fetched as a raw block and its sha2-256 compared with
the CID's digest; a dag-pb CID is fetched as a CAR (`dag-scope=all`), every block verified
and the file reassembled from the CID asked for (`exchange.storage.car`). Requests send both
`?format=` and `Accept`, as the spec recommends. Everything is bounded: connect, read and
total timeouts, the bytes read (streamed; nothing is read past the limit) and the attempts.

Failures are Cove exceptions whose one sentence names the URL and what to do:
EndpointUnreachable (no answer, timeout, HTTP 5xx or 429, after every attempt),
ContentNotFound (HTTP 404/410/451), EndpointRefused (another 4xx, or not a trustless
gateway's answer), ContentMismatch (bytes that do not match the CID) and ContentTooLarge.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import requests

from exchange.errors import (
    ContentIntegrityError,
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    EndpointRefused,
    EndpointUnreachable,
    InputError,
)
from exchange.storage.car import MAX_BLOCK_BYTES, car_byte_budget, read_car, reassemble_file
from exchange.storage.cid import CODEC_RAW, Cid

RAW_ACCEPT = "application/vnd.ipld.raw"
CAR_ACCEPT = "application/vnd.ipld.car; version=1; order=dfs; dups=n"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_ERROR_BODY_BYTES = 1024
_NOT_FOUND_STATUSES = (404, 410, 451)
_RETRYABLE_STATUSES = (429,)
_MAX_REDIRECTS = 5


class GatewayClient:
    """Reads verified content from one trustless gateway (an owner's endpoint or any IPFS gateway)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        total_timeout: float = 300.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        attempts: int = 3,
        retry_delay: float = 0.25,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise InputError(
                f"{base_url!r} is not a gateway base URL; give one like 'https://ipfs.io' or "
                "'http://127.0.0.1:8080'."
            )
        if attempts < 1 or max_bytes < 0:
            raise InputError(
                "A gateway client needs at least one attempt and a non-negative max_bytes."
            )
        self.base_url = base_url.rstrip("/")
        self.timeouts = (connect_timeout, read_timeout)
        self.total_timeout = total_timeout
        self.max_bytes = max_bytes
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            session.max_redirects = _MAX_REDIRECTS
        self._session = session

    def url_for(self, cid: Cid) -> str:
        """The request URL for `cid`: a raw block for raw CIDs, a full-DAG CAR for dag-pb."""
        if cid.codec == CODEC_RAW:
            return f"{self.base_url}/ipfs/{cid}?format=raw"
        return f"{self.base_url}/ipfs/{cid}?format=car&dag-scope=all"

    def fetch(self, cid: Cid | str) -> bytes:
        """The content under `cid`, every byte verified against it."""
        cid = cid if isinstance(cid, Cid) else Cid.parse(cid)
        url = self.url_for(cid)
        deadline = time.monotonic() + self.total_timeout
        failure: EndpointUnreachable | None = None
        for attempt in range(self.attempts):
            if attempt:
                backoff = self.retry_delay * 2 ** (attempt - 1)  # 1x, 2x, 4x ... the delay
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
            try:
                return self._fetch_once(cid, url, deadline)
            except EndpointUnreachable as exc:
                failure = exc
        raise failure or _unreachable(url, f"no answer within {self.total_timeout:g} s")

    def close(self) -> None:
        """Close the HTTP session, unless it was handed in."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- one attempt -----------------------------------------------------------------------

    def _fetch_once(self, cid: Cid, url: str, deadline: float) -> bytes:
        is_raw = cid.codec == CODEC_RAW
        headers = {"Accept": RAW_ACCEPT if is_raw else CAR_ACCEPT}
        try:
            with self._session.get(
                url, headers=headers, timeout=self.timeouts, stream=True
            ) as response:
                self._check_status(response, cid, url)
                self._check_content_type(response, is_raw, url)
                if is_raw:
                    return self._read_raw(response, cid, url, deadline)
                return self._read_car(response, cid, url, deadline)
        except requests.Timeout:
            raise _unreachable(url, "it timed out") from None
        except requests.RequestException as exc:
            raise _unreachable(url, _connection_reason(exc)) from None

    def _check_status(self, response: requests.Response, cid: Cid, url: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status in _NOT_FOUND_STATUSES:
            raise ContentNotFound(
                f"{url} does not serve {cid} (HTTP {status}); try another endpoint or gateway."
            )
        if status >= 500 or status in _RETRYABLE_STATUSES:
            raise _unreachable(url, f"it answered HTTP {status}")
        raise EndpointRefused(
            f"{url} refused the request (HTTP {status}{_error_detail(response)}); check that the "
            "URL points at an IPFS trustless gateway."
        )

    @staticmethod
    def _check_content_type(response: requests.Response, is_raw: bool, url: str) -> None:
        header = response.headers.get("content-type", "")
        media_type, *params = [part.strip().lower() for part in header.split(";")]
        expected = RAW_ACCEPT if is_raw else "application/vnd.ipld.car"
        # The spec: a client MUST check a CAR's Content-Type (its version) before reading it.
        other_version = any(p.startswith("version=") and p != "version=1" for p in params)
        if media_type != expected or other_version:
            shown = header[:80] or "none"
            raise EndpointRefused(
                f"{url} answered with Content-Type {shown!r} instead of {expected}; check that "
                "the URL points at an IPFS trustless gateway."
            )

    def _read_raw(self, response: requests.Response, cid: Cid, url: str, deadline: float) -> bytes:
        limit = min(self.max_bytes, MAX_BLOCK_BYTES)
        self._refuse_declared_length(response, limit, cid, url)
        body = bytearray()
        for chunk in _chunks_until(response, deadline, url):
            body += chunk
            if len(body) > limit:
                raise _too_large(url, cid, limit)
        if hashlib.sha256(body).digest() != cid.digest:
            raise _mismatch(url, cid, "the block's sha2-256 differs from the CID's digest")
        return bytes(body)

    def _read_car(self, response: requests.Response, cid: Cid, url: str, deadline: float) -> bytes:
        car_limit = car_byte_budget(self.max_bytes)
        self._refuse_declared_length(response, car_limit, cid, url)
        try:
            contents = read_car(_chunks_until(response, deadline, url), max_car_bytes=car_limit)
            return reassemble_file(cid, contents.blocks, max_size=self.max_bytes)
        except ContentTooLarge:
            raise _too_large(url, cid, self.max_bytes) from None
        except ContentIntegrityError as exc:
            raise _mismatch(url, cid, _as_clause(str(exc))) from None

    @staticmethod
    def _refuse_declared_length(
        response: requests.Response, limit: int, cid: Cid, url: str
    ) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(url, cid, limit)


def fetch_verified(base_url: str, cid: Cid | str, **options: object) -> bytes:
    """One-shot: the content under `cid` from the gateway at `base_url`, verified."""
    with GatewayClient(base_url, **options) as client:  # type: ignore[arg-type]
        return client.fetch(cid)


def _chunks_until(response: requests.Response, deadline: float, url: str) -> Iterator[bytes]:
    # requests' read timeout bounds each socket read; this bounds the whole body, so a
    # server dripping one byte at a time cannot hold the reader forever.
    for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
        if time.monotonic() > deadline:
            raise _unreachable(url, "the body took longer than the total timeout")
        yield chunk


def _unreachable(url: str, reason: str) -> EndpointUnreachable:
    return EndpointUnreachable(
        f"Could not fetch {url}: {reason}; check that the endpoint is running and reachable, "
        "or try another gateway."
    )


def _mismatch(url: str, cid: Cid, reason: str) -> ContentMismatch:
    return ContentMismatch(
        f"The content served by {url} does not match CID {cid} and was refused ({reason}); "
        "try another endpoint or gateway."
    )


def _too_large(url: str, cid: Cid, limit: int) -> ContentTooLarge:
    return ContentTooLarge(
        f"The content served by {url} for {cid} is larger than the {limit}-byte limit, so it "
        "was not read further; raise max_bytes if you expect content this large."
    )


def _as_clause(sentence: str) -> str:
    """A sentence made into a clause that can sit inside another sentence."""
    clause = sentence.rstrip(".")
    return clause[:1].lower() + clause[1:] if clause[1:2].islower() else clause


def _connection_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "the connection failed or broke off"
    return f"the request failed ({type(exc).__name__})"


def _error_detail(response: requests.Response) -> str:
    """': <first line of the body>', printable characters only and short, or ''."""
    try:
        raw = next(response.iter_content(chunk_size=_ERROR_BODY_BYTES), b"")
    except requests.RequestException:
        return ""
    text = raw[:_ERROR_BODY_BYTES].decode("utf-8", "replace").strip().splitlines()
    if not text:
        return ""
    line = "".join(ch for ch in text[0] if ch.isprintable())[:200].rstrip(".")
    return f": {line}" if line else ""
