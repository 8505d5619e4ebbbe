"""The trustless gateway over real HTTP: a uvicorn server on 127.0.0.1 and the verifying client."""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from compute_to_data.node.gateway import MemoryBlockSource, create_gateway_app, gateway_routes
from exchange.http_server import HttpServer, build_app
from exchange.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    EndpointRefused,
    EndpointUnreachable,
    InputError,
)
from exchange.storage.car import read_car, walk_dag
from exchange.storage.cid import CHUNK_SIZE, CODEC_DAG_PB, CODEC_RAW, Cid, build_dag, compute_cid
from exchange.storage.gateway_client import GatewayClient, fetch_verified

TIMEOUT = 10
SMALL = b"a small public document\n"
LARGE = hashlib.shake_256(b"cove-gateway-test").digest(3 * CHUNK_SIZE + 17)
ZEROS = bytes(2 * CHUNK_SIZE)  # two identical leaves: one block, linked twice
RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
PROBE_BYTES = b"\x01\x55\x00\x00"


@pytest.fixture(scope="module")
def source() -> MemoryBlockSource:
    source = MemoryBlockSource()
    for data in (SMALL, LARGE, ZEROS):
        source.add_content(data)
    return source


@pytest.fixture(scope="module")
def server(source: MemoryBlockSource) -> Iterator[HttpServer]:
    with HttpServer(create_gateway_app(source), max_header_bytes=16 * 1024) as running:
        yield running


@pytest.fixture(scope="module")
def base(server: HttpServer) -> str:
    return server.url


def client(url: str, **options: object) -> GatewayClient:
    options = {"connect_timeout": 2.0, "read_timeout": 5.0, "total_timeout": 20.0, **options}
    return GatewayClient(url, **options)  # type: ignore[arg-type]


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def small_cid() -> Cid:
    return compute_cid(SMALL)


def large_cid() -> Cid:
    return compute_cid(LARGE)


def assert_trustless_headers(response: requests.Response, cid: str, extension: str) -> None:
    headers = response.headers
    assert headers["Content-Disposition"] == f'attachment; filename="{cid}{extension}"'
    assert headers["Cache-Control"] == "public, max-age=29030400, immutable"
    assert headers["X-Ipfs-Path"] == f"/ipfs/{cid}"
    assert headers["X-Ipfs-Roots"] == cid
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Vary"] == "Accept"
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and cid in etag  # strong, names the CID


# --- the client against the real server ------------------------------------------------------


def test_client_fetches_and_verifies_raw_and_multi_block_content(base: str) -> None:
    with client(base) as reader:
        assert reader.fetch(small_cid()) == SMALL
        assert reader.fetch(str(large_cid())) == LARGE
        assert reader.fetch(compute_cid(ZEROS)) == ZEROS
    assert small_cid().codec == CODEC_RAW and large_cid().codec == CODEC_DAG_PB


def test_one_shot_fetch(base: str) -> None:
    assert fetch_verified(base + "/", large_cid(), read_timeout=5.0) == LARGE


def test_client_names_the_url_of_a_missing_cid(base: str) -> None:
    unknown = compute_cid(b"nobody has this")
    with pytest.raises(ContentNotFound) as info, client(base) as reader:
        reader.fetch(unknown)
    message = str(info.value)
    assert f"{base}/ipfs/{unknown}?format=raw" in message and "HTTP 404" in message


def test_client_refuses_a_malformed_cid_before_any_request() -> None:
    with pytest.raises(InputError), client("http://127.0.0.1:9") as reader:
        reader.fetch("not-a-cid")


def test_client_refuses_a_bad_base_url() -> None:
    with pytest.raises(InputError):
        GatewayClient("ftp://127.0.0.1/")


def test_client_stops_at_max_bytes(base: str) -> None:
    with pytest.raises(ContentTooLarge) as info, client(base, max_bytes=CHUNK_SIZE) as reader:
        reader.fetch(large_cid())
    assert base in str(info.value) and "max_bytes" in str(info.value)
    with pytest.raises(ContentTooLarge), client(base, max_bytes=len(SMALL) - 1) as reader:
        reader.fetch(small_cid())


# --- raw blocks ------------------------------------------------------------------------------


def test_raw_block_response(base: str) -> None:
    cid = str(small_cid())
    response = get(f"{base}/ipfs/{cid}?format=raw", headers={"Accept": RAW})
    assert response.status_code == 200
    assert response.content == SMALL
    assert response.headers["Content-Type"] == RAW
    assert response.headers["Content-Length"] == str(len(SMALL))
    assert response.headers["ETag"] == f'"{cid}.raw"'
    assert "Content-Location" not in response.headers  # format was in the URL
    assert_trustless_headers(response, cid, ".bin")


