"""Servers the live tests talk to: ``promenade up`` as a process (``Embedded``), and the ASGI
app served by uvicorn inside the test's event loop with an ``EventHub`` the test holds
(``LiveApp``): the test publishes deployment events straight into the hub and reads how many
subscribers it has."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from app.db import create_session_factory
from app.graphql.broadcasts import Broadcasts
from app.main import create_app
from app.messaging.bus import Message
from app.messaging.fanout import EventHub
from app.models import Environment
from app.services.tokens import create_api_token
from app.settings import Settings
from tests.processes import free_port
from tests.support.organizations import make_organization, make_user
from tests.support.waiting import eventually


@dataclass
class Embedded:
    url: str
    data_dir: Path
    token: str  # the bootstrapped admin's, in the organization "default"


@dataclass
class LiveApp:
    url: str
    hub: EventHub
    token: str
    organization_id: str
    environments: dict[str, str]  # name -> id
    other_token: str  # a user of another organization
    engine: AsyncEngine
    broadcasts: Broadcasts
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


async def _user_with_organization(engine: AsyncEngine, email: str, slug: str) -> tuple[str, str]:
    """A user and their new organization; the organization's id and the user's token."""
    async with create_session_factory(engine)() as session:
        user = await make_user(session, email, slug)
        organization = await make_organization(session, user, slug)
        _, token = await create_api_token(session, actor=user, name="live")
        await session.commit()
        return organization.id, token


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


@contextlib.asynccontextmanager
async def live_app_on(
    engine: AsyncEngine,
    data_dir: Path,
    *,
    settings: dict[str, Any] | None = None,
    **uvicorn_config: Any,
) -> AsyncIterator[LiveApp]:
    organization_id, token = await _user_with_organization(engine, "viewer@live.test", "viewers")
    _, other_token = await _user_with_organization(engine, "other@live.test", "others")
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(Environment).where(Environment.organization_id == organization_id)
        )
        environments = {row.name: row.id for row in rows}
    configured = Settings(
        data_dir=data_dir, secret_key=Fernet.generate_key().decode(), **(settings or {})
    )
    app = create_app(configured, engine=engine)
    async with serve(app, **uvicorn_config) as url:
        yield LiveApp(
            url=url,
            hub=app.state.hub,
            token=token,
            organization_id=organization_id,
            environments=environments,
            other_token=other_token,
            engine=engine,
            broadcasts=app.state.broadcasts,
        )


def small_receive_buffer_socket(url: str, size: int = 4096) -> socket.socket:
    """A socket connected to the server of ``url`` whose receive buffer is small: a client
    that stops reading stops the server's writes soon."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock
