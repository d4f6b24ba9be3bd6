"""How a change ends: SUCCEEDED, with the deployment's new revision written in the same commit
(the database refuses a second row for one revision number, so it is never written twice), or
FAILED with the reason, while whatever ran before keeps running."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    RevisionCause,
)
from app.services.events import announce_deployment
from app.services.lifecycle import follow_change, move_change, move_deployment
from workers.metrics import count_finished
from workers.steps.rows import load_deployment

# Kinds that apply a new revision; SUSPEND and RESUME stop and start the current one.
REVISION_CAUSES = {
    ChangeKind.DEPLOY: RevisionCause.DEPLOY,
    ChangeKind.PROMOTION: RevisionCause.PROMOTION,
    ChangeKind.CONFIG_CHANGE: RevisionCause.CONFIG_CHANGE,
    ChangeKind.RESTART: RevisionCause.RESTART,
    ChangeKind.ROLLBACK: RevisionCause.ROLLBACK,
}


async def succeed(session: AsyncSession, change: DeploymentChange, endpoint: str | None) -> None:
    if change.status.is_final:
        return
    deployment = await load_deployment(session, change.deployment_id)
    cause = REVISION_CAUSES.get(change.kind)
    if cause is not None:
        assert change.build_id and change.snapshot_sealed and change.snapshot_digest
        deployment.revision += 1
        session.add(
            DeploymentRevision(
                deployment_id=deployment.id,
                revision=deployment.revision,
                build_id=change.build_id,
                configuration_digest=change.snapshot_digest,
                snapshot_sealed=change.snapshot_sealed,
                cause=cause,
                change_id=change.id,
                promotion_id=change.promotion_id,
                actor_id=change.actor_id,
            )
        )
    if change.kind is ChangeKind.SUSPEND:
        move_deployment(session, deployment, DeploymentStatus.SUSPENDED)
        deployment.endpoint_url = None
        deployment.running_change_id = None
    else:
        move_deployment(session, deployment, DeploymentStatus.ACTIVE)
        deployment.build_id = change.build_id
        deployment.endpoint_url = endpoint
        deployment.running_change_id = change.id
        if change.snapshot_config_version is not None:
            deployment.applied_config_version = change.snapshot_config_version
    deployment.last_error = None
    move_change(session, change, ChangeStatus.SUCCEEDED, revision=deployment.revision)
    count_finished(session, change)
    await follow_change(session, change, detail=f"revision {deployment.revision} is live")
    await announce_deployment(session, deployment, detail=f"{change.kind.value} succeeded")


async def fail(session: AsyncSession, change: DeploymentChange, reason: str) -> None:
    """The change failed; whatever ran before keeps running."""
    if change.status.is_final:
        return
    deployment = await load_deployment(session, change.deployment_id)
    deployment.last_error = reason
    if deployment.status is DeploymentStatus.IN_PROGRESS:
        move_deployment(session, deployment, DeploymentStatus.ERROR)
    move_change(session, change, ChangeStatus.FAILED, error=reason, reason=reason[:2000])
    count_finished(session, change)
    promotion = await follow_change(session, change, detail=reason)
    if promotion is not None:
        promotion.error = reason
    await announce_deployment(session, deployment, detail=f"{change.kind.value} failed")
