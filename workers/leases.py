"""One change at a time per deployment: a lease row-lock with an expiry, renewed while held.

A worker that dies holding a lease stops renewing it; the next worker takes it once it expires.
``lease`` and ``unlease`` are statements of the caller's transaction (the step machine looks for
the deployment's next change in the same one); ``take_lease`` and ``release_lease`` are each a
transaction of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlmodel import col, or_, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionFactory, session_scope
from app.models import Deployment, DeploymentStatus
from app.models.base import utcnow

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)


async def lease(
    session: AsyncSession,
    deployment_id: str,
    owner: str,
    ttl: timedelta = LEASE_TTL,
    *,
    while_running: str | None = None,
) -> bool:
    """Take (or renew) the lease if it is free, expired, or ours. One UPDATE: atomic on both
    databases (a second one waits for the first's commit, then finds the lease taken). With
    ``while_running``, only if the deployment is ACTIVE and runs that change: what the caller
    read of it before is still what it is, for as long as it holds the lease."""
    now = utcnow()
    conditions = [
        col(Deployment.id) == deployment_id,
        or_(
            col(Deployment.lease_owner).is_(None),
            col(Deployment.lease_expires_at) < now,
            col(Deployment.lease_owner) == owner,
        ),
    ]
    if while_running is not None:
        conditions += [
            col(Deployment.status) == DeploymentStatus.ACTIVE,
            col(Deployment.running_change_id) == while_running,
        ]
    result = await session.exec(
        update(Deployment).where(*conditions).values(lease_owner=owner, lease_expires_at=now + ttl)
    )
    return bool(result.rowcount)


async def unlease(session: AsyncSession, deployment_id: str, owner: str) -> None:
    await session.exec(
        update(Deployment)
        .where(col(Deployment.id) == deployment_id, col(Deployment.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def take_lease(
    sessions: SessionFactory,
    deployment_id: str,
    owner: str,
    ttl: timedelta = LEASE_TTL,
    *,
    while_running: str | None = None,
) -> bool:
    """``lease`` in a transaction of its own."""
    async with session_scope(sessions) as session:
        return await lease(session, deployment_id, owner, ttl, while_running=while_running)


async def release_lease(sessions: SessionFactory, deployment_id: str, owner: str) -> None:
    async with session_scope(sessions) as session:
        await unlease(session, deployment_id, owner)


@contextlib.asynccontextmanager
async def renewing_lease(
    sessions: SessionFactory, deployment_id: str, owner: str, ttl: timedelta = LEASE_TTL
) -> AsyncIterator[None]:
    """Keep renewing a lease the caller holds while the block runs (releasing it is the
    caller's: it does so with what it does next)."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            try:
                await take_lease(sessions, deployment_id, owner, ttl)
            except Exception:  # a database hiccup: the next round tries again
                log.warning("could not renew the lease of %s", deployment_id, exc_info=True)

    renewal = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
