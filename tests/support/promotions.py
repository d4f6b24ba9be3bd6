"""Promotion rows written as the promotion service writes them, for tests that measure or
move what is already filed (the rules that file them are tested through the API)."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import Deployment, Environment, Project, Promotion, PromotionStatus, User
from app.services.projects import create_build, create_integration


async def promotion_of_new_integration(
    session: AsyncSession,
    box: SecretBox,
    *,
    admin: User,
    project: Project,
    name: str,
    status: PromotionStatus,
    **fields: Any,
) -> Promotion:
    """A new integration of the project with a build, and a promotion of that build from the
    organization's first environment to its last (added to the session, not committed)."""
    environments = (
        await session.exec(
            select(Environment)
            .where(Environment.organization_id == project.organization_id)
            .order_by(col(Environment.position))
        )
    ).all()
    source, target = environments[0], environments[-1]
    integration = await create_integration(session, actor=admin, project_id=project.id, name=name)
    build = await create_build(
        session, actor=admin, integration_id=integration.id, version="1.0", artifact="true"
    )
    deployment = (
        await session.exec(
            select(Deployment).where(
                Deployment.integration_id == integration.id,
                Deployment.environment_id == target.id,
            )
        )
    ).one()
    promotion = Promotion(
        organization_id=project.organization_id,
        integration_id=integration.id,
        build_id=build.id,
        source_environment_id=source.id,
        target_environment_id=target.id,
        deployment_id=deployment.id,
        status=status,
        requested_by_id=admin.id,
        overrides_sealed=box.seal_json({"overrides": [], "copied": []}),
        **fields,
    )
    session.add(promotion)
    return promotion
