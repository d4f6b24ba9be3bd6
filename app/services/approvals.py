"""The review of requests into protected environments (filed by change_requests.py under the
rules of an approval policy, approval_rules.py): each eligible reviewer reviews once, and the
approval counts toward every rule they satisfy; the approval that meets the last rule queues
the request, and one rejection ends it. A request nobody decides on in time expires; the
requester or an ADMIN may cancel it until a worker takes its change.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Environment,
    Promotion,
    PromotionStatus,
    RequestKind,
    Review,
    ReviewDecision,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import approval_policies, audit
from app.services.approval_rules import describe_progress, rules_of_policy, rules_of_request
from app.services.auth import get_owned, role_in
from app.services.change_queue import pending_change, queue_requested_change
from app.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
)
from app.services.events import announce_deployment
from app.services.lifecycle import (
    claim_change,
    hold_promotion,
    move_deployment,
    move_promotion,
)
from app.services.windows import earliest_start


async def _pending_request(
    session: AsyncSession, *, actor: User, promotion_id: str, verb: str
) -> tuple[Promotion, Role]:
    promotion = await get_owned(session, Promotion, promotion_id, actor=actor)
    role = await role_in(session, user_id=actor.id, organization_id=promotion.organization_id)
    assert role is not None  # get_owned checked membership
    if promotion.status is not PromotionStatus.PENDING_APPROVAL or not await hold_promotion(
        session, promotion
    ):
        # Decided by someone else a moment ago.
        raise Conflict(
            f"the request is {promotion.status.value}, no longer pending: nothing to {verb}"
        )
    if promotion.expires_at is not None and promotion.expires_at <= utcnow():
        # Past its time, though the sweep has not come by yet: it is over all the same.
        raise Conflict("the request expired before this review: file a new one")
    return promotion, role


async def _review(
    session: AsyncSession,
    *,
    actor: User,
    promotion_id: str,
    decision: ReviewDecision,
    comment: str | None,
) -> Promotion:
    verb = "approve" if decision is ReviewDecision.APPROVED else "reject"
    promotion, role = await _pending_request(
        session, actor=actor, promotion_id=promotion_id, verb=verb
    )
    rules = rules_of_request(promotion)
    reason = rules.why_not_reviewer(
        reviewer_id=actor.id, role=role, requester_id=promotion.requested_by_id
    )
    if reason is not None:
        raise Forbidden(f"you may not review this request: {reason}")
    if comment is not None and len(comment) > 2000:
        raise InvalidInput("comment must be at most 2000 characters", field="comment")
    earlier = (
        await session.exec(
            select(Review).where(
                Review.promotion_id == promotion.id, Review.reviewer_id == actor.id
            )
        )
    ).first()
    if earlier is not None:
        raise Conflict(f"you reviewed this request already ({earlier.decision.value})")
    session.add(
        Review(
            promotion_id=promotion.id,
            reviewer_id=actor.id,
            decision=decision,
            comment=comment,
            counted_toward=rules.satisfied_by(actor.id, role),
        )
    )
    await session.flush()
    if decision is ReviewDecision.REJECTED:
        promotion.error = f"rejected by {actor.email}" + (f": {comment}" if comment else "")
        await move_promotion(
            session,
            promotion,
            PromotionStatus.REJECTED,
            detail=promotion.error,
            actor=actor,
            comment=comment,
        )
        return promotion
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action="promotion.approved",
        subject_id=promotion.id,
        comment=comment,
    )
    reviews = (await session.exec(select(Review).where(Review.promotion_id == promotion.id))).all()
    progress = rules.progress(reviews)
    if all(rule.met for rule in progress):
        approved = f"approved ({describe_progress(progress)})"
        if promotion.kind is RequestKind.RELEASE:
            # The release's members run now, each a promotion of its own (releases.py).
            await move_promotion(
                session, promotion, PromotionStatus.SUCCEEDED, detail=f"{approved}: released"
            )
            return promotion
        later = await _scheduled_for(session, promotion)
        if later is not None:
            promotion.not_before = later
            await move_promotion(
                session,
                promotion,
                PromotionStatus.SCHEDULED,
                detail=f"{approved}; scheduled for {later.isoformat()}",
            )
            return promotion
        await queue_requested_change(session, promotion=promotion, detail=approved)
    return promotion


async def _scheduled_for(session: AsyncSession, promotion: Promotion) -> datetime | None:
    """When an approved promotion may start, if not now: its notBefore, or outside the
    target's deployment windows the next window start."""
    if promotion.kind is not RequestKind.PROMOTION:
        return None
    target = await session.get(Environment, promotion.target_environment_id)
    assert target is not None
    return earliest_start(target.deployment_windows, promotion.not_before, utcnow())


async def approve(
    session: AsyncSession, *, actor: User, promotion_id: str, comment: str | None = None
) -> Promotion:
    return await _review(
        session,
        actor=actor,
        promotion_id=promotion_id,
        decision=ReviewDecision.APPROVED,
        comment=comment,
    )


async def reject(
    session: AsyncSession, *, actor: User, promotion_id: str, comment: str | None = None
) -> Promotion:
    return await _review(
        session,
        actor=actor,
        promotion_id=promotion_id,
        decision=ReviewDecision.REJECTED,
        comment=comment,
    )


