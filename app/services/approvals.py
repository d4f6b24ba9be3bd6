"""Approval policies and the review of requests into protected environments.

In an environment with a policy, every change of what runs there is filed as a request
(PENDING_APPROVAL, a Promotion row of its kind) that keeps the rule it was filed under: a
promotion into it, and a deploy, a configuration change with a restart, a restart that would
apply values the running instance does not have, and a rollback there. Each eligible reviewer
reviews once; the last required approval queues it, and one rejection ends it. A request nobody
decides on in time expires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ApprovalPolicy,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Environment,
    Integration,
    Membership,
    Promotion,
    PromotionStatus,
    RequestKind,
    Review,
    ReviewDecision,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import audit
from app.services.auth import Permission, get_owned, role_in
from app.services.change_queue import pending_change, queue_requested_change
from app.services.configuration import ConfigChangeKind, ConfigDiff, diff_values, schema_of
from app.services.errors import (
    Blocker,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PromotionBlocked,
)
from app.services.events import announce_deployment
from app.services.lifecycle import move_deployment, move_promotion
from app.services.outbox import enqueue

MAX_EXPIRY_HOURS = 24 * 365


def approval_routing_key(organization_id: str) -> str:
    return f"approval.{organization_id}"


@dataclass(frozen=True)
class PolicyInput:
    environment_id: str
    required_approvals: int
    approver_roles: Sequence[Role] = (Role.ADMIN, Role.APPROVER)
    approver_ids: Sequence[str] = ()
    allow_self_approval: bool = False
    expires_after_hours: int | None = None


async def set_approval_policy(
    session: AsyncSession, *, actor: User, policy: PolicyInput
) -> Environment:
    environment = await get_owned(
        session, Environment, policy.environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    if policy.required_approvals < 1:
        raise InvalidInput("requiredApprovals must be at least 1", field="requiredApprovals")
    if policy.required_approvals > 20:
        raise InvalidInput("requiredApprovals must be at most 20", field="requiredApprovals")
    if policy.expires_after_hours is not None and not (
        1 <= policy.expires_after_hours <= MAX_EXPIRY_HOURS
    ):
        raise InvalidInput(
            f"expiresAfterHours must be between 1 and {MAX_EXPIRY_HOURS}", field="expiresAfterHours"
        )
    approver_ids = list(dict.fromkeys(policy.approver_ids))
    if approver_ids:
        members = set(
            (
                await session.exec(
                    select(Membership.user_id).where(
                        Membership.organization_id == environment.organization_id,
                        col(Membership.user_id).in_(approver_ids),
                    )
                )
            ).all()
        )
        for user_id in approver_ids:
            if user_id not in members:
                # As any object outside the organization: not found (whether the user exists
                # elsewhere is not this organization's to learn).
                raise NotFound(f"no member of the organization with id {user_id}", id=user_id)
    roles = sorted({role.value for role in policy.approver_roles})
    if not roles and not approver_ids:
        raise InvalidInput(
            "name reviewer roles or reviewers: nobody could approve otherwise",
            field="approverRoles",
        )
    existing = (
        await session.exec(
            select(ApprovalPolicy).where(ApprovalPolicy.environment_id == environment.id)
        )
    ).first()
    row = existing or ApprovalPolicy(
        organization_id=environment.organization_id,
        environment_id=environment.id,
        required_approvals=1,
    )
    row.required_approvals = policy.required_approvals
    row.approver_roles = roles
    row.approver_ids = approver_ids
    row.allow_self_approval = policy.allow_self_approval
    row.expires_after_hours = policy.expires_after_hours
    row.updated_at = utcnow()
    session.add(row)
    audit.record(
        session,
        organization_id=environment.organization_id,
        actor=actor,
        action="environment.approval_policy.set",
        subject_id=environment.id,
        required_approvals=row.required_approvals,
        approver_roles=roles,
        approver_ids=approver_ids,
        allow_self_approval=row.allow_self_approval,
        expires_after_hours=row.expires_after_hours,
    )
    await session.flush()
    return environment


async def remove_approval_policy(
    session: AsyncSession, *, actor: User, environment_id: str
) -> Environment:
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    existing = (
        await session.exec(
            select(ApprovalPolicy).where(ApprovalPolicy.environment_id == environment.id)
        )
    ).first()
    if existing is not None:
        await session.delete(existing)
        audit.record(
            session,
            organization_id=environment.organization_id,
            actor=actor,
            action="environment.approval_policy.removed",
            subject_id=environment.id,
        )
        await session.flush()
    return environment


async def policy_of(session: AsyncSession, environment_id: str) -> ApprovalPolicy | None:
    return (
        await session.exec(
            select(ApprovalPolicy).where(ApprovalPolicy.environment_id == environment_id)
        )
    ).first()


def rule_of(policy: ApprovalPolicy) -> dict[str, Any]:
    """The part of a policy a request keeps."""
    return {
        "roles": list(policy.approver_roles),
        "approver_ids": list(policy.approver_ids),
        "allow_self_approval": policy.allow_self_approval,
    }


async def file_request(
    session: AsyncSession, *, promotion: Promotion, policy: ApprovalPolicy
) -> None:
    """Make a new promotion a request under the policy, and tell its reviewers."""
    deployment = await session.get(Deployment, promotion.deployment_id)
    if deployment is not None:
        promotion.config_version = deployment.config_version
    promotion.required_approvals = policy.required_approvals
    promotion.approval_rule = rule_of(policy)
    if policy.expires_after_hours is not None:
        promotion.expires_at = promotion.requested_at + timedelta(hours=policy.expires_after_hours)
    await move_promotion(
        session,
        promotion,
        PromotionStatus.PENDING_APPROVAL,
        detail=f"{policy.required_approvals} approval(s) required",
    )
    await enqueue(
        session,
        exchange="event",
        routing_key=approval_routing_key(promotion.organization_id),
        body={"promotionId": promotion.id, "organizationId": promotion.organization_id},
    )


async def request_change(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    deployment: Deployment,
    kind: RequestKind,
    build_id: str,
    values: dict[str, str],
    rollback_to_revision: int | None = None,
) -> Promotion | None:
    """In an environment with an approval policy, a change of what runs there (a deploy, a
    configuration change, a restart that applies new values, a rollback) as a request, filed
    with its plan: how the running configuration changes. None where no review is needed (the
    caller queues the change). The values it will run with are the ones stored now: the change
    refuses to run if any was stored after the request was filed (``file_request`` records
    the configuration version)."""
    policy = await policy_of(session, deployment.environment_id)
    if policy is None:
        return None
    environment = await session.get(Environment, deployment.environment_id)
    integration = await session.get(Integration, deployment.integration_id)
    assert environment is not None and integration is not None
    if await pending_request_for(session, integration.id, environment.id):
        raise PromotionBlocked(
            f"a request for {integration.name} in {environment.name} is already waiting "
            "for reviews",
            blockers=[Blocker.REQUEST_ALREADY_PENDING],
        )
    schema = schema_of(integration)
    running = await running_values(session, box, deployment)
    changes = diff_values(schema, running, values, {k for k, v in schema.items() if v.secret})
    promotion = Promotion(
        organization_id=deployment.organization_id,
        integration_id=integration.id,
        build_id=build_id,
        source_environment_id=environment.id,
        target_environment_id=environment.id,
        deployment_id=deployment.id,
        status=PromotionStatus.PENDING_APPROVAL,
        kind=kind,
        rollback_to_revision=rollback_to_revision,
        requested_by_id=actor.id,
        overrides_sealed=box.seal_json(
            {"values": values, "changes": [dataclasses.asdict(c) for c in changes]}
        ),
    )
    session.add(promotion)
    await session.flush()
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action="deployment.change_requested",
        subject_id=deployment.id,
        request_id=promotion.id,
        kind=kind.value,
        changed_keys=[c.key for c in changes if c.kind is not ConfigChangeKind.UNCHANGED],
    )
    await file_request(session, promotion=promotion, policy=policy)
    return promotion


async def pending_request_for(
    session: AsyncSession, integration_id: str, environment_id: str
) -> str | None:
    """The id of the integration's request into the environment that waits for reviews."""
    return (
        await session.exec(
            select(Promotion.id).where(
                Promotion.integration_id == integration_id,
                Promotion.target_environment_id == environment_id,
                Promotion.status == PromotionStatus.PENDING_APPROVAL,
            )
        )
    ).first()


