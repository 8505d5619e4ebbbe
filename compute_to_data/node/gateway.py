"""A strict IPFS trustless gateway (https://specs.ipfs.tech/http-gateways/trustless-gateway/).

`GET`/`HEAD /ipfs/{cid}` answers a raw block (`application/vnd.ipld.raw`) or a CARv1 stream
(`application/vnd.ipld.car; version=1; order=dfs; dups=n|y`) of the DAG below `cid`, chosen by
`?format=` or else by `Accept`. It never deserializes content ("strict" mode): a request
that names neither format gets 400. Any IPFS client that verifies blocks can read from it,
and any IPFS gateway can serve the same CIDs.

Composable: `gateway_routes(source)` returns Starlette routes to mount beside others;
`exchange.http_server` wraps them with request limits and serves them.

The block source is trusted by the node but not by its readers: clients check every byte.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from exchange.errors import CoveError, InputError
from exchange.http_server import RequestRefused, build_app
from exchange.storage.car import DagScope, encode_car_header, unixfs_file_size, walk_dag, write_car
from exchange.storage.cid import Cid, build_dag

logger = logging.getLogger(__name__)

RAW_MEDIA_TYPE = "application/vnd.ipld.raw"
CAR_MEDIA_TYPE = "application/vnd.ipld.car"
# The identity CID of empty bytes: the spec's probe that an endpoint is a trustless gateway.
PROBE_CID = "bafkqaaa"
_PROBE_CID_BYTES = b"\x01\x55\x00\x00"
IMMUTABLE_CACHE_CONTROL = "public, max-age=29030400, immutable"
_ALLOWED_METHODS = ("GET", "HEAD")
_ASK_FOR_A_FORMAT = (
    "This is a trustless gateway: ask for a raw block with ?format=raw (or Accept: "
    f"{RAW_MEDIA_TYPE}) or for a CAR with ?format=car (or Accept: {CAR_MEDIA_TYPE})."
)
_ENTITY_BYTES = re.compile(r"(-?\d{1,19}):(-?\d{1,19}|\*)")

Format = Literal["raw", "car"]


@runtime_checkable
class BlockSource(Protocol):
    """What the gateway serves: any block (root or child) of the content this node holds."""

    def block(self, cid: Cid) -> bytes | None:
        """The block stored under `cid`, or None when this node does not serve it."""
        ...


class MemoryBlockSource:
    """A BlockSource over whole contents kept in memory, split into kubo's DAG blocks."""

    def __init__(self) -> None:
        self._blocks: dict[Cid, bytes] = {}

    def add_content(self, data: bytes) -> Cid:
        """Serve `data` (every block of its DAG) and return its root CID."""
        root, blocks = build_dag(data)
        self._blocks.update(blocks)
        return root

    def block(self, cid: Cid) -> bytes | None:
        return self._blocks.get(cid)


# --- negotiation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _MediaRange:
    media_type: str
    params: dict[str, str]
    quality: float


@dataclass(frozen=True)
class Negotiated:
    """The response format a request asked for, and how it asked."""

    format: Format
    from_accept_only: bool  # format came from Accept, not ?format= (so send Content-Location)
    duplicates: bool = False  # CAR `dups=y`


def negotiate(query: dict[str, str], accept: str | None) -> Negotiated:
    """Choose raw or CAR from `?format=` (which wins) or `Accept`; raise RequestRefused if neither."""
    ranges = _parse_accept(accept or "")
    requested = query.get("format")
    if requested is not None:
        if requested not in ("raw", "car"):
            raise RequestRefused(
                400,
                f"format={requested} is not served by this trustless gateway; "
                "ask for format=raw or format=car.",
            )
        if requested == "raw":
            return Negotiated("raw", False)
        return Negotiated("car", False, _car_duplicates(query, _best_car_params(ranges) or {}))

    unsupported_car = False
    for media_range in ranges:
        if media_range.media_type == RAW_MEDIA_TYPE:
            return Negotiated("raw", True)
        if media_range.media_type == CAR_MEDIA_TYPE:
            if _car_params_supported(media_range.params):
                return Negotiated("car", True, _car_duplicates(query, media_range.params))
            unsupported_car = True
    if unsupported_car:
        raise RequestRefused(
            406,
            f"Only {CAR_MEDIA_TYPE} with version=1, order=dfs (or unk) and dups=n or y is "
            "served here.",
        )
    raise RequestRefused(400, _ASK_FOR_A_FORMAT)


def _parse_accept(header: str) -> list[_MediaRange]:
    """Media ranges with q > 0, best first (ties keep the header's order)."""
    ranges = []
    for item in _split_outside_quotes(header, ","):
        parts = _split_outside_quotes(item, ";")
        media_type = parts[0].strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            name, _, value = part.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 0.0  # an unreadable weight is treated as "not acceptable"
        if quality > 0:
            ranges.append(_MediaRange(media_type, params, quality))
    return sorted(ranges, key=lambda r: -r.quality)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _car_params_supported(params: dict[str, str]) -> bool:
    return (
        params.get("version", "1") == "1"
        and params.get("order", "dfs") in ("dfs", "unk", "")
        and params.get("dups", "n") in ("n", "y")
    )


