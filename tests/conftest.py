"""Fixtures: every database test runs on SQLite and on a real PostgreSQL server; and the
markers of what each test needs, derived from its fixtures and folder.

PostgreSQL comes from PROMENADE_TEST_DATABASE_URL; when unset, from testcontainers; when no
container engine answers either, the tests fail with a message that says what to start
(tests/support/postgres.py).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app import migrate
from app.crypto import SecretBox
from app.db import create_engine, create_session_factory
from app.main import create_app
from app.settings import Settings
from tests.processes import PROMENADE
from tests.support.docker import connect as connect_docker

# GraphQLClient, make_organization and make_user are re-exported ("as"): tests in
# tests/services and tests/workers still import them from here.
from tests.support.graphql_client import GraphQLClient as GraphQLClient
from tests.support.markers import NEEDS, needs
from tests.support.organizations import make_organization as make_organization
from tests.support.organizations import make_user as make_user
from tests.support.postgres import new_database, postgres_server


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for need in sorted(needs(item)):
            item.add_marker(need)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test session, migrated to head."""
    for server_url in postgres_server():
        with new_database(server_url) as url:
            yield url


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
def promenade_command() -> Path:
    """The `promenade` command of the environment the tests run in; a test that runs it is in
    the processes tier."""
    command = Path(PROMENADE)
    if not command.exists():
        pytest.fail(f"no promenade command beside {sys.executable}: pip install -e .")
    return command


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key)


@pytest.fixture
async def api(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[GraphQLClient]:
    settings = Settings(data_dir=tmp_path, secret_key=secret_key)
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://promenade.test") as http:
        yield GraphQLClient(http, session)
