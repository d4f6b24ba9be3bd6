"""A deployment's history written as rows, with explicit times: builds made at given moments and
changes that ended at given moments, each successful one (and each that failed its
verification) with its revision, as the workers leave them. For the delivery metrics' tests,
whose answers are computed by hand from those times."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    Build,
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    RevisionCause,
)


async def deployment_of(
    session: AsyncSession, *, integration_id: str, environment_id: str
) -> Deployment:
    return (
        await session.exec(
            select(Deployment).where(
                Deployment.integration_id == integration_id,
                Deployment.environment_id == environment_id,
            )
        )
    ).one()


def add_build(
    session: AsyncSession, *, integration_id: str, version: str, created_at: datetime
) -> Build:
    build = Build(
        integration_id=integration_id, version=version, artifact="true", created_at=created_at
    )
    session.add(build)
    return build


async def add_change(
    session: AsyncSession,
    deployment: Deployment,
    kind: ChangeKind,
    status: ChangeStatus,
    *,
    build: Build,
    finished_at: datetime,
    revision: int | None = None,
    rollback_to: int | None = None,
) -> DeploymentChange:
    """A change that ended at ``finished_at``; with ``revision``, the revision it wrote."""
    change = DeploymentChange(
        organization_id=deployment.organization_id,
        deployment_id=deployment.id,
        kind=kind,
        status=status,
        build_id=build.id,
        rollback_to_revision=rollback_to,
        created_at=finished_at,
        finished_at=finished_at,
    )
    session.add(change)
    await session.flush()
    if revision is not None:
        session.add(
            DeploymentRevision(
                deployment_id=deployment.id,
                revision=revision,
                build_id=build.id,
                configuration_digest="0" * 64,
                snapshot_sealed="sealed",
                cause=RevisionCause(kind.value),
                change_id=change.id,
                created_at=finished_at,
            )
        )
        await session.flush()
    return change