def test_any_block_of_a_dag_is_served_raw(base: str) -> None:
    _, blocks = build_dag(LARGE)
    for cid, block in blocks[:2] + blocks[-1:]:
        response = get(f"{base}/ipfs/{cid}?format=raw")
        assert response.status_code == 200
        assert hashlib.sha256(response.content).digest() == cid.digest
        assert response.content == block


def test_accept_alone_selects_raw_and_sets_content_location(base: str) -> None:
    cid = str(small_cid())
    response = get(f"{base}/ipfs/{cid}", headers={"Accept": RAW})
    assert response.status_code == 200 and response.content == SMALL
    assert response.headers["Content-Location"] == f"/ipfs/{cid}?format=raw"


def test_head_raw_has_headers_and_no_body(base: str) -> None:
    cid = str(small_cid())
    url = f"{base}/ipfs/{cid}?format=raw"
    head = requests.head(url, timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(SMALL))
    full = get(url)
    for name in ("Content-Type", "ETag", "Cache-Control", "Content-Disposition", "X-Ipfs-Roots"):
        assert head.headers[name] == full.headers[name]


def test_raw_with_a_path_is_refused(base: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}/file.txt?format=raw")
    assert response.status_code == 400
    assert "without a path" in response.text


# --- CAR streams ---------------------------------------------------------------------------------


def test_car_response(base: str, source: MemoryBlockSource) -> None:
    cid = large_cid()
    response = get(f"{base}/ipfs/{cid}?format=car", headers={"Accept": CAR})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{CAR}; version=1; order=dfs; dups=n"
    assert "Content-Length" not in response.headers  # streamed
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert_trustless_headers(response, str(cid), ".car")
    contents = read_car(response.content)
    assert contents.roots == (cid.to_bytes(),)
    assert list(contents.blocks.items()) == list(walk_dag(cid, source.block))


def test_accept_alone_selects_car_and_sets_content_location(base: str) -> None:
    cid = str(large_cid())
    response = get(f"{base}/ipfs/{cid}?dag-scope=all", headers={"Accept": f"{CAR}; version=1"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(f"{CAR}; version=1")
    assert response.headers["Content-Location"] == f"/ipfs/{cid}?format=car&dag-scope=all"


def test_format_takes_precedence_over_accept(base: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}?format=raw", headers={"Accept": CAR})
    assert response.headers["Content-Type"] == RAW
    assert "Content-Location" not in response.headers


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{CAR};q=0.5, {RAW};q=0.9", RAW),
        (f"{RAW};q=0.5, {CAR};q=0.9", CAR),
        (f"text/html, {RAW};q=0.2", RAW),
        (f"{CAR};version=2;q=1, {RAW};q=0.1", RAW),
        (f'{CAR}; version="1"; order=dfs; dups=n', CAR),
        (f"{RAW};q=0, {CAR};q=0.1", CAR),
    ],
)
def test_accept_negotiation_with_q_values(base: str, accept: str, expected: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == expected


@pytest.mark.parametrize("params", ["version=2", "order=foo", "dups=maybe"])
def test_unsupported_car_variants_are_not_acceptable(base: str, params: str) -> None:
    response = get(f"{base}/ipfs/{large_cid()}", headers={"Accept": f"{CAR}; {params}"})
    assert response.status_code == 406
    assert "version=1" in response.text


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("format=tar", "format=tar is not served"),
        ("format=car&car-version=2", "CARv1 only"),
        ("format=car&car-order=unknown", "order=dfs"),
        ("format=car&car-dups=x", "car-dups=n"),
        ("format=car&dag-scope=everything", "block, entity or all"),
        ("format=car&entity-bytes=abc", "is not a range"),
        ("format=car&entity-bytes=10:5", "ends before it starts"),
        ("format=car&entity-bytes=999999999:*", "beyond the end"),
    ],
)
def test_bad_car_parameters_are_refused(base: str, query: str, why: str) -> None:
    response = get(f"{base}/ipfs/{large_cid()}?{query}")
    assert response.status_code == 400
    assert why in response.text
    assert response.headers["Content-Type"].startswith("text/plain")


