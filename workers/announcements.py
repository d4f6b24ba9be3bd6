"""Announcing unfinished changes again: after a restart of the embedded bus (its commands live
in memory) and for changes stranded by a worker that died holding a lease. A duplicate command
is harmless: whoever takes a deployment's lease runs its pending changes once."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import col, or_, select

from app.db import SessionFactory
from app.messaging.bus import Bus, Message
from app.models import DataPlane, Deployment, DeploymentChange, Environment
from app.models.base import utcnow
from app.models.promotions import FINAL_CHANGE_STATUSES
from app.services.dataplanes import served_by

log = logging.getLogger(__name__)


async def announce_unfinished_changes(
    sessions: SessionFactory,
    bus: Bus,
    data_plane: str,
    *,
    sender: str,
    stranded_before: datetime | None = None,
) -> int:
    """Publish a command for every change of the data plane (a routing key) that has not
    ended; with
    ``stranded_before``, only for those older than that whose deployment's lease is free or
    expired and whose environment is not frozen (those wait for the freeze to end)."""
    query = (
        select(DeploymentChange.id, DeploymentChange.deployment_id)
        .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
        .join(Environment, col(Environment.id) == col(Deployment.environment_id))
        .join(DataPlane, col(DataPlane.id) == col(Environment.data_plane_id))
        .where(
            served_by(data_plane),
            col(DeploymentChange.status).not_in(FINAL_CHANGE_STATUSES),
        )
    )
    now = utcnow()
    if stranded_before is not None:
        query = query.where(
            col(DeploymentChange.created_at) < stranded_before,
            col(Environment.frozen).is_(False),
            or_(col(Deployment.lease_owner).is_(None), col(Deployment.lease_expires_at) < now),
        )
    async with sessions() as session:
        unfinished = (await session.exec(query)).all()
    for change_id, deployment_id in unfinished:
        await bus.publish_command(
            Message(
                message_id=f"{sender}-{change_id}-{now.timestamp():.0f}",
                routing_key=data_plane,
                body={"change_id": change_id, "deployment_id": deployment_id},
            )
        )
    if unfinished:
        log.info("announced %d unfinished change(s) again (%s)", len(unfinished), sender)
    return len(unfinished)
