"""Live subscriptions: real servers, real websocket clients.

- ``embedded``: one ``promenade up`` for the whole session (SQLite, in-process bus, a worker and
  its gateway), with the bootstrapped admin's token; each test sets up a project of its own in
  the ``default`` organization. ``intruder`` is a second user with an organization of their own.
- ``live_app``: the ASGI app served by uvicorn on a free port inside the test's event loop,
  with an ``EventHub`` the test holds: the test publishes deployment events straight into the
  hub and reads how many subscribers it has.
- ``WsClient`` speaks graphql-transport-ws by hand over ``websockets`` (what the tests look at
  are close codes and raw messages); the real clients of frontends and scripts (graphql-ws,
  gql) are in test_real_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shlex
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.db import create_engine, create_session_factory
from app.main import create_app
from app.messaging.bus import Message
from app.messaging.fanout import EventHub
from app.models import Environment, Organization, User
from app.services.organizations import create_organization
from app.services.tokens import create_api_token
from app.settings import Settings
from tests.processes import (
    INSTANCE_PYTHON,
    free_port,
    kill_instances,
    run_promenade,
    running_promenade,
)
from tests.support.waiting import eventually

GREETER = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "app.py"
PROTOCOL = Subprotocol("graphql-transport-ws")
FINAL_STATUSES = {"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED"}
# The statuses of a promotion without approval that works, in order.
PROMOTION_STATUSES = ["QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "SUCCEEDED"]

PROMOTION_STATUS = """
subscription($id: ID!) { promotionStatus(id: $id) { promotionId status detail at } }
"""
DEPLOYMENT_EVENTS = """
subscription($environmentId: ID, $integrationId: ID) {
    deploymentEvents(environmentId: $environmentId, integrationId: $integrationId) {
        deploymentId integrationId environmentId status revision endpointUrl detail at
    }
}
"""

T = TypeVar("T")


# ---- GraphQL over HTTP -----------------------------------------------------------------------


class Api:
    """GraphQL over real HTTP with one user's bearer token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """The response's data; fails the test on GraphQL errors."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def ok(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The result of a one-field mutation; fails the test when it is an error type."""
        data = await self.execute(query, variables)
        (result,) = data.values()
        assert isinstance(result, dict), data
        assert "code" not in result, result
        return result


@contextlib.asynccontextmanager
async def api_client(url: str, token: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
    ) as http:
        yield Api(http)


# ---- graphql-transport-ws by hand ------------------------------------------------------------


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


