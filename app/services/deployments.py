"""Deployments: one per integration and environment of its project's pipeline."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, DeploymentStatus, Integration


async def ensure_deployments(
    session: AsyncSession, *, integrations: Iterable[Integration], environment_ids: Iterable[str]
) -> None:
    """Add the NOT_DEPLOYED rows that are missing. Rows of environments that left the pipeline
    are kept, with their configuration, in case the environment comes back."""
    integration_list = list(integrations)
    env_ids = list(environment_ids)
    if not integration_list or not env_ids:
        return
    existing = set(
        (
            await session.exec(
                select(Deployment.integration_id, Deployment.environment_id).where(
                    col(Deployment.integration_id).in_([i.id for i in integration_list])
                )
            )
        ).all()
    )
    for integration in integration_list:
        for env_id in env_ids:
            if (integration.id, env_id) not in existing:
                session.add(
                    Deployment(
                        organization_id=integration.organization_id,
                        integration_id=integration.id,
                        environment_id=env_id,
                    )
                )
    await session.flush()


async def deployed_in(
    session: AsyncSession,
    *,
    environment_ids: Iterable[str],
    project_ids: Iterable[str] | None = None,
) -> list[Deployment]:
    """Deployments that run something (anything but NOT_DEPLOYED) in these environments."""
    query = select(Deployment).where(
        col(Deployment.environment_id).in_(list(environment_ids)),
        col(Deployment.status) != DeploymentStatus.NOT_DEPLOYED,
    )
    if project_ids is not None:
        query = query.join(
            Integration, col(Integration.id) == col(Deployment.integration_id)
        ).where(col(Integration.project_id).in_(list(project_ids)))
    return list((await session.exec(query)).all())
