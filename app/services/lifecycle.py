"""The lifecycles of promotions, deployment changes and deployments: which status may follow
which, as data, and the one place where each one's status is written.

A promotion (or another request, see ``RequestKind``) waits for its reviews, is queued, and
then follows the change that carries it out; a change is queued, applies its configuration,
restarts the integration and ends. A final status has no successor. Writing a status
records it, with its event and the event's outbox row and, for the moves the audit log keeps
(PROMOTION_AUDIT, CHANGE_AUDIT), its audit entry, in the caller's transaction: a move that the
tables do not allow raises ``IllegalTransition`` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    RequestKind,
    User,
)
from app.models.base import utcnow
from app.services import audit
from app.services.errors import Conflict
from app.services.events import promotion_routing_key
from app.services.outbox import enqueue

P = PromotionStatus
C = ChangeStatus

# A promotion is made PENDING_APPROVAL, and from there filed for review (its first event,
# PENDING_APPROVAL again) or queued at once, or SCHEDULED when it may not start before its
# notBefore time (the schedule sweep queues it then, or fails it on a new blocker); once
# queued it follows its change.
PROMOTION_FLOW: Mapping[PromotionStatus, frozenset[PromotionStatus]] = {
    # A release's one request (kind RELEASE) SUCCEEDED once approved: its members run then,
    # each a promotion of its own.
    P.PENDING_APPROVAL: frozenset(
        {
            P.PENDING_APPROVAL,
            P.SCHEDULED,
            P.QUEUED,
            P.REJECTED,
            P.CANCELLED,
            P.EXPIRED,
            P.SUCCEEDED,
        }
    ),
    P.SCHEDULED: frozenset({P.QUEUED, P.CANCELLED, P.FAILED}),
    P.QUEUED: frozenset({P.APPLYING_CONFIGURATION, P.FAILED, P.CANCELLED, P.SUPERSEDED}),
    P.APPLYING_CONFIGURATION: frozenset({P.RESTARTING, P.FAILED}),
    P.RESTARTING: frozenset({P.VERIFYING, P.SUCCEEDED, P.FAILED}),
    P.VERIFYING: frozenset({P.SUCCEEDED, P.FAILED}),
    P.SUCCEEDED: frozenset(),
    P.FAILED: frozenset(),
    P.REJECTED: frozenset(),
    P.CANCELLED: frozenset(),
    P.EXPIRED: frozenset(),
    P.SUPERSEDED: frozenset(),
}

# A change is queued, taken by one worker (QUEUED -> APPLYING_CONFIGURATION, ``claim_change``:
# a conditional update, since a cancel may win the race), restarts the integration, is verified
# where the deployment has checks, and ends.
# A step that a worker died in runs again in the same status.
CHANGE_FLOW: Mapping[ChangeStatus, frozenset[ChangeStatus]] = {
    C.QUEUED: frozenset({C.APPLYING_CONFIGURATION, C.FAILED, C.CANCELLED, C.SUPERSEDED}),
    C.APPLYING_CONFIGURATION: frozenset({C.RESTARTING, C.FAILED}),
    C.RESTARTING: frozenset({C.VERIFYING, C.SUCCEEDED, C.FAILED}),
    # Live, its checks running: they pass (SUCCEEDED) or it is rolled back (FAILED).
    C.VERIFYING: frozenset({C.SUCCEEDED, C.FAILED}),
    C.SUCCEEDED: frozenset(),
    C.FAILED: frozenset(),
    C.CANCELLED: frozenset(),
    C.SUPERSEDED: frozenset(),
}

D = DeploymentStatus

# A deployment is NOT_DEPLOYED until a deploy or promotion is queued for it (IN_PROGRESS; back
# to NOT_DEPLOYED when that request is withdrawn before anything ran); a change that succeeds
# makes it ACTIVE (SUSPENDED for a suspend), one that fails while nothing ran yet ERROR, and
# an ACTIVE one whose instance stops for good is ERROR too; from ERROR a new deploy starts
# over, a restart or rollback recovers it.
DEPLOYMENT_FLOW: Mapping[DeploymentStatus, frozenset[DeploymentStatus]] = {
    D.NOT_DEPLOYED: frozenset({D.IN_PROGRESS}),
    D.IN_PROGRESS: frozenset({D.NOT_DEPLOYED, D.ACTIVE, D.SUSPENDED, D.ERROR}),
    D.ACTIVE: frozenset({D.ACTIVE, D.SUSPENDED, D.ERROR}),
    D.SUSPENDED: frozenset({D.ACTIVE, D.SUSPENDED, D.ERROR}),
    D.ERROR: frozenset({D.IN_PROGRESS, D.ACTIVE, D.SUSPENDED, D.ERROR}),
}

# The status a promotion shows while the change that carries it out is in each of its own.
PROMOTION_STATUS_OF_CHANGE: Mapping[ChangeStatus, PromotionStatus] = {
    C.QUEUED: P.QUEUED,
    C.APPLYING_CONFIGURATION: P.APPLYING_CONFIGURATION,
    C.RESTARTING: P.RESTARTING,
    C.VERIFYING: P.VERIFYING,
    C.SUCCEEDED: P.SUCCEEDED,
    C.FAILED: P.FAILED,
    C.CANCELLED: P.CANCELLED,
    C.SUPERSEDED: P.SUPERSEDED,
}


# The moves of a request that someone decides (or the expiry sweep: no actor), as the audit log
# names them. An approval is audited as the review it is (approvals.py): the last one queues
# the request, which is the change's to follow from then on.
PROMOTION_AUDIT: Mapping[PromotionStatus, str] = {
    P.REJECTED: "promotion.rejected",
    P.CANCELLED: "promotion.cancelled",
    P.EXPIRED: "promotion.expired",
}

# How a change ends, as the audit log names it, on the deployment the change is for (a
# cancelled change is its request's: promotion.cancelled).
CHANGE_AUDIT: Mapping[ChangeStatus, str] = {
    C.SUCCEEDED: "change.succeeded",
    C.FAILED: "change.failed",
}


class IllegalTransition(Conflict):
    """A status that may not follow the current one (a request decided meanwhile, say)."""

    def __init__(self, what: str, current: str, requested: str) -> None:
        super().__init__(f"the {what} is {current}: it cannot become {requested}")
        self.current = current
        self.requested = requested


def promotion_may_move(current: PromotionStatus, to: PromotionStatus) -> bool:
    return to in PROMOTION_FLOW[current]


def change_may_move(current: ChangeStatus, to: ChangeStatus) -> bool:
    return to in CHANGE_FLOW[current]


async def move_promotion(
    session: AsyncSession,
    promotion: Promotion,
    status: PromotionStatus,
    *,
    detail: str | None,
    actor: User | None = None,
    **audited: Any,
) -> PromotionEvent:
    """The promotion's new status, its event, the event's outbox row and, for a move in
    PROMOTION_AUDIT, its audit entry (by ``actor``, with ``audited`` as its detail)."""
    if not promotion_may_move(promotion.status, status) or (
        # Only a release's request SUCCEEDS without running: approved, its members run.
        promotion.status is P.PENDING_APPROVAL
        and status is P.SUCCEEDED
        and promotion.kind is not RequestKind.RELEASE
    ):
        raise IllegalTransition("request", promotion.status.value, status.value)
    now = utcnow()
    promotion.status = status
    if status.is_final:
        promotion.finished_at = now
    session.add(promotion)
    event = PromotionEvent(promotion_id=promotion.id, status=status, detail=detail, at=now)
    session.add(event)
    body: dict[str, Any] = {
        "promotionId": promotion.id,
        "status": status.value,
        "detail": detail,
        "at": now.isoformat(),
        "organizationId": promotion.organization_id,
    }
    await enqueue(
        session, exchange="event", routing_key=promotion_routing_key(promotion.id), body=body
    )
    if status in PROMOTION_AUDIT:
        audit.record(
            session,
            organization_id=promotion.organization_id,
            actor=actor,
            action=PROMOTION_AUDIT[status],
            subject_id=promotion.id,
            **audited,
        )
    return event


async def hold_promotion(session: AsyncSession, promotion: Promotion) -> bool:
    """Lock the request's row, for the rest of the transaction, if it still has the status
    read: two decisions on one request are serialized, and the second finds it decided (the
    request is read again then). False when it moved meanwhile."""
    held = await session.exec(
        update(Promotion)
        .where(col(Promotion.id) == promotion.id, col(Promotion.status) == promotion.status)
        .values(status=promotion.status)
    )
    if held.rowcount:
        return True
    await session.refresh(promotion)
    return False


def move_deployment(
    session: AsyncSession, deployment: Deployment, status: DeploymentStatus
) -> None:
    """The deployment's new status (the caller announces it, once its other fields are set)."""
    if status not in DEPLOYMENT_FLOW[deployment.status]:
        raise IllegalTransition("deployment", deployment.status.value, status.value)
    deployment.status = status
    session.add(deployment)


