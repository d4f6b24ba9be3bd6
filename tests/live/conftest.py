"""Live subscriptions: real servers, real websocket clients.

- ``embedded``: one ``promenade up`` for the whole session (SQLite, in-process bus, a worker and
  its gateway), with the bootstrapped admin's token; each test sets up a project of its own in
  the ``default`` organization. ``intruder`` is a second user with an organization of their own.
- ``live_app``: the ASGI app served by uvicorn on a free port inside the test's event loop,
  with an ``EventHub`` the test holds: the test publishes deployment events straight into the
  hub and reads how many subscribers it has.

The helpers are in tests/support: servers.py (``Embedded``, ``LiveApp``), graphql_ws.py
(``WsClient``, graphql-transport-ws by hand: what the tests look at are close codes and raw
messages), delayed_greeter.py; the real clients of frontends and scripts (graphql-ws, gql) are
in test_real_clients.py.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from tests.processes import free_port, kill_instances, run_promenade, running_promenade
from tests.support.graphql_client import GraphQLClient, graphql_over_http
from tests.support.servers import Embedded, LiveApp, live_app_on


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
async def admin(embedded: Embedded) -> AsyncIterator[GraphQLClient]:
    async with graphql_over_http(embedded.url, embedded.token, timeout_s=30) as api:
        yield api


@pytest.fixture
def live_database(sqlite_template: Path, tmp_path: Path) -> Path:
    """A copy of the migrated SQLite template."""
    path = tmp_path / "promenade.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
async def live_engine(live_database: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{live_database}")
    yield engine
    await engine.dispose()


@pytest.fixture
async def live_app(live_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[LiveApp]:
    async with live_app_on(live_engine, tmp_path) as live:
        yield live
