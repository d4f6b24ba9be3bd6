"""The database engine and sessions: SQLite by default, PostgreSQL at scale, the same code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]

# How long a SQLite writer waits for another writer before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer writes; foreign keys are off in SQLite unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class RequestSession(AsyncSession):
    """The session of one GraphQL request, shared by resolvers that Strawberry runs
    concurrently (sibling fields, DataLoader batches). A session has one connection, which
    runs one statement at a time (asyncpg refuses overlapping ones): each call here waits
    for the one before it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn = asyncio.Lock()

    async def exec(self, *args: Any, **kwargs: Any) -> Any:
        async with self._turn:
            return await super().exec(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._turn:
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._turn:
            return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._turn:
            return await super().get(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        async with self._turn:
            await super().refresh(*args, **kwargs)

    async def delete(self, instance: object) -> None:
        async with self._turn:
            await super().delete(instance)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._turn:
            await super().flush(*args, **kwargs)

    async def commit(self) -> None:
        async with self._turn:
            await super().commit()

    async def rollback(self) -> None:
        async with self._turn:
            await super().rollback()

    async def close(self) -> None:
        # After the statement under way (a DataLoader's batch runs in a task of its own, which
        # the end of a request does not cancel): closing under it would return the connection
        # to the pool while it still runs, and the pool later throws it away with a traceback.
        async with self._turn:
            await super().close()


def create_session_factory(
    engine: AsyncEngine, *, class_: type[AsyncSession] = AsyncSession
) -> SessionFactory:
    # expire_on_commit off: objects stay readable after the commit that ends a mutation.
    return async_sessionmaker(engine, class_=class_, expire_on_commit=False)


@asynccontextmanager
async def closing(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session that is closed however the block ends: also when its task is cancelled (a
    client that went away), when closing it must not be cut short. A close cut short leaves
    its connection half returned, and the pool later logs "Cannot operate on a closed
    database" tracebacks as it throws the connection away."""
    session = factory()
    try:
        yield session
    finally:
        closed = asyncio.ensure_future(session.close())
        try:
            await asyncio.shield(closed)
        except asyncio.CancelledError:
            # Cancelled again while it closes: let the close finish, then go on cancelling.
            await asyncio.wait([closed])
            raise


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A unit of work: committed when the block ends normally, rolled back otherwise."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
