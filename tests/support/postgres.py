"""PostgreSQL for the tests: the server (PROMENADE_TEST_DATABASE_URL; when set empty, one that
testcontainers starts), and databases of a test session's, module's or test's own on it, so
that runs at the same time (several developers, CI) do not collide."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import make_url, text

from app import migrate
from app.db import create_engine
from app.settings import async_database_url

POSTGRES_HELP = (
    "These tests need PostgreSQL. Start one and set PROMENADE_TEST_DATABASE_URL "
    "(e.g. postgresql://postgres@127.0.0.1:5432/test), or make a Docker engine reachable for "
    "testcontainers. On the project's machines: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def postgres_server() -> Iterator[str]:
    """Yields the server's URL once (stopping the container afterwards, if it started one);
    fails the test with what to start when there is none."""
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


async def _on_server(server_url: str, statement: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


async def create_database(server_url: str, *, migrated: bool = True) -> str:
    """A new database on the server, migrated to head unless told (a test that runs
    ``promenade migrate`` itself); its URL."""
    name = f"promenade_test_{os.getpid()}_{secrets.token_hex(3)}"
    await _on_server(server_url, f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
    return url


async def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    await _on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def new_database(server_url: str, *, migrated: bool = True) -> Iterator[str]:
    """A database of its own (``create_database``), dropped afterwards. From synchronous code:
    it runs an event loop of its own."""
    try:
        url = asyncio.run(create_database(server_url, migrated=migrated))
    except OSError as exc:
        pytest.fail(f"{POSTGRES_HELP} (cannot connect: {exc})", pytrace=False)
    try:
        yield url
    finally:
        asyncio.run(drop_database(server_url, url))
