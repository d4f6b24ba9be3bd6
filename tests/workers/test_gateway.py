"""The gateway: a real upstream over real HTTP, routed by the runtime's routing table."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import free_port
from workers.gateway import HEALTH_PATH, create_gateway_app
from workers.runtimes.base import Instance
from workers.runtimes.local_process import LocalProcessRuntime

GATEWAY_URL = "http://gateway.test"


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON."""

    def handle_any(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/login?next=1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "name": self.server.name,  # type: ignore[attr-defined]
                "method": self.command,
                "path": self.path,
                "body": self.rfile.read(length).decode(),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.send_header("X-Upstream", "echo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

    def log_message(self, format: str, *args: Any) -> None:
        pass


def echo_server(name: str) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.name = name  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def upstream() -> Iterator[str]:
    yield from echo_server("first")


@pytest.fixture
def other_upstream() -> Iterator[str]:
    yield from echo_server("second")


@pytest.fixture
def runtime(tmp_path: Path) -> LocalProcessRuntime:
    """Only its routing table is used here: routes point at the echo servers."""
    return LocalProcessRuntime(tmp_path / "runtime", GATEWAY_URL)


@pytest.fixture
async def gateway(runtime: LocalProcessRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway_app(runtime.routes_file)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY_URL) as client,
    ):
        yield client


async def test_forwards_the_request_without_the_route_prefix(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, upstream: str
) -> None:
    url = await runtime.route("dep-1", "/stg/billing/echo", Instance("c1", upstream))
    assert url == f"{GATEWAY_URL}/stg/billing/echo/"

    response = await gateway.post(
        url + "orders/42%2F7?expand=lines&x=%20y",
        content=b'{"qty": 3}',
        headers={
            "X-Request-Id": "abc",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "must not pass",
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 201
    seen = response.json()
    assert seen["name"] == "first"
    assert seen["method"] == "POST"
    assert seen["path"] == "/orders/42%2F7?expand=lines&x=%20y"
    assert seen["body"] == '{"qty": 3}'
    assert seen["headers"]["x-request-id"] == "abc"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["x-forwarded-prefix"] == "/stg/billing/echo"
    assert seen["headers"]["x-forwarded-host"] == "gateway.test"
    assert "x-hop" not in seen["headers"]
    # The upstream's headers come back, repeated ones included.
    assert response.headers["x-upstream"] == "echo"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]

    for method in ("GET", "PUT", "PATCH", "DELETE"):
        answer = await gateway.request(method, url)
        assert (answer.status_code, answer.json()["method"], answer.json()["path"]) == (
            200,
            method,
            "/",
        )
    head = await gateway.head(url)
    assert head.status_code == 200
    assert head.content == b""
    bare = await gateway.get(url.rstrip("/"))
    assert bare.json()["path"] == "/"


async def test_large_bodies_pass_whole(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, upstream: str
) -> None:
    url = await runtime.route("dep-1", "/stg/billing/echo", Instance("c1", upstream))
    payload = "0123456789abcdef" * 65_536  # 1 MiB

    response = await gateway.put(url + "upload", content=payload.encode())

    assert response.status_code == 200
    assert response.json()["body"] == payload
    assert response.headers["content-length"] == str(len(response.content))


async def test_the_longest_matching_route_wins(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, upstream: str, other_upstream: str
) -> None:
    await runtime.route("dep-1", "/stg/billing/echo", Instance("c1", upstream))
    await runtime.route("dep-2", "/stg/billing/echo-two", Instance("c1", other_upstream))
    await runtime.route("dep-3", "/stg/billing/echo/nested", Instance("c1", other_upstream))

    async def served_by(path: str) -> tuple[str, str]:
        seen = (await gateway.get(path)).json()
        return seen["name"], seen["path"]

    assert await served_by("/stg/billing/echo/x") == ("first", "/x")
    assert await served_by("/stg/billing/echo-two/x") == ("second", "/x")
    assert await served_by("/stg/billing/echo/nested/x") == ("second", "/x")
    assert await served_by("/stg/billing/echo/nestedx") == ("first", "/nestedx")


async def test_a_new_route_table_is_served_at_once(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, upstream: str, other_upstream: str
) -> None:
    url = await runtime.route("dep-1", "/stg/billing/echo", Instance("c1", upstream))
    assert (await gateway.get(url)).json()["name"] == "first"

    # A restart: same deployment, same route, a new instance.
    assert await runtime.route("dep-1", "/stg/billing/echo", Instance("c2", other_upstream)) == url
    assert (await gateway.get(url)).json()["name"] == "second"

    await runtime.stop("dep-1", "/stg/billing/echo")
    response = await gateway.get(url)
    assert response.status_code == 404
    assert response.json() == {"error": "no integration at this path"}


async def test_unknown_paths_and_unreachable_instances(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    for path in ("/", "/stg/billing/unknown/", "/stg/billing"):
        response = await gateway.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "no integration at this path"}

    url = await runtime.route(
        "dep-1", "/stg/billing/gone", Instance("c1", f"127.0.0.1:{free_port()}")
    )
    response = await gateway.get(url)
    assert response.status_code == 502
    assert response.json()["error"].startswith("the integration is unreachable")


async def test_redirects_stay_under_the_route(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, upstream: str
) -> None:
    url = await runtime.route("dep-1", "/stg/billing/echo", Instance("c1", upstream))
    response = await gateway.get(url + "redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/stg/billing/echo/login?next=1"


def test_serve_gateway_answers_over_http(tmp_path: Path, upstream: str) -> None:
    runtime = LocalProcessRuntime(tmp_path / "runtime", "http://unused")
    port = free_port()
    script = (
        "import asyncio, sys; from pathlib import Path; from workers.gateway import serve_gateway;"
        "asyncio.run(serve_gateway(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2])))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(runtime.routes_file), str(port)],
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, trust_env=False) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if client.get(HEALTH_PATH).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "the gateway exited"
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.05)

            path = "/dev/billing/echo/hello?x=1"
            assert client.get(path).status_code == 404
            # The gateway process picks up the table the runtime writes, no restart needed.
            asyncio.run(runtime.route("dep-1", "/dev/billing/echo", Instance("c1", upstream)))
            response = client.get(path)
            assert response.status_code == 200
            assert response.json()["path"] == "/hello?x=1"
    finally:
        process.terminate()
        process.wait(timeout=10)
