"""Fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from PROMENADE_TEST_DATABASE_URL; when unset, from testcontainers; when no
container engine answers either, the tests fail with a message that says what to start.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app import migrate
from app.crypto import SecretBox
from app.db import create_engine, create_session_factory
from app.main import create_app
from app.models import Organization, User
from app.services.organizations import create_organization
from app.services.tokens import create_api_token
from app.settings import Settings, async_database_url
from tests.support.docker import connect as connect_docker

TESTS = Path(__file__).parent
# What a test needs beyond Python, as markers derived from its fixtures and its folder (not
# written by hand): `make test-fast` runs the tests that need none of them.
NEEDS = {
    "postgres": "needs PostgreSQL (the PostgreSQL run of a database test)",
    "rabbitmq": "needs RabbitMQ",
    "docker": "needs a Docker Engine",
    "processes": "runs the promenade command, its servers and workers as processes, or Node.js "
    "clients",
}
# Fixtures that bring a service, and the marker each one means.
SERVICE_FIXTURES = {"postgres_url": "postgres", "amqp_url": "rabbitmq", "docker_engine": "docker"}
SERVICE_PARAMS = {"postgres": "postgres", "rabbit": "rabbitmq"}
# Folders and modules whose tests run the `promenade` command itself, its servers and workers.
PROCESS_PATHS = {"e2e", "live", "test_cli.py", "test_walkthrough.py"}


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for need in sorted(_needs(item)):
            item.add_marker(need)


def _needs(item: pytest.Item) -> set[str]:
    fixtures = set(getattr(item, "fixturenames", ()))
    needs = {marker for name, marker in SERVICE_FIXTURES.items() if name in fixtures}
    # Fixtures that run each test twice (SQLite and PostgreSQL, in-process bus and RabbitMQ)
    # fetch the service only in the run that needs it.
    callspec = getattr(item, "callspec", None)
    params = list(callspec.params.values()) if callspec is not None else []
    needs.update(marker for param, marker in SERVICE_PARAMS.items() if param in params)
    if PROCESS_PATHS & set(item.path.relative_to(TESTS).parts):
        needs.add("processes")
    return needs


POSTGRES_HELP = (
    "These tests need PostgreSQL. Start one and set PROMENADE_TEST_DATABASE_URL "
    "(e.g. postgresql://postgres@127.0.0.1:5432/test), or make a Docker engine reachable for "
    "testcontainers. On the project's machines: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def _postgres_url() -> Iterator[str]:
    url = os.environ.get("PROMENADE_TEST_DATABASE_URL")
    if url:
        yield async_database_url(url)
        return
    failure = None
    try:
        # testcontainers warns about its own deprecated parts on import and start; the suite
        # turns warnings into errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:16-alpine", driver="asyncpg")
            container.start()
    except Exception as exc:  # no Docker engine, no image: say what to start instead
        failure = f"{POSTGRES_HELP} ({type(exc).__name__}: {exc})"
    if failure is not None:
        # The Docker client leaves its socket to the garbage collector: collect it here, where
        # its ResourceWarning does not fail the whole session.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.fail(failure, pytrace=False)
    try:
        yield async_database_url(container.get_connection_url())
    finally:
        container.stop()


async def _create_database(server_url: str) -> str:
    """A new, empty database on the server, migrated to head: each test session has its own, so
    that sessions running at the same time (several developers, CI) do not collide."""
    name = f"promenade_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def _drop_database(server_url: str, url: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            name = make_url(url).database
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test session, migrated to head."""
    for server_url in _postgres_url():
        try:
            url = asyncio.run(_create_database(server_url))
        except OSError as exc:
            pytest.fail(f"{POSTGRES_HELP} (cannot connect: {exc})", pytrace=False)
        try:
            yield url
        finally:
            asyncio.run(_drop_database(server_url, url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "promenade.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    async def prepare() -> None:
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(prepare())
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "promenade.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    if engine.dialect.name == "postgresql":
        tables = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """The tests' Docker Engine (tests/support/docker.py says which)."""
    client = connect_docker()
    yield client
    client.close()


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key)


async def make_user(session: AsyncSession, email: str, name: str | None = None) -> User:
    user = User(email=email, name=name or email.split("@")[0])
    session.add(user)
    await session.commit()
    return user


async def make_organization(session: AsyncSession, admin: User, slug: str = "acme") -> Organization:
    org = await create_organization(session, actor=admin, slug=slug, name=slug.title())
    await session.commit()
    return org


# ---- the API, over HTTP --------------------------------------------------------------------


class GraphQLClient:
    """A real HTTP client against the ASGI app, one bearer token per user."""

    def __init__(self, http: httpx.AsyncClient, session: AsyncSession) -> None:
        self.http = http
        self._session = session
        self._tokens: dict[str, str] = {}

    async def token_for(self, user: User) -> str:
        if user.id not in self._tokens:
            _, secret = await create_api_token(self._session, actor=user, name="test")
            await self._session.commit()
            self._tokens[user.id] = secret
        return self._tokens[user.id]

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, as_user: User
    ) -> dict[str, Any]:
        """The response's data; fails the test on GraphQL errors."""
        body = await self.raw(query, variables, as_user=as_user)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def raw(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        if as_user is not None:
            token = await self.token_for(as_user)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        body["status_code"] = response.status_code
        return body


@pytest.fixture
async def api(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[GraphQLClient]:
    settings = Settings(data_dir=tmp_path, secret_key=secret_key)
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://promenade.test") as http:
        yield GraphQLClient(http, session)