async def expire_due(session: AsyncSession, *, now: datetime | None = None) -> list[Promotion]:
    """Requests past their expiry become EXPIRED (the sweep; safe to run anywhere, any time)."""
    now = now or utcnow()
    due = list(
        (
            await session.exec(
                select(Promotion).where(
                    Promotion.status == PromotionStatus.PENDING_APPROVAL,
                    col(Promotion.expires_at).is_not(None),
                    col(Promotion.expires_at) <= now,
                )
            )
        ).all()
    )
    expired = []
    for promotion in due:
        if not await hold_promotion(session, promotion):
            continue  # decided meanwhile
        promotion.error = "no decision before the request expired"
        await move_promotion(session, promotion, PromotionStatus.EXPIRED, detail=promotion.error)
        expired.append(promotion)
    return expired


async def awaits_review_by(session: AsyncSession, *, user: User, promotion: Promotion) -> bool:
    """Whether the request shows in the user's pending approvals: one they may still review,
    or, for an ADMIN, any pending request of the organization."""
    if promotion.status is not PromotionStatus.PENDING_APPROVAL:
        return False
    role = await role_in(session, user_id=user.id, organization_id=promotion.organization_id)
    reviewers = (
        await session.exec(select(Review.reviewer_id).where(Review.promotion_id == promotion.id))
    ).all()
    return awaits_review(promotion, user_id=user.id, role=role, reviewer_ids=set(reviewers))


async def hears_of_emergency(session: AsyncSession, *, user: User, promotion: Promotion) -> bool:
    """Whether the user is told of an emergency promotion: an ADMIN of its organization, or
    someone who could review requests under the target's approval policy."""
    if promotion.emergency_reason is None:
        return False
    role = await role_in(session, user_id=user.id, organization_id=promotion.organization_id)
    if role is None or user.id == promotion.requested_by_id:
        return False
    if role is Role.ADMIN:
        return True
    policy = await approval_policies.policy_of(session, promotion.target_environment_id)
    return policy is not None and bool(rules_of_policy(policy).satisfied_by(user.id, role))


def awaits_review(
    promotion: Promotion, *, user_id: str, role: Role | None, reviewer_ids: Collection[str]
) -> bool:
    """``awaits_review_by`` with what it reads already read: the user's role in the request's
    organization and who reviewed it so far."""
    if promotion.status is not PromotionStatus.PENDING_APPROVAL or role is None:
        return False
    if role is Role.ADMIN:
        return True
    return (
        user_id not in reviewer_ids
        and rules_of_request(promotion).why_not_reviewer(
            reviewer_id=user_id, role=role, requester_id=promotion.requested_by_id
        )
        is None
    )


async def cancel(session: AsyncSession, *, actor: User, promotion_id: str) -> Promotion:
    """The requester or an ADMIN cancels a promotion that has not started running."""
    promotion = await get_owned(session, Promotion, promotion_id, actor=actor)
    role = await role_in(session, user_id=actor.id, organization_id=promotion.organization_id)
    if actor.id != promotion.requested_by_id and role is not Role.ADMIN:
        raise Forbidden("only the requester or an ADMIN may cancel a promotion")
    if promotion.status is PromotionStatus.QUEUED:
        change = (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.promotion_id == promotion.id)
            )
        ).first()
        # Conditional, so that it cannot overwrite a worker that has just taken the change.
        if (
            change is None
            or change.status is not ChangeStatus.QUEUED
            or not await claim_change(session, change, ChangeStatus.CANCELLED)
        ):
            raise Conflict("the promotion has started running: it can no longer be cancelled")
        await settle_deployment(session, promotion.deployment_id)
    elif promotion.status not in (
        PromotionStatus.PENDING_APPROVAL,
        PromotionStatus.SCHEDULED,
    ) or not await hold_promotion(session, promotion):
        raise Conflict(
            f"the promotion is {promotion.status.value}: only a pending, scheduled or queued "
            "promotion can be cancelled"
        )
    promotion.error = f"cancelled by {actor.email}"
    await move_promotion(
        session, promotion, PromotionStatus.CANCELLED, detail=promotion.error, actor=actor
    )
    return promotion


async def settle_deployment(session: AsyncSession, deployment_id: str) -> None:
    """A deployment that runs nothing and waits for a change (IN_PROGRESS) goes back to what
    it was when that change is withdrawn and nothing else is pending: NOT_DEPLOYED when it
    never ran, ERROR when what ran before failed or stopped (its last error stays)."""
    deployment = await session.get(Deployment, deployment_id)
    if deployment is None or deployment.status is not DeploymentStatus.IN_PROGRESS:
        return
    if await pending_change(session, deployment_id) is not None:
        return
    if deployment.revision == 0:
        move_deployment(session, deployment, DeploymentStatus.NOT_DEPLOYED)
        await announce_deployment(session, deployment, detail="nothing to deploy any more")
    else:
        move_deployment(session, deployment, DeploymentStatus.ERROR)
        await announce_deployment(session, deployment, detail="the change was withdrawn")
