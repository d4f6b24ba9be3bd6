"""The queue of a deployment's changes: a change recorded, with the command that tells the
data plane's workers about it in the same transaction (an outbox row); and a reviewed request
(a Promotion row of any kind) turned into the change it asked for.

The lowest layer of the services that change what runs: ``changes``, ``promotions`` and
``approvals`` all queue through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    Build,
    ChangeKind,
    ChangeStatus,
    DataPlane,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Environment,
    Promotion,
    PromotionStatus,
    RequestKind,
    User,
)
from app.models.promotions import FINAL_CHANGE_STATUSES
from app.services import audit
from app.services.dataplanes import routing_key
from app.services.events import announce_deployment
from app.services.lifecycle import claim_change, follow_change, move_deployment, move_promotion
from app.services.outbox import enqueue

# The kinds that run a build of their request's choosing: a newer build queued behind one that
# waits makes it pointless (``supersede_older_builds``).
SUPERSEDING_KINDS = frozenset({ChangeKind.DEPLOY, ChangeKind.PROMOTION})

# The change each kind of request becomes once it may run.
CHANGE_OF_REQUEST: Mapping[RequestKind, ChangeKind] = {
    RequestKind.PROMOTION: ChangeKind.PROMOTION,
    RequestKind.DEPLOY: ChangeKind.DEPLOY,
    RequestKind.CONFIGURATION: ChangeKind.CONFIG_CHANGE,
    RequestKind.RESTART: ChangeKind.RESTART,
    RequestKind.ROLLBACK: ChangeKind.ROLLBACK,
}
# The request a change is filed as where an approval policy protects its environment.
REQUEST_OF_CHANGE: Mapping[ChangeKind, RequestKind] = {
    change: request for request, change in CHANGE_OF_REQUEST.items()
}

# How the audit log names a change asked for directly. One that carries out a request is
# audited as the request (promotion.requested, deployment.change_requested) and its reviews.
REQUESTED_AUDIT: Mapping[ChangeKind, str] = {
    ChangeKind.DEPLOY: "deployment.deploy_requested",
    ChangeKind.CONFIG_CHANGE: "deployment.configuration_restart_requested",
    ChangeKind.RESTART: "deployment.restart_requested",
    ChangeKind.SUSPEND: "deployment.suspend_requested",
    ChangeKind.RESUME: "deployment.resume_requested",
    ChangeKind.ROLLBACK: "deployment.rollback_requested",
}


async def queue_change(
    session: AsyncSession,
    *,
    deployment: Deployment,
    kind: ChangeKind,
    actor: User | None,
    detail: str,
    build_id: str | None = None,
    promotion_id: str | None = None,
    rollback_to_revision: int | None = None,
    idempotency_key: str | None = None,
    expected_config_version: int | None = None,
    **audited: Any,
) -> DeploymentChange:
    """The change, QUEUED, with in the same transaction: the command that tells the data
    plane's workers (an outbox row), the deployment IN_PROGRESS where a deploy or promotion
    is its first run, the deployment's announcement (``detail``) and, for a change asked for
    directly, its audit entry (``audited``: the entry's detail)."""
    change = DeploymentChange(
        expected_config_version=expected_config_version,
        organization_id=deployment.organization_id,
        deployment_id=deployment.id,
        kind=kind,
        # A configuration change restarts the build that runs: it names none of its own.
        build_id=None if kind is ChangeKind.CONFIG_CHANGE else build_id,
        promotion_id=promotion_id,
        rollback_to_revision=rollback_to_revision,
        actor_id=actor.id if actor else None,
        idempotency_key=idempotency_key,
    )
    session.add(change)
    await session.flush()
    if kind in (ChangeKind.DEPLOY, ChangeKind.PROMOTION) and deployment.status in (
        DeploymentStatus.NOT_DEPLOYED,
        DeploymentStatus.ERROR,
    ):
        move_deployment(session, deployment, DeploymentStatus.IN_PROGRESS)
    await supersede_older_builds(session, change)
    await enqueue(
        session,
        exchange="command",
        routing_key=await data_plane_of(session, deployment),
        body={"change_id": change.id, "deployment_id": deployment.id},
    )
    await announce_deployment(session, deployment, detail=detail)
    if promotion_id is None and kind in REQUESTED_AUDIT:
        audit.record(
            session,
            organization_id=deployment.organization_id,
            actor=actor,
            action=REQUESTED_AUDIT[kind],
            subject_id=deployment.id,
            **audited,
        )
    return change


async def supersede_older_builds(
    session: AsyncSession, change: DeploymentChange
) -> list[DeploymentChange]:
    """The deployment's changes that wait (QUEUED) to run an older build than ``change``, a
    deploy or promotion just queued, end SUPERSEDED, their requests too: the newer build would
    run after them anyway, and an older build never runs over a newer one that is already
    asked for. "Older" is the build's creation order. A change a worker has taken runs on;
    the move is conditional, so that it cannot overwrite a worker taking the change at once.
    Rollbacks, restarts and configuration changes are not superseded: they ask for what they
    ask, whatever else is queued."""
    if change.kind not in SUPERSEDING_KINDS or change.build_id is None:
        return []
    newer = await session.get(Build, change.build_id)
    assert newer is not None, change.build_id
    waiting = await session.exec(
        select(DeploymentChange)
        .join(Build, col(Build.id) == col(DeploymentChange.build_id))
        .where(
            DeploymentChange.deployment_id == change.deployment_id,
            DeploymentChange.status == ChangeStatus.QUEUED,
            col(DeploymentChange.kind).in_(SUPERSEDING_KINDS),
            col(DeploymentChange.id) != change.id,
            or_(
                col(Build.created_at) < newer.created_at,
                and_(col(Build.created_at) == newer.created_at, col(Build.id) < newer.id),
            ),
        )
        .order_by(col(DeploymentChange.created_at))
    )
    superseded = []
    for older in waiting.all():
        reason = f"superseded by build {newer.version}, queued after it (change {change.id})"
        if not await claim_change(session, older, ChangeStatus.SUPERSEDED, error=reason):
            continue  # a worker took it first: it runs, then the newer one does
        promotion = await follow_change(session, older, detail=reason)
        if promotion is not None:
            promotion.error = reason
        audit.record(
            session,
            organization_id=older.organization_id,
            actor=change.actor_id,
            action="change.superseded",
            subject_id=older.deployment_id,
            change_id=older.id,
            kind=older.kind.value,
            promotion_id=older.promotion_id,
            superseded_by=change.id,
            build=newer.version,
        )
        superseded.append(older)
    return superseded


async def pending_change(session: AsyncSession, deployment_id: str) -> str | None:
    """The id of a change of the deployment that has not ended, if there is one."""
    return (
        await session.exec(
            select(DeploymentChange.id).where(
                DeploymentChange.deployment_id == deployment_id,
                col(DeploymentChange.status).not_in(FINAL_CHANGE_STATUSES),
            )
        )
    ).first()


async def data_plane_of(session: AsyncSession, deployment: Deployment) -> str:
    """The routing key of the data plane the deployment's environment runs on: its id, never
    its name (``local`` for the installation's own)."""
    plane = (
        await session.exec(
            select(DataPlane)
            .join(Environment, col(Environment.data_plane_id) == col(DataPlane.id))
            .where(Environment.id == deployment.environment_id)
        )
    ).one()
    return routing_key(plane)


async def queue_requested_change(
    session: AsyncSession, *, promotion: Promotion, detail: str, requester: User | None = None
) -> DeploymentChange:
    """A request that may run now (no review needed, or the last approval came): QUEUED, and
    the change it asked for queued for the workers. ``requester``: the request's author, when
    the caller has it at hand (it is read otherwise)."""
    await move_promotion(session, promotion, PromotionStatus.QUEUED, detail=detail)
    deployment = await session.get(Deployment, promotion.deployment_id)
    assert deployment is not None
    if requester is None or requester.id != promotion.requested_by_id:
        requester = await session.get(User, promotion.requested_by_id)
    kind = CHANGE_OF_REQUEST[promotion.kind]
    change = await queue_change(
        session,
        deployment=deployment,
        kind=kind,
        actor=requester,
        detail=f"{promotion.kind.value.lower()} {promotion.id} queued",
        build_id=promotion.build_id,
        promotion_id=promotion.id,
        rollback_to_revision=promotion.rollback_to_revision,
        # Reviewed: it runs what was reviewed, or not at all.
        expected_config_version=promotion.config_version,
    )
    return change
