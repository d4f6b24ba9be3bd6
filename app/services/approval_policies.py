"""Approval policies: which environments need reviews of what runs there, how many, by whom,
and for how long a request waits. Changing a policy applies to new requests; pending ones keep
the rule they were filed under (``rule_of``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ApprovalPolicy,
    Environment,
    Membership,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.errors import (
    InvalidInput,
    NotFound,
)

MAX_EXPIRY_HOURS = 24 * 365


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
