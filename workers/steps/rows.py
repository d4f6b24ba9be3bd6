"""The rows every step reads: a change and its deployment, which exist while it runs."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, DeploymentChange


async def load_change(session: AsyncSession, change_id: str) -> DeploymentChange:
    change = await session.get(DeploymentChange, change_id)
    assert change is not None, change_id
    return change


async def load_deployment(session: AsyncSession, deployment_id: str) -> Deployment:
    deployment = await session.get(Deployment, deployment_id)
    assert deployment is not None, deployment_id
    return deployment
