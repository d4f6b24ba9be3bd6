"""Migrations: upgrade to head, agree with the models, downgrade to base, on both databases.

Each run gets a database of its own: a new SQLite file, or a new database on the PostgreSQL
server that is dropped afterwards (the shared test database stays at head for other tests).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app import migrate
from app.db import create_engine


async def _server_command(server_url: str, statement: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def server_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite, else the PostgreSQL server's URL (a sync fixture: postgres_url runs
    its own event loop, which it cannot do inside the test's)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def empty_engine(server_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a new database with no tables at all."""
    if server_url is None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        await engine.dispose()
        return
    name = f"promenade_migrations_{secrets.token_hex(4)}"
    await _server_command(server_url, f'CREATE DATABASE "{name}"')
    engine = create_engine(
        make_url(server_url).set(database=name).render_as_string(hide_password=False)
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        await _server_command(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_matches_models_and_downgrade_removes_everything(
    empty_engine: AsyncEngine,
) -> None:
    model_tables = set(SQLModel.metadata.tables)
    assert model_tables, "no model tables registered"

    await migrate.upgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_table_names) == model_tables | {"alembic_version"}
        differences = await connection.run_sync(_differences)
    assert differences == [], (
        f"the models and the migrations disagree; write a migration for: {differences}"
    )

    await migrate.downgrade(empty_engine, "base")
    assert await migrate.current_revision(empty_engine) is None
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_table_names) == {"alembic_version"}

    # Downgrade left nothing behind that stops the next upgrade (indexes, constraints, types).
    await migrate.upgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_table_names) == model_tables | {"alembic_version"}
        assert await connection.run_sync(_differences) == []