async def running_values(
    session: AsyncSession, box: SecretBox, deployment: Deployment
) -> dict[str, str]:
    """The configuration the deployment's instance runs with now (none: nothing runs)."""
    if deployment.running_change_id is None:
        return {}
    change = await session.get(DeploymentChange, deployment.running_change_id)
    if change is None or change.snapshot_sealed is None:
        return {}
    values: dict[str, str] = box.open_json(change.snapshot_sealed)
    return values


def requested_changes(box: SecretBox, promotion: Promotion) -> list[ConfigDiff]:
    """The plan filed with the request: how the configuration that runs changes."""
    sealed = box.open_json(promotion.overrides_sealed)
    return [
        ConfigDiff(**{**item, "kind": ConfigChangeKind(item["kind"])})
        for item in sealed.get("changes", [])
    ]


def why_not_reviewer(
    rule: dict[str, Any], *, reviewer_id: str, role: Role | None, requester_id: str
) -> str | None:
    """None when the user may review a request under this rule, else the reason."""
    if role is None:
        return "not a member of the organization"
    if reviewer_id == requester_id and not rule.get("allow_self_approval", False):
        return "the requester may not review their own request under this policy"
    if role.value in rule.get("roles", []) or reviewer_id in rule.get("approver_ids", []):
        return None
    return (
        f"the {role.value} role is not among the policy's reviewer roles "
        f"({', '.join(rule.get('roles', [])) or 'none'}) and you are not a named reviewer"
    )


