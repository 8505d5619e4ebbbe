"""Serving an ASGI app over HTTP: request limits every Cove service shares, and a server.

`build_app(routes)` wraps Starlette routes with limits on the request head (URL and header
size); `HttpServer` runs an app under uvicorn in a background thread with connection,
keep-alive and header limits. The owner's endpoint (compute_to_data.node) and the market
page (`cove ui`) both run on these.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from exchange.errors import StorageError

DEFAULT_MAX_URL_BYTES = 2048
DEFAULT_MAX_HEADER_BYTES = 8 * 1024


class RequestRefused(Exception):
    """A request answered with an error: a status, one sentence, optional headers."""

    def __init__(self, status: int, sentence: str, headers: dict[str, str] | None = None):
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence
        self.headers = headers or {}

    def response(self) -> Response:
        return PlainTextResponse(self.sentence, self.status, headers=self.headers)


class RequestLimits:
    """ASGI middleware bounding the request head: 414 for a long URL, 431 for big headers.

    Uvicorn's own header limit (see GatewayServer) only catches headers arriving over
    several reads; this one sees every request.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_url_bytes: int = DEFAULT_MAX_URL_BYTES,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> RequestRefused | None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if len(raw_path) + 1 + len(scope.get("query_string", b"")) > self.max_url_bytes:
            return RequestRefused(
                414, f"The URL is longer than the {self.max_url_bytes} bytes this endpoint accepts."
            )
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            return RequestRefused(
                431,
                f"The request headers exceed the {self.max_header_bytes} bytes this endpoint accepts.",
            )
        return None


def build_app(
    routes: Sequence[BaseRoute],
    *,
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Starlette:
    """A Starlette app over `routes`: 414 above `max_url_bytes`, 431 above `max_header_bytes`."""
    limits = Middleware(
        RequestLimits, max_url_bytes=max_url_bytes, max_header_bytes=max_header_bytes
    )
    return Starlette(routes=list(routes), middleware=[limits])


class HttpServer:
    """Runs an ASGI app under uvicorn in a background thread, with request limits.

    - `limit_concurrency`: connections and tasks at once; beyond it uvicorn answers 503.
    - `timeout_keep_alive`: seconds an idle keep-alive connection stays open.
    - `max_header_bytes`: the request line and headers; beyond it uvicorn answers 400
      ("Invalid HTTP request received.") and closes the connection.
    Binds 127.0.0.1 unless told otherwise; `port=0` picks a free port (see `.port`, `.url`).
    Uvicorn's access log names only method, path and status; no body is ever logged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limit_concurrency: int = 64,
        timeout_keep_alive: int = 5,
        max_header_bytes: int = 16 * 1024,
        access_log: bool = False,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self._shutdown_timeout = shutdown_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="h11",  # the header limit below is h11's; httptools would ignore it
            ws="none",
            lifespan="auto",
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=timeout_keep_alive,
            h11_max_incomplete_event_size=max_header_bytes,
            timeout_graceful_shutdown=max(1, int(shutdown_timeout)),
            access_log=access_log,
            log_config=None,  # leave the host application's logging configuration alone
            server_header=False,
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:41234`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; return once the server accepts connections."""
        if self._thread is not None:
            raise StorageError(f"The server at {self.url} is already started.")
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="cove-http",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise StorageError(f"The server could not start at {self.url}; see the log.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self._shutdown_timeout + 5)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
