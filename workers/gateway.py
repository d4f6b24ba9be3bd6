"""The gateway of a LOCAL_PROCESS data plane: a small reverse proxy in front of its instances.

``/<dnsPrefix>/<project>/<integration>/rest`` goes to the instance that the routing table
(``routes.json``, written by ``LocalProcessRuntime.route``) names for the longest matching
route, as ``/rest``. A deployment's endpoint therefore stays the same across restarts and
promotions: only the table changes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

# Route prefixes are DNS labels, which never start with "_": this path cannot shadow a route.
HEALTH_PATH = "/_promenade/healthz"
# Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class RouteTable:
    """routes.json, read again only when the file changes (the runtime replaces it whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        # (route, address), longest route first.
        self._routes: list[tuple[str, str]] = []

    def lookup(self, path: str) -> tuple[str, str] | None:
        """The longest route that is ``path`` or a parent of it, with its address."""
        self._refresh()
        for route, address in self._routes:
            if path == route or path.startswith(route + "/"):
                return route, address
        return None

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._version, self._routes = None, []
            return
        version = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if version == self._version:
            return
        try:
            table = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # keep serving the last table read; the next request tries again
        routes = [
            (route.rstrip("/"), str(entry["address"]))
            for route, entry in table.items()
            if isinstance(entry, dict) and "address" in entry
        ]
        self._routes = sorted(routes, key=lambda item: len(item[0]), reverse=True)
        self._version = version


class _Proxy:
    """The ASGI endpoint that forwards every method of every path."""

    def __init__(self, routes: RouteTable, timeout_s: float) -> None:
        self.routes = routes
        self.timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.forward(Request(scope, receive))
        await response(scope, receive, send)

    async def forward(self, request: Request) -> Response:
        if self.client is None:
            raise RuntimeError("the gateway's lifespan has not started")
        # The raw path keeps the client's percent-encoding all the way to the instance.
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1")
        match = self.routes.lookup(path)
        if match is None:
            return JSONResponse({"error": "no integration at this path"}, status_code=404)
        route, address = match
        url = f"http://{address}{path[len(route) :] or '/'}"
        query = request.scope.get("query_string", b"")
        if query:
            url += "?" + query.decode("latin-1")
        # The body is streamed through. A request that declares none is sent with none: an
        # empty stream would go out as a chunked body, which simple servers do not expect.
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = self.client.build_request(
            request.method,
            url,
            headers=_request_headers(request, route),
            content=request.stream() if has_body else b"",
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            return JSONResponse(
                {"error": f"the integration did not answer within {self.timeout.read:g}s"},
                status_code=504,
            )
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            return JSONResponse(
                {"error": f"the integration is unreachable: {reason}"}, status_code=502
            )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        response = StreamingResponse(
            body(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
        # Raw bytes go through undecoded, so Content-Length and Content-Encoding stay true.
        response.raw_headers = _response_headers(upstream, route)
        return response


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names a Connection header declares hop-by-hop as well."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _request_headers(request: Request, route: str) -> list[tuple[bytes, bytes]]:
    raw = request.headers.raw
    dropped = _connection_tokens(raw) | {b"host"}
    headers = [
        (name, value)
        for name, value in raw
        if name.lower() not in dropped and name.lower().decode("latin-1") not in HOP_BY_HOP
    ]
    client = request.client.host if request.client else None
    forwarded_for = request.headers.get("x-forwarded-for")
    if client:
        forwarded_for = f"{forwarded_for}, {client}" if forwarded_for else client
    extra = {
        b"x-forwarded-for": forwarded_for,
        b"x-forwarded-host": request.headers.get("host"),
        b"x-forwarded-proto": request.url.scheme,
        # Where the integration is mounted, for the links it builds.
        b"x-forwarded-prefix": route,
    }
    headers = [(name, value) for name, value in headers if name.lower() not in extra]
    headers += [(name, value.encode("latin-1")) for name, value in extra.items() if value]
    return headers


def _response_headers(upstream: httpx.Response, route: str) -> list[tuple[bytes, bytes]]:
    raw = upstream.headers.raw
    dropped = _connection_tokens(raw)
    headers: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        lower = name.lower()
        if lower in dropped or lower.decode("latin-1") in HOP_BY_HOP:
            continue
        # A redirect to an absolute path of the integration stays under its route.
        if lower == b"location" and value.startswith(b"/") and not value.startswith(b"//"):
            value = route.encode("latin-1") + value
        headers.append((lower, value))
    return headers


def create_gateway_app(routes_file: Path, *, timeout_s: float = 60.0) -> Starlette:
    """The gateway over the routing table at ``routes_file`` (which may not exist yet)."""
    proxy = _Proxy(RouteTable(routes_file), timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One client, so connections to the instances are pooled; trust_env off so that a
        # proxy configured for the machine is not put between the gateway and localhost.
        async with httpx.AsyncClient(
            timeout=proxy.timeout, trust_env=False, follow_redirects=False
        ) as client:
            proxy.client = client
            try:
                yield
            finally:
                proxy.client = None

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(HEALTH_PATH, health),
            # An ASGI endpoint with no methods given: every method reaches the proxy.
            Route("/{path:path}", proxy),
        ],
        lifespan=lifespan,
    )


async def serve_gateway(routes_file: Path, host: str, port: int, **uvicorn_options: Any) -> None:
    """Serve the gateway with uvicorn until it is told to exit (SIGINT or SIGTERM)."""
    config = uvicorn.Config(
        create_gateway_app(routes_file),
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        **uvicorn_options,
    )
    await uvicorn.Server(config).serve()
