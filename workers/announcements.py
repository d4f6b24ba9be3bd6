"""Announcing unfinished changes again, through the outbox as the API announced them first:
after a restart of the embedded bus (its commands live in memory), and for changes stranded
with no command in flight (a worker died holding the lease after the commands behind it were
acknowledged, or a later look at a change failed). A duplicate command is harmless: whoever
takes a deployment's lease runs its pending changes once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlmodel import col, or_, select

from app.db import SessionFactory, session_scope
from app.models import DataPlane, Deployment, DeploymentChange, Environment, Promotion
from app.models.base import utcnow
from app.models.promotions import FINAL_CHANGE_STATUSES
from app.services.dataplanes import served_by
from app.services.outbox import enqueue

log = logging.getLogger(__name__)


async def announce_unfinished_changes(
    sessions: SessionFactory,
    data_plane: str,
    *,
    why: str,
    stranded_before: datetime | None = None,
    after_commit: Callable[[], None] = lambda: None,
) -> int:
    """A command, in the outbox, for every change of the data plane (a routing key) that has
    not ended; with ``stranded_before``, only for those older than that whose deployment's
    lease is free or expired and whose environment is not frozen (those wait for the freeze to
    end; an emergency promotion's and an automatic rollback's do not). ``after_commit`` wakes
    the process's relay."""
    query = (
        select(DeploymentChange.id, DeploymentChange.deployment_id)
        .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
        .join(Environment, col(Environment.id) == col(Deployment.environment_id))
        .join(DataPlane, col(DataPlane.id) == col(Environment.data_plane_id))
        .outerjoin(Promotion, col(Promotion.id) == col(DeploymentChange.promotion_id))
        .where(
            served_by(data_plane),
            col(DeploymentChange.status).not_in(FINAL_CHANGE_STATUSES),
        )
    )
    if stranded_before is not None:
        query = query.where(
            col(DeploymentChange.created_at) < stranded_before,
            or_(
                col(Environment.frozen).is_(False),
                col(Promotion.emergency_reason).is_not(None),
                col(DeploymentChange.reason).is_not(None),
            ),
            or_(col(Deployment.lease_owner).is_(None), col(Deployment.lease_expires_at) < utcnow()),
        )
    async with session_scope(sessions) as session:
        unfinished = (await session.exec(query)).all()
        for change_id, deployment_id in unfinished:
            await enqueue(
                session,
                exchange="command",
                routing_key=data_plane,
                body={"change_id": change_id, "deployment_id": deployment_id},
            )
    if unfinished:
        after_commit()
        log.info("announced %d unfinished change(s) again (%s)", len(unfinished), why)
    return len(unfinished)