class WsClient:
    """One graphql-transport-ws connection. A reader task sorts the server's messages by
    operation id, each with the time it arrived."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._inboxes: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {}
        self._ids = 0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, http_url: str, token: str | None, **options: Any
    ) -> AsyncIterator[WsClient]:
        """Connected and acknowledged (``connection_init`` with ``{"authorization": "Bearer
        <token>"}``); closed afterwards."""
        async with raw_connection(http_url, **options) as connection:
            client = cls(connection)
            await connection.send(json.dumps(connection_init(token)))
            ack = json.loads(await asyncio.wait_for(connection.recv(), 10))
            assert ack == {"type": "connection_ack"}, ack
            client.start_reading()
            try:
                yield client
            finally:
                await client.stop_reading()

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.connection:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.connection.send(json.dumps({"type": "pong"}))
                    continue
                self._inbox(str(message.get("id"))).put_nowait((time.time(), message))

    def _inbox(self, operation_id: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        return self._inboxes.setdefault(operation_id, asyncio.Queue())

    async def subscribe(self, query: str, variables: Mapping[str, Any] | None = None) -> str:
        self._ids += 1
        operation_id = str(self._ids)
        await self.connection.send(
            json.dumps(
                {
                    "id": operation_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": dict(variables or {})},
                }
            )
        )
        return operation_id

    async def complete(self, operation_id: str) -> None:
        await self.connection.send(json.dumps({"id": operation_id, "type": "complete"}))

    async def timed_message(
        self, operation_id: str, within: float = 10
    ) -> tuple[float, dict[str, Any]]:
        """The next message of the operation and when it arrived (``time.time()``)."""
        try:
            return await asyncio.wait_for(self._inbox(operation_id).get(), within)
        except TimeoutError:
            pytest.fail(f"no message for operation {operation_id} within {within:g}s")

    async def message(self, operation_id: str, within: float = 10) -> dict[str, Any]:
        return (await self.timed_message(operation_id, within))[1]

    async def until_complete(self, operation_id: str, within: float = 30) -> list[dict[str, Any]]:
        """Every message of the operation up to and without its ``complete``."""
        deadline = time.monotonic() + within
        messages: list[dict[str, Any]] = []
        while True:
            message = await self.message(operation_id, max(0.0, deadline - time.monotonic()))
            if message["type"] == "complete":
                return messages
            messages.append(message)

    def pending(self, operation_id: str) -> int:
        """Messages of the operation that arrived and were not taken yet."""
        return self._inbox(operation_id).qsize()


def connection_init(token: str | None) -> dict[str, Any]:
    payload = {} if token is None else {"authorization": f"Bearer {token}"}
    return {"type": "connection_init", "payload": payload}


@contextlib.asynccontextmanager
async def raw_connection(http_url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A websocket to /graphql offering graphql-transport-ws, without the machine's proxy."""
    options.setdefault("proxy", None)
    options.setdefault("subprotocols", [PROTOCOL])
    async with connect(ws_url(http_url), **options) as connection:
        yield connection


def data_of(message: Mapping[str, Any], field_name: str) -> dict[str, Any]:
    """The payload of a ``next`` message without errors."""
    assert message["type"] == "next", message
    payload = message["payload"]
    assert not payload.get("errors"), payload
    result: dict[str, Any] = payload["data"][field_name]
    return result


def error_codes(message: Mapping[str, Any]) -> list[str]:
    """The extension codes of a ``next`` message's errors (or of an ``error`` message)."""
    payload = message["payload"]
    errors = payload if message["type"] == "error" else payload.get("errors") or []
    return [str((error.get("extensions") or {}).get("code")) for error in errors]


# ---- the greeter on a running server ---------------------------------------------------------


def greeter_artifact() -> str:
    """The greeter behind a shell that first sleeps START_DELAY seconds (its configuration):
    how a test keeps a promotion in RESTARTING long enough to subscribe in the middle."""
    greeter = shlex.join([INSTANCE_PYTHON, str(GREETER)])
    return shlex.join(["sh", "-c", f'sleep "${{START_DELAY:-0}}"; exec {greeter}'])


GREETER_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": False},
    {"key": "START_DELAY", "type": "STRING", "required": False},
]


@dataclass
class Greeter:
    """The greeter in a project of its own, deployed to Development."""

    api: Api
    organization_id: str
    environments: dict[str, str]  # name -> id
    integration_id: str
    build_id: str

    async def deployment(self, environment: str) -> dict[str, Any]:
        data = await self.api.execute(
            """query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
                id status revision lastError } } }""",
            {"i": self.integration_id, "e": self.environments[environment]},
        )
        deployment: dict[str, Any] = data["integration"]["deployment"]
        return deployment

    async def wait_active(self, environment: str, revision: int) -> dict[str, Any]:
        async def active() -> dict[str, Any] | None:
            deployment = await self.deployment(environment)
            assert deployment["lastError"] is None, deployment
            ok = deployment["status"] == "ACTIVE" and deployment["revision"] == revision
            return deployment if ok else None

        return await eventually(active, within=30, what=f"{environment} at revision {revision}")

    async def promote(self, overrides: Mapping[str, str] | None = None) -> str:
        """Promote Development's build to Production; the promotion's id."""
        promotion = await self.api.ok(
            """mutation($input: PromoteInput!) { promote(input: $input) {
                __typename ... on Error { code message } ... on Promotion { id } } }""",
            {
                "input": {
                    "integrationId": self.integration_id,
                    "sourceEnvironmentId": self.environments["Development"],
                    "overrides": [{"key": k, "value": v} for k, v in (overrides or {}).items()],
                }
            },
        )
        return str(promotion["id"])

    async def promotion(self, promotion_id: str) -> dict[str, Any]:
        data = await self.api.execute(
            "query($id: ID!) { promotion(id: $id) { status events { status detail at } } }",
            {"id": promotion_id},
        )
        promotion: dict[str, Any] = data["promotion"]
        return promotion

    async def wait_promotion(self, promotion_id: str, status: str) -> dict[str, Any]:
        """The promotion once it reached ``status`` (fails if it ends otherwise)."""

        async def reached() -> dict[str, Any] | None:
            promotion = await self.promotion(promotion_id)
            seen = [event["status"] for event in promotion["events"]]
            if status in seen:
                return promotion
            assert promotion["status"] not in FINAL_STATUSES, promotion
            return None

        return await eventually(reached, within=30, what=f"{promotion_id} to be {status}")


async def new_greeter(api: Api, organization_slug: str = "default") -> Greeter:
    """A project of its own in the organization, the greeter in it, deployed to Development
    (ACTIVE at revision 1)."""
    organization = (
        await api.execute(
            "query($slug: String!) { organization(slug: $slug) { id environments { id name } } }",
            {"slug": organization_slug},
        )
    )["organization"]
    project = await api.ok(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
            __typename ... on Error { code message } ... on Project { id } } }""",
        {"input": {"organizationId": organization["id"], "name": f"Live {secrets.token_hex(3)}"}},
    )
    integration = await api.ok(
        """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
            __typename ... on Error { code message } ... on Integration { id } } }""",
        {"input": {"projectId": project["id"], "name": "Greeter", "configSchema": GREETER_SCHEMA}},
    )
    build = await api.ok(
        """mutation($input: CreateBuildInput!) { createBuild(input: $input) {
            __typename ... on Error { code message } ... on Build { id } } }""",
        {
            "input": {
                "integrationId": integration["id"],
                "version": "1.0.0",
                "artifact": greeter_artifact(),
            }
        },
    )
    environments = {e["name"]: e["id"] for e in organization["environments"]}
    greeter = Greeter(
        api=api,
        organization_id=organization["id"],
        environments=environments,
        integration_id=integration["id"],
        build_id=build["id"],
    )
    await api.ok(
        """mutation($input: DeployInput!) { deploy(input: $input) {
            __typename ... on Error { code message } ... on Deployment { id } } }""",
        {
            "input": {
                "integrationId": greeter.integration_id,
                "buildId": greeter.build_id,
                "environmentId": environments["Development"],
                "configuration": [{"key": "GREETING", "value": "Hello"}],
            }
        },
    )
    await greeter.wait_active("Development", 1)
    return greeter


# ---- promenade up ----------------------------------------------------------------------------


@dataclass
class Embedded:
    url: str
    data_dir: Path
    token: str  # the bootstrapped admin's, in the organization "default"


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """One ``promenade up`` for the live tests; every integration it started is gone after."""
    data_dir = tmp_path_factory.mktemp("embedded")
    gateway = {"PROMENADE_GATEWAY_PORT": str(free_port())}
    try:
        with running_promenade("up", data_dir, gateway) as promenade:
            token = promenade.first_stdout_line()
            yield Embedded(url=promenade.url, data_dir=data_dir, token=token)
    finally:
        kill_instances(data_dir / "runtime")


@pytest.fixture(scope="session")
def intruder(embedded: Embedded) -> str:
    """The token of a user of the embedded server who belongs to another organization only."""
    output = run_promenade(
        ["bootstrap", "--email", "intruder@live.test", "--org", "intruders"], embedded.data_dir
    )
    return output.strip().splitlines()[-1]


@pytest.fixture
async def admin(embedded: Embedded) -> AsyncIterator[Api]:
    async with api_client(embedded.url, embedded.token) as api:
        yield api


# ---- the app in this process, with a hub the test holds --------------------------------------


@dataclass
class LiveApp:
    url: str
    hub: EventHub
    token: str
    organization_id: str
    environments: dict[str, str]  # name -> id
    other_token: str  # a user of another organization
    _sequence: list[int] = field(default_factory=lambda: [0])

    def deployment_event(
        self, environment: str = "Development", *, revision: int = 1, integration: str = "int_x"
    ) -> Message:
        """A deployment event of the organization, as the bus brings it (numbered: the revision
        is unique unless given)."""
        self._sequence[0] += 1
        body = {
            "deploymentId": f"dep_{environment.lower()}",
            "integrationId": integration,
            "environmentId": self.environments[environment],
            "status": "ACTIVE",
            "revision": revision,
            "endpointUrl": None,
            "detail": f"event {self._sequence[0]}",
            "at": datetime.now(UTC).isoformat(),
            "organizationId": self.organization_id,
        }
        return Message(
            message_id=f"msg-{self._sequence[0]}",
            routing_key=f"deployment.{body['environmentId']}.{integration}",
            body=body,
        )

    async def publish(self, message: Message) -> None:
        await self.hub.dispatch(message)

    async def wait_subscribers(self, count: int, within: float = 10) -> None:
        async def reached() -> bool | None:
            return True if self.hub.subscriber_count == count else None

        await eventually(reached, within=within, what=f"{count} subscribers in the hub")


async def _user_with_organization(
    engine: AsyncEngine, email: str, slug: str
) -> tuple[User, Organization, str]:
    async with create_session_factory(engine)() as session:
        user = User(email=email, name=slug)
        session.add(user)
        await session.commit()
        organization = await create_organization(session, actor=user, slug=slug, name=slug)
        await session.commit()
        _, token = await create_api_token(session, actor=user, name="live")
        await session.commit()
        return user, organization, token


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """uvicorn serving ``app`` on a free port in this event loop; its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", **config)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def live_database(sqlite_template: Path, tmp_path: Path) -> Path:
    """A copy of the migrated SQLite template."""
    path = tmp_path / "promenade.db"
    path.write_bytes(sqlite_template.read_bytes())
    return path


@pytest.fixture
async def live_engine(live_database: Path) -> AsyncIterator[AsyncEngine]:
    path = live_database
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def live_app_on(
    engine: AsyncEngine, data_dir: Path, **uvicorn_config: Any
) -> AsyncIterator[LiveApp]:
    _, organization, token = await _user_with_organization(engine, "viewer@live.test", "viewers")
    _, _, other_token = await _user_with_organization(engine, "other@live.test", "others")
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(Environment).where(Environment.organization_id == organization.id)
        )
        environments = {row.name: row.id for row in rows}
    settings = Settings(data_dir=data_dir, secret_key=Fernet.generate_key().decode())
    app = create_app(settings, engine=engine)
    async with serve(app, **uvicorn_config) as url:
        yield LiveApp(
            url=url,
            hub=app.state.hub,
            token=token,
            organization_id=organization.id,
            environments=environments,
            other_token=other_token,
        )


@pytest.fixture
async def live_app(live_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[LiveApp]:
    async with live_app_on(live_engine, tmp_path) as live:
        yield live


def small_receive_buffer_socket(url: str, size: int = 4096) -> socket.socket:
    """A socket connected to the server of ``url`` whose receive buffer is small: a client
    that stops reading stops the server's writes soon."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock
