"""How a change ends: SUCCEEDED, with the deployment's new revision written in the same commit
(the database refuses a second row for one revision number, so it is never written twice), or
FAILED with the reason, while whatever ran before keeps running. Where the deployment has
verification checks, the revision is written as the change goes VERIFYING instead (its instance
serves), and the checks' outcome ends it: SUCCEEDED, or FAILED with the revision before it
restored by an automatic rollback."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    RevisionCause,
)
from app.services.change_queue import queue_change
from app.services.events import announce_deployment
from app.services.lifecycle import follow_change, move_change, move_deployment
from app.services.verification import Outcome, record_run
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


# Kinds whose new instance is verified where the deployment has checks. A rollback is not: it
# restores what ran (and an automatic one must not roll back again).
VERIFIED_KINDS = frozenset(
    {
        ChangeKind.DEPLOY,
        ChangeKind.PROMOTION,
        ChangeKind.CONFIG_CHANGE,
        ChangeKind.RESTART,
        ChangeKind.RESUME,
    }
)


async def succeed(session: AsyncSession, change: DeploymentChange, endpoint: str | None) -> None:
    """The change's instance serves: its revision is written and the deployment runs it; the
    change SUCCEEDED, or VERIFYING where the deployment has checks for it to pass first."""
    if change.status.is_final or change.status is ChangeStatus.VERIFYING:
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
                snapshot_groups=change.snapshot_groups,
                cause=cause,
                change_id=change.id,
                promotion_id=change.promotion_id,
                actor_id=change.actor_id,
                reason=change.reason,
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
    if deployment.verification is not None and change.kind in VERIFIED_KINDS:
        move_change(session, change, ChangeStatus.VERIFYING)
        await follow_change(
            session, change, detail=f"revision {deployment.revision} is live: verifying"
        )
        await announce_deployment(session, deployment, detail=f"{change.kind.value} verifying")
        return
    await _succeeded(session, change, deployment)


async def _succeeded(
    session: AsyncSession, change: DeploymentChange, deployment: Deployment
) -> None:
    move_change(session, change, ChangeStatus.SUCCEEDED, revision=deployment.revision)
    count_finished(session, change)
    await follow_change(session, change, detail=f"revision {deployment.revision} is live")
    await announce_deployment(session, deployment, detail=f"{change.kind.value} succeeded")


async def verified(
    session: AsyncSession, change: DeploymentChange, outcome: Outcome, started_at: datetime
) -> None:
    """The checks of a VERIFYING change passed: it SUCCEEDED; the run is kept."""
    if change.status is not ChangeStatus.VERIFYING:
        return
    deployment = await load_deployment(session, change.deployment_id)
    record_run(session, deployment, outcome, started_at=started_at, change_id=change.id)
    await _succeeded(session, change, deployment)


async def verification_failed(
    session: AsyncSession, change: DeploymentChange, outcome: Outcome, started_at: datetime
) -> None:
    """The checks of a VERIFYING change failed: it FAILED with each check's answer, and the
    revision before it is restored by a ROLLBACK change queued in the same commit (the next
    change this worker runs), whose revision keeps the failed verification as its reason. A
    first revision has nothing before it: the deployment is ERROR."""
    if change.status is not ChangeStatus.VERIFYING:
        return
    deployment = await load_deployment(session, change.deployment_id)
    record_run(session, deployment, outcome, started_at=started_at, change_id=change.id)
    reason = f"revision {deployment.revision}: {outcome.summary()}"[:2000]
    deployment.last_error = reason
    move_change(session, change, ChangeStatus.FAILED, error=reason, reason=reason)
    count_finished(session, change)
    promotion = await follow_change(session, change, detail=reason)
    if promotion is not None:
        promotion.error = reason
    previous = (
        await session.exec(
            select(DeploymentRevision).where(
                DeploymentRevision.deployment_id == deployment.id,
                DeploymentRevision.revision == deployment.revision - 1,
            )
        )
    ).first()
    if previous is None:
        move_deployment(session, deployment, DeploymentStatus.ERROR)
        await announce_deployment(session, deployment, detail=f"{change.kind.value} failed")
        return
    rollback = await queue_change(
        session,
        deployment=deployment,
        kind=ChangeKind.ROLLBACK,
        actor=None,
        detail=f"verification failed: rollback to revision {previous.revision} queued",
        build_id=previous.build_id,
        rollback_to_revision=previous.revision,
    )
    rollback.reason = reason
    session.add(rollback)


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