def _best_car_params(ranges: list[_MediaRange]) -> dict[str, str] | None:
    for media_range in ranges:
        if media_range.media_type == CAR_MEDIA_TYPE and _car_params_supported(media_range.params):
            return media_range.params
    return None


def _car_duplicates(query: dict[str, str], accept_params: dict[str, str]) -> bool:
    """Check the car-* query parameters (which win over Accept's) and return whether dups=y."""
    version = query.get("car-version", "1")
    if version != "1":
        raise RequestRefused(
            400, f"car-version={version} is not served; this gateway writes CARv1 only."
        )
    order = query.get("car-order", "dfs")
    if order not in ("dfs", "unk"):
        raise RequestRefused(
            400, f"car-order={order} is not served; this gateway writes order=dfs."
        )
    dups = query.get("car-dups", accept_params.get("dups", "n"))
    if dups not in ("n", "y"):
        raise RequestRefused(
            400, f"car-dups={dups} is not valid; ask for car-dups=n or car-dups=y."
        )
    return dups == "y"


# --- CAR request parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class EntityBytes:
    """`entity-bytes=from:to`: inclusive offsets, negative from the end, `to=None` for `*`."""

    start: int
    end: int | None

    @classmethod
    def parse(cls, text: str) -> EntityBytes:
        match = _ENTITY_BYTES.fullmatch(text)
        if match is None:
            raise RequestRefused(
                400, f"entity-bytes={text} is not a range; use from:to, like 0:1023 or -1024:*."
            )
        start = int(match[1])
        end = None if match[2] == "*" else int(match[2])
        if end is not None and 0 <= end < start:
            raise RequestRefused(400, f"entity-bytes={text} ends before it starts.")
        return cls(start, end)

    def resolve(self, size: int) -> tuple[int, int] | None:
        """(first, last) within a `size`-byte entity, or None for an empty range."""
        first = self.start if self.start >= 0 else max(size + self.start, 0)
        last = size - 1 if self.end is None else (self.end if self.end >= 0 else size + self.end)
        last = min(last, size - 1)
        if first >= size > 0:
            raise RequestRefused(
                400,
                f"entity-bytes starts at byte {first}, beyond the end of this {size}-byte file.",
            )
        return (first, last) if first <= last else None


def _dag_scope(query: dict[str, str]) -> DagScope:
    text = query.get("dag-scope", "all")
    try:
        return DagScope(text)
    except ValueError:
        raise RequestRefused(
            400, f"dag-scope={text} is not valid; use block, entity or all."
        ) from None


# --- the endpoint ----------------------------------------------------------------------------


def gateway_routes(source: BlockSource) -> list[BaseRoute]:
    """The trustless gateway's routes (`/ipfs/...`), to mount beside other routes."""
    return [Route("/ipfs/{rest:path}", _IpfsEndpoint(source), name="ipfs")]


def create_gateway_app(source: BlockSource, **limits: int) -> Starlette:
    """An app serving only the trustless gateway over `source` (limits as in `build_app`)."""
    return build_app(gateway_routes(source), **limits)


class _IpfsEndpoint:
    """ASGI endpoint for `/ipfs/...`: a class, so Starlette routes every method here and the
    gateway answers 405 itself, with its own sentence and Allow header."""

    def __init__(self, source: BlockSource) -> None:
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        # The source may read from disk: serve from a worker thread, off the event loop.
        response = await run_in_threadpool(self._respond, request)
        await response(scope, receive, send)

    def _respond(self, request: Request) -> Response:
        try:
            return _serve(request, self.source)
        except RequestRefused as refusal:
            return refusal.response()