def test_dups_y_repeats_blocks(base: str) -> None:
    cid = compute_cid(ZEROS)
    plain = get(f"{base}/ipfs/{cid}?format=car")
    repeated = get(f"{base}/ipfs/{cid}", headers={"Accept": f"{CAR}; version=1; dups=y"})
    assert repeated.headers["Content-Type"] == f"{CAR}; version=1; order=dfs; dups=y"
    assert plain.headers["ETag"] != repeated.headers["ETag"]
    assert len(repeated.content) > len(plain.content)
    assert read_car(repeated.content).blocks == read_car(plain.content).blocks
    via_query = get(f"{base}/ipfs/{cid}?format=car&car-dups=y")
    assert via_query.content == repeated.content


def test_dag_scopes(base: str, source: MemoryBlockSource) -> None:
    cid = large_cid()
    everything = list(walk_dag(cid, source.block))
    by_scope = {}
    for scope in ("block", "entity", "all"):
        response = get(f"{base}/ipfs/{cid}?format=car&dag-scope={scope}")
        assert response.status_code == 200
        by_scope[scope] = response
    assert list(read_car(by_scope["block"].content).blocks) == [cid]
    assert list(read_car(by_scope["entity"].content).blocks.items()) == everything
    assert list(read_car(by_scope["all"].content).blocks.items()) == everything
    assert len({r.headers["ETag"] for r in by_scope.values()}) == 3


def test_entity_bytes(base: str) -> None:
    cid = large_cid()
    _, blocks = build_dag(LARGE)
    leaves = [c for c, _ in blocks if c.codec == CODEC_RAW]

    def car_blocks(range_text: str) -> list[Cid]:
        response = get(f"{base}/ipfs/{cid}?format=car&entity-bytes={range_text}")
        assert response.status_code == 200
        return list(read_car(response.content).blocks)

    assert car_blocks("0:0") == [cid, leaves[0]]
    assert car_blocks(f"{CHUNK_SIZE - 1}:{CHUNK_SIZE}") == [cid, leaves[0], leaves[1]]
    assert car_blocks("-1:*") == [cid, leaves[-1]]
    assert car_blocks("0:*") == [cid, *leaves]
    assert car_blocks("10:-99999999") == [cid]  # an empty range: like dag-scope=block
    first = get(f"{base}/ipfs/{cid}?format=car&entity-bytes=0:0").headers["ETag"]
    second = get(f"{base}/ipfs/{cid}?format=car&entity-bytes=0:1").headers["ETag"]
    assert first != second


def test_car_with_a_path_is_refused(base: str) -> None:
    response = get(f"{base}/ipfs/{large_cid()}/sub/dir?format=car")
    assert response.status_code == 400
    assert "paths are not supported" in response.text