async def _pending_request(
    session: AsyncSession, *, actor: User, promotion_id: str, verb: str
) -> tuple[Promotion, Role]:
    promotion = await get_owned(session, Promotion, promotion_id, actor=actor)
    role = await role_in(session, user_id=actor.id, organization_id=promotion.organization_id)
    assert role is not None  # get_owned checked membership
    if promotion.status is not PromotionStatus.PENDING_APPROVAL or not await _hold_pending(
        session, promotion.id
    ):
        await session.refresh(promotion)  # decided by someone else a moment ago
        raise Conflict(
            f"the request is {promotion.status.value}, no longer pending: nothing to {verb}"
        )
    if promotion.expires_at is not None and promotion.expires_at <= utcnow():
        # Past its time, though the sweep has not come by yet: it is over all the same.
        raise Conflict("the request expired before this review: file a new one")
    return promotion, role


async def _hold_pending(session: AsyncSession, promotion_id: str) -> bool:
    """Lock the request's row if it is still pending, for the rest of the transaction: two
    decisions on one request are serialized, and the second finds it decided."""
    held = await session.exec(
        update(Promotion)
        .where(
            col(Promotion.id) == promotion_id,
            col(Promotion.status) == PromotionStatus.PENDING_APPROVAL,
        )
        .values(status=PromotionStatus.PENDING_APPROVAL)
    )
    return bool(held.rowcount)


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
    reason = why_not_reviewer(
        promotion.approval_rule or {},
        reviewer_id=actor.id,
        role=role,
        requester_id=promotion.requested_by_id,
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
        Review(promotion_id=promotion.id, reviewer_id=actor.id, decision=decision, comment=comment)
    )
    await session.flush()
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action=f"promotion.{'approved' if verb == 'approve' else 'rejected'}",
        subject_id=promotion.id,
        comment=comment,
    )
    if decision is ReviewDecision.REJECTED:
        promotion.error = f"rejected by {actor.email}" + (f": {comment}" if comment else "")
        await move_promotion(session, promotion, PromotionStatus.REJECTED, detail=promotion.error)
        return promotion
    approvals = len(
        (
            await session.exec(
                select(Review.id).where(
                    Review.promotion_id == promotion.id, Review.decision == ReviewDecision.APPROVED
                )
            )
        ).all()
    )
    if approvals >= promotion.required_approvals:
        await queue_requested_change(
            session,
            promotion=promotion,
            detail=f"approved ({approvals}/{promotion.required_approvals})",
        )
    return promotion


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
    for promotion in due:
        if not await _hold_pending(session, promotion.id):
            continue  # decided meanwhile
        promotion.error = "no decision before the request expired"
        await move_promotion(session, promotion, PromotionStatus.EXPIRED, detail=promotion.error)
        audit.record(
            session,
            organization_id=promotion.organization_id,
            actor=None,
            action="promotion.expired",
            subject_id=promotion.id,
        )
    return due


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
        and why_not_reviewer(
            promotion.approval_rule or {},
            reviewer_id=user_id,
            role=role,
            requester_id=promotion.requested_by_id,
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
        # Conditional, so that it cannot overwrite a worker that has just taken the change.
        taken = await session.exec(
            update(DeploymentChange)
            .where(
                col(DeploymentChange.promotion_id) == promotion.id,
                col(DeploymentChange.status) == ChangeStatus.QUEUED,
            )
            .values(status=ChangeStatus.CANCELLED, finished_at=utcnow())
        )
        if not taken.rowcount:
            raise Conflict("the promotion has started running: it can no longer be cancelled")
        await settle_deployment(session, promotion.deployment_id)
    elif promotion.status is not PromotionStatus.PENDING_APPROVAL or not await _hold_pending(
        session, promotion.id
    ):
        await session.refresh(promotion)
        raise Conflict(
            f"the promotion is {promotion.status.value}: only a pending or queued "
            "promotion can be cancelled"
        )
    promotion.error = f"cancelled by {actor.email}"
    await move_promotion(session, promotion, PromotionStatus.CANCELLED, detail=promotion.error)
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action="promotion.cancelled",
        subject_id=promotion.id,
    )
    return promotion


async def settle_deployment(session: AsyncSession, deployment_id: str) -> None:
    """A deployment waiting for its first change goes back to NOT_DEPLOYED when that change is
    withdrawn and nothing else is pending."""
    deployment = await session.get(Deployment, deployment_id)
    if deployment is None or deployment.status is not DeploymentStatus.IN_PROGRESS:
        return
    if await pending_change(session, deployment_id) is None and deployment.revision == 0:
        move_deployment(session, deployment, DeploymentStatus.NOT_DEPLOYED)
        await announce_deployment(session, deployment, detail="nothing to deploy any more")