def _serve(request: Request, source: BlockSource) -> Response:
    if request.method not in _ALLOWED_METHODS:
        raise RequestRefused(
            405,
            "Only GET and HEAD are allowed on /ipfs/ paths.",
            {"Allow": ", ".join(_ALLOWED_METHODS)},
        )
    if _has_body(request):
        raise RequestRefused(413, "Requests to /ipfs/ paths must not carry a body.")
    cid_text, _, sub_path = request.path_params["rest"].partition("/")
    cid: Cid | None = None  # None for the probe CID, which `Cid` cannot represent
    if cid_text != PROBE_CID:
        try:
            cid = Cid.parse(cid_text)
        except InputError as exc:
            raise RequestRefused(400, str(exc)) from None
    query = dict(request.query_params)
    negotiated = negotiate(query, request.headers.get("accept"))
    if sub_path:
        if negotiated.format == "raw":
            raise RequestRefused(400, "Raw blocks are served only at /ipfs/{cid}, without a path.")
        raise RequestRefused(400, "Content paths are not supported; ask for /ipfs/{cid} itself.")
    if cid is None:
        return _probe_response(request, negotiated)

    root_block = source.block(cid)
    if root_block is None:
        if "only-if-cached" in request.headers.get("cache-control", ""):
            raise RequestRefused(412, f"{cid} is not served by this node.")
        raise RequestRefused(404, f"{cid} is not served by this node.")

    if negotiated.format == "raw":
        etag = f'"{cid}.raw"'
        headers = _success_headers(request, str(cid), negotiated, etag, RAW_MEDIA_TYPE, ".bin")
        if _matches(request, etag):
            return _not_modified(headers)
        headers["Content-Length"] = str(len(root_block))
        body = b"" if request.method == "HEAD" else root_block
        return Response(body, 200, headers=headers)

    scope, byte_range = _car_scope(query, cid, root_block)
    etag = _car_etag(cid, scope, byte_range, negotiated.duplicates)
    media_type = _car_media_type(negotiated.duplicates)
    headers = _success_headers(request, str(cid), negotiated, etag, media_type, ".car")
    if _matches(request, etag):
        return _not_modified(headers)
    if request.method == "HEAD":
        # No body and no Content-Length: the CAR's length is not known without walking it.
        return StreamingResponse(iter(()), 200, headers=headers)
    blocks = walk_dag(
        cid, source.block, scope=scope, byte_range=byte_range, duplicates=negotiated.duplicates
    )
    return StreamingResponse(_car_stream(cid, blocks), 200, headers=headers)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0").strip()
    return length != "0" or "transfer-encoding" in request.headers


def _car_scope(
    query: dict[str, str], cid: Cid, root_block: bytes
) -> tuple[DagScope, tuple[int, int] | None]:
    scope = _dag_scope(query)
    text = query.get("entity-bytes")
    if text is None:
        return scope, None
    wanted = EntityBytes.parse(text)
    try:
        size = unixfs_file_size(cid, root_block)
    except CoveError:
        raise RequestRefused(500, f"This node's copy of {cid} is damaged.") from None
    if size is None:
        return DagScope.ENTITY, None  # not a byte array: the spec says ignore the range
    byte_range = wanted.resolve(size)
    if byte_range is None:
        return DagScope.BLOCK, None  # an empty range is answered like dag-scope=block
    return DagScope.ENTITY, byte_range


def _car_etag(cid: Cid, scope: DagScope, byte_range: tuple[int, int] | None, dups: bool) -> str:
    # Strong: the same request always streams byte-identical CARs (fixed DFS order).
    tag = f"{cid}.car.v1.dfs.dups-{'y' if dups else 'n'}.{scope.value}"
    if byte_range is not None:
        tag += f".bytes-{byte_range[0]}-{byte_range[1]}"
    return f'"{tag}"'


def _car_media_type(duplicates: bool) -> str:
    return f"{CAR_MEDIA_TYPE}; version=1; order=dfs; dups={'y' if duplicates else 'n'}"


def _car_stream(root: Cid, blocks: Iterator[tuple[Cid, bytes]]) -> Iterator[bytes]:
    try:
        yield from write_car([root], blocks)
    except CoveError as exc:
        # The 200 is already sent: breaking the connection is the only honest signal left,
        # so caches never store the truncated CAR as complete.
        logger.warning("Aborting the CAR stream of %s: %s", root, exc)
        raise


def _success_headers(
    request: Request,
    cid_text: str,
    negotiated: Negotiated,
    etag: str,
    media_type: str,
    extension: str,
) -> dict[str, str]:
    headers = {
        "Content-Type": media_type,
        "Content-Disposition": f'attachment; filename="{cid_text}{extension}"',
        "Cache-Control": IMMUTABLE_CACHE_CONTROL,
        "ETag": etag,
        "X-Ipfs-Path": f"/ipfs/{cid_text}",
        "X-Ipfs-Roots": cid_text,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept",
    }
    if negotiated.from_accept_only:
        params = [("format", negotiated.format), *request.query_params.multi_items()]
        headers["Content-Location"] = f"/ipfs/{cid_text}?{urlencode(params)}"
    return headers


def _matches(request: Request, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, as RFC 9110 asks for it)."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _not_modified(headers: dict[str, str]) -> Response:
    kept = ("ETag", "Cache-Control", "Vary", "X-Ipfs-Path", "X-Ipfs-Roots", "Content-Location")
    return Response(b"", 304, headers={k: v for k, v in headers.items() if k in kept})


def _probe_response(request: Request, negotiated: Negotiated) -> Response:
    """`bafkqaaa`: an empty raw block, or a CAR whose only root is it (identity blocks are
    never sent as sections)."""
    if negotiated.format == "raw":
        body, etag, media_type, extension = b"", f'"{PROBE_CID}.raw"', RAW_MEDIA_TYPE, ".bin"
    else:
        body = encode_car_header([_PROBE_CID_BYTES])
        etag, media_type, extension = f'"{PROBE_CID}.car"', _car_media_type(False), ".car"
    headers = _success_headers(request, PROBE_CID, negotiated, etag, media_type, extension)
    if _matches(request, etag):
        return _not_modified(headers)
    headers["Content-Length"] = str(len(body))
    return Response(b"" if request.method == "HEAD" else body, 200, headers=headers)