def move_change(
    session: AsyncSession,
    change: DeploymentChange,
    status: ChangeStatus,
    *,
    error: str | None = None,
    **audited: Any,
) -> None:
    """The change's new status; once it ends, when, and why (``error``: None once it
    succeeded), and for an end in CHANGE_AUDIT its audit entry (``audited``: more detail).
    Before that, the error of an earlier failed attempt stays."""
    if not change_may_move(change.status, status):
        raise IllegalTransition("change", change.status.value, status.value)
    change.status = status
    if status.is_final:
        change.error = error
        change.finished_at = utcnow()
    session.add(change)
    if status in CHANGE_AUDIT:
        audit.record(
            session,
            organization_id=change.organization_id,
            actor=change.actor_id,
            action=CHANGE_AUDIT[status],
            subject_id=change.deployment_id,
            change_id=change.id,
            kind=change.kind.value,
            promotion_id=change.promotion_id,
            **audited,
        )


async def claim_change(
    session: AsyncSession,
    change: DeploymentChange,
    status: ChangeStatus,
    *,
    error: str | None = None,
) -> bool:
    """``move_change`` for a change that another transaction may move at the same time (a
    worker taking a queued change, a cancel): one conditional UPDATE, atomic on both
    databases, that writes only while the row holds a status CHANGE_FLOW lets ``status``
    follow. False when another move came first and left it in none of them; the change is
    read again when it lost."""
    if not change_may_move(change.status, status):
        raise IllegalTransition("change", change.status.value, status.value)
    before = [current for current, following in CHANGE_FLOW.items() if status in following]
    values: dict[str, Any] = {"status": status}
    if status.is_final:
        values.update(error=error, finished_at=utcnow())
    taken = await session.exec(
        update(DeploymentChange)
        .where(col(DeploymentChange.id) == change.id, col(DeploymentChange.status).in_(before))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:
        await session.refresh(change)  # what the other move left
        return False
    # What the UPDATE wrote, as the row holds it now: no read back, and nothing to flush.
    for name, value in values.items():
        set_committed_value(change, name, value)
    return True


async def follow_change(
    session: AsyncSession, change: DeploymentChange, *, detail: str | None
) -> Promotion | None:
    """The promotion the change carries out, if any, takes the status that goes with the
    change's (PROMOTION_STATUS_OF_CHANGE), with its event; returns it."""
    if change.promotion_id is None:
        return None
    promotion = await session.get(Promotion, change.promotion_id)
    assert promotion is not None, change.promotion_id
    await move_promotion(
        session, promotion, PROMOTION_STATUS_OF_CHANGE[change.status], detail=detail
    )
    return promotion
