"""Status changes, recorded and announced in the same transaction.

Each announcement is an outbox row (an event on ``promenade.events``) written with the change it
announces; bodies have the shape of the contract's ``PromotionEvent`` and ``DeploymentEvent``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment
from app.models.base import utcnow
from app.services.outbox import enqueue


def promotion_routing_key(promotion_id: str) -> str:
    return f"promotion.{promotion_id}"


def deployment_routing_key(environment_id: str, integration_id: str) -> str:
    return f"deployment.{environment_id}.{integration_id}"


async def announce_deployment(
    session: AsyncSession, deployment: Deployment, *, detail: str | None = None
) -> None:
    now = utcnow()
    deployment.updated_at = now
    session.add(deployment)
    body: dict[str, Any] = {
        "deploymentId": deployment.id,
        "integrationId": deployment.integration_id,
        "environmentId": deployment.environment_id,
        "status": deployment.status.value,
        "revision": deployment.revision,
        "endpointUrl": deployment.endpoint_url,
        "detail": detail,
        "at": now.isoformat(),
        "organizationId": deployment.organization_id,
    }
    await enqueue(
        session,
        exchange="event",
        routing_key=deployment_routing_key(deployment.environment_id, deployment.integration_id),
        body=body,
    )