def test_head_car_has_no_body(base: str) -> None:
    response = requests.head(f"{base}/ipfs/{large_cid()}?format=car", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Type"].startswith(f"{CAR}; version=1")
    assert response.headers.get("Content-Length") in (None, "")  # unknown, never a false 0
    assert response.headers["ETag"] == get(f"{base}/ipfs/{large_cid()}?format=car").headers["ETag"]


# --- caching -----------------------------------------------------------------------------------------


def test_etags_differ_by_response_type(base: str) -> None:
    cid = small_cid()
    raw = get(f"{base}/ipfs/{cid}?format=raw").headers["ETag"]
    car = get(f"{base}/ipfs/{cid}?format=car").headers["ETag"]
    block = get(f"{base}/ipfs/{cid}?format=car&dag-scope=block").headers["ETag"]
    assert len({raw, car, block}) == 3
    assert not any(tag.startswith("W/") for tag in (raw, car, block))


@pytest.mark.parametrize("fmt", ["raw", "car"])
def test_if_none_match_gives_304(base: str, fmt: str) -> None:
    url = f"{base}/ipfs/{large_cid() if fmt == 'car' else small_cid()}?format={fmt}"
    etag = get(url).headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = get(url, headers={"If-None-Match": header})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["ETag"] == etag
    assert get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200


# --- errors ---------------------------------------------------------------------------------------


def test_malformed_cid_is_400_with_the_parser_sentence(base: str) -> None:
    response = get(f"{base}/ipfs/not-a-cid?format=raw")
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(InputError) as info:
        Cid.parse("not-a-cid")
    assert response.text == str(info.value)
    assert "Traceback" not in response.text


def test_missing_format_is_400_in_strict_mode(base: str) -> None:
    for headers in ({}, {"Accept": "text/html,*/*;q=0.8"}):
        response = get(f"{base}/ipfs/{small_cid()}", headers=headers)
        assert response.status_code == 400
        assert "format=raw" in response.text and "format=car" in response.text
        assert ". " not in response.text and response.text.endswith(".")  # one sentence


def test_unknown_cid_is_404(base: str) -> None:
    unknown = compute_cid(b"never served")
    response = get(f"{base}/ipfs/{unknown}?format=car")
    assert response.status_code == 404
    assert response.text == f"{unknown} is not served by this node."
    assert requests.head(f"{base}/ipfs/{unknown}?format=raw", timeout=TIMEOUT).status_code == 404
    only_if_cached = get(
        f"{base}/ipfs/{unknown}?format=raw", headers={"Cache-Control": "only-if-cached"}
    )
    assert only_if_cached.status_code == 412


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(base: str, method: str) -> None:
    response = requests.request(method, f"{base}/ipfs/{small_cid()}?format=raw", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_a_request_body_is_413(base: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}?format=raw", data=b"unexpected body")
    assert response.status_code == 413


def test_a_long_url_is_414(base: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}?format=raw&pad={'x' * 2100}")
    assert response.status_code == 414
    assert get(f"{base}/ipfs/{small_cid()}?format=raw&pad={'x' * 1800}").status_code == 200


def test_large_headers_are_431(base: str) -> None:
    response = get(f"{base}/ipfs/{small_cid()}?format=raw", headers={"X-Padding": "x" * 10_000})
    assert response.status_code == 431


def test_headers_beyond_the_server_buffer_are_400(server: HttpServer) -> None:
    # Uvicorn's h11 limit (max_header_bytes=16 KiB here) applies to a request head that is
    # still incomplete; it answers 400 and closes, whatever the app would have said.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
        conn.sendall(b"GET /ipfs/x?format=raw HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"a" * 10_000)
        time.sleep(0.2)
        conn.sendall(b"a" * 10_000)  # 20 KB and still no end of headers
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")


# --- the probe -----------------------------------------------------------------------------------------


def test_probe_raw(base: str) -> None:
    response = get(f"{base}/ipfs/bafkqaaa?format=raw", headers={"Accept": RAW})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Type"] == RAW
    assert requests.head(f"{base}/ipfs/bafkqaaa?format=raw", timeout=TIMEOUT).status_code == 200


def test_probe_car(base: str) -> None:
    response = get(f"{base}/ipfs/bafkqaaa?format=car", headers={"Accept": CAR})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(f"{CAR}; version=1")
    contents = read_car(response.content)
    assert contents.roots == (PROBE_BYTES,)
    assert contents.blocks == {}  # identity blocks are never sent


# --- misbehaving and absent servers ------------------------------------------------------------------


class TamperedSource:
    """Serves real content with one byte flipped in one block."""

    def __init__(self, real: MemoryBlockSource, victim: Cid) -> None:
        self.real = real
        self.victim = victim

    def block(self, cid: Cid) -> bytes | None:
        block = self.real.block(cid)
        if block is not None and cid == self.victim:
            return bytes([block[0] ^ 0xFF]) + block[1:]
        return block


@pytest.mark.parametrize("which", ["raw root", "leaf of a dag"])
def test_client_refuses_tampered_content(source: MemoryBlockSource, which: str) -> None:
    if which == "raw root":
        wanted = victim = small_cid()
    else:
        wanted, blocks = build_dag(LARGE)
        victim = blocks[1][0]
    tampered = create_gateway_app(TamperedSource(source, victim))
    with (
        HttpServer(tampered) as liar,
        client(liar.url) as reader,
        pytest.raises(ContentMismatch) as info,
    ):
        reader.fetch(wanted)
    message = str(info.value)
    assert f"The content served by {liar.url}/ipfs/{wanted}?format=" in message
    assert f"does not match CID {wanted} and was refused" in message


def test_a_missing_child_block_aborts_the_stream(source: MemoryBlockSource) -> None:
    root, blocks = build_dag(LARGE)
    holes = {blocks[2][0]}
    partial = create_gateway_app(_Filtered(source, holes))
    with HttpServer(partial) as node:
        response = requests.get(f"{node.url}/ipfs/{root}?format=car", timeout=TIMEOUT, stream=True)
        assert response.status_code == 200  # committed before the hole was found
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(response.iter_content(65536))
        with pytest.raises(EndpointUnreachable), client(node.url, attempts=1) as reader:
            reader.fetch(root)


class _Filtered:
    def __init__(self, real: MemoryBlockSource, missing: set[Cid]) -> None:
        self.real, self.missing = real, missing

    def block(self, cid: Cid) -> bytes | None:
        return None if cid in self.missing else self.real.block(cid)


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    def block(self, cid: Cid) -> bytes | None:
        self.calls += 1
        raise OSError("disk on fire")


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    failing = _Failing()
    with (
        HttpServer(create_gateway_app(failing)) as broken,
        client(broken.url, attempts=3, retry_delay=0) as reader,
        pytest.raises(EndpointUnreachable) as info,
    ):
        reader.fetch(small_cid())
    assert failing.calls == 3
    assert "HTTP 500" in str(info.value) and broken.url in str(info.value)


def test_a_stopped_server_is_unreachable(source: MemoryBlockSource) -> None:
    stopped = HttpServer(create_gateway_app(source)).start()
    url = stopped.url
    stopped.stop()
    with (
        pytest.raises(EndpointUnreachable) as info,
        client(url, attempts=2, retry_delay=0) as reader,
    ):
        reader.fetch(small_cid())
    assert f"{url}/ipfs/{small_cid()}?format=raw" in str(info.value)


def test_a_server_that_is_not_a_gateway_is_refused() -> None:
    def html(request: Request) -> Response:
        return PlainTextResponse("<html>hello</html>", media_type="text/html")

    app = build_app([Route("/ipfs/{rest:path}", html)])
    with (
        HttpServer(app) as impostor,
        client(impostor.url) as reader,
        pytest.raises(EndpointRefused) as info,
    ):
        reader.fetch(large_cid())
    assert "text/html" in str(info.value) and impostor.url in str(info.value)


# --- the server wrapper ------------------------------------------------------------------------------


def test_server_binds_loopback_on_a_free_port(source: MemoryBlockSource) -> None:
    server = HttpServer(create_gateway_app(source))
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    server.start()
    try:
        assert get(f"{server.url}/ipfs/bafkqaaa?format=raw").status_code == 200
        with pytest.raises(Exception, match="already started"):
            server.start()
    finally:
        server.stop()
    with pytest.raises(requests.ConnectionError):
        get(f"{server.url}/ipfs/bafkqaaa?format=raw")
    server.stop()  # stopping twice is harmless


def test_routes_compose_with_other_routes(source: MemoryBlockSource) -> None:
    def page(request: Request) -> Response:
        return PlainTextResponse("Cove node")

    app = build_app([Route("/", page), *gateway_routes(source)])
    with HttpServer(app) as node:
        assert get(f"{node.url}/").text == "Cove node"
        assert get(f"{node.url}/ipfs/{small_cid()}?format=raw").content == SMALL
        assert get(f"{node.url}/{'x' * 2100}").status_code == 414  # limits cover every route


def test_concurrency_limit_gives_503(source: MemoryBlockSource) -> None:
    with HttpServer(create_gateway_app(source), limit_concurrency=2) as node:
        held = requests.Session()  # keeps its connection open (keep-alive)
        assert held.get(f"{node.url}/ipfs/bafkqaaa?format=raw", timeout=TIMEOUT).status_code == 200
        second = get(f"{node.url}/ipfs/bafkqaaa?format=raw")
        assert second.status_code == 503
        held.close()


def test_idle_keep_alive_connections_are_closed(source: MemoryBlockSource) -> None:
    with (
        HttpServer(create_gateway_app(source), timeout_keep_alive=1) as node,
        socket.create_connection(("127.0.0.1", node.port), timeout=TIMEOUT) as conn,
    ):
        conn.sendall(b"GET /ipfs/bafkqaaa?format=raw HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = conn.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert conn.recv(4096) == b""  # the server hung up on the idle connection
        assert 0.5 < time.monotonic() - started < 5


def test_access_log_never_holds_request_bodies(
    source: MemoryBlockSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with HttpServer(create_gateway_app(source), access_log=True) as node:
        response = requests.post(
            f"{node.url}/ipfs/bafkqaaa", data=b"SECRET-BODY-42", timeout=TIMEOUT
        )
        assert response.status_code == 405
        time.sleep(0.1)
    assert "/ipfs/bafkqaaa" in caplog.text  # the access log did record the request
    assert "SECRET-BODY-42" not in caplog.text


def test_the_buyer_side_client_imports_nothing_from_the_server_side() -> None:
    script = (
        "import sys, exchange.storage.gateway_client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('compute_to_data', 'starlette', 'uvicorn')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
