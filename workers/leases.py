"""One change at a time per deployment: a lease row-lock with an expiry, renewed while held.

A worker that dies holding a lease stops renewing it; the next worker takes it once it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlmodel import col, or_, update

from app.db import SessionFactory, session_scope
from app.models import Deployment, DeploymentStatus
from app.models.base import utcnow

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)
POLL_INTERVAL_S = 0.2


async def take_lease(
    sessions: SessionFactory,
    deployment_id: str,
    owner: str,
    ttl: timedelta = LEASE_TTL,
    *,
    while_running: str | None = None,
) -> bool:
    """Take (or renew) the lease if it is free, expired, or ours. One UPDATE: atomic on both
    databases. With ``while_running``, only if the deployment is ACTIVE and runs that change:
    what the caller read of it before is still what it is, for as long as it holds the lease."""
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
    async with session_scope(sessions) as session:
        result = await session.exec(
            update(Deployment)
            .where(*conditions)
            .values(lease_owner=owner, lease_expires_at=now + ttl)
        )
        return bool(result.rowcount)


async def release_lease(sessions: SessionFactory, deployment_id: str, owner: str) -> None:
    async with session_scope(sessions) as session:
        await session.exec(
            update(Deployment)
            .where(col(Deployment.id) == deployment_id, col(Deployment.lease_owner) == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


@contextlib.asynccontextmanager
async def holding_lease(
    sessions: SessionFactory,
    deployment_id: str,
    owner: str,
    ttl: timedelta = LEASE_TTL,
    *,
    taken: bool = False,
) -> AsyncIterator[None]:
    """Wait for the deployment's lease (unless ``taken``: the caller just took it), keep
    renewing it while the block runs, release it."""
    # Polling: the holder may be another process, so there is no in-process event to wait on.
    while not taken and not await take_lease(sessions, deployment_id, owner, ttl):  # noqa: ASYNC110
        await asyncio.sleep(POLL_INTERVAL_S)

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
        await release_lease(sessions, deployment_id, owner)
