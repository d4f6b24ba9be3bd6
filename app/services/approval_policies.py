"""Approval policies: which environments need reviews of what runs there, under which rules
(how many approvals, by whom: approval_rules.py), and for how long a request waits. Changing a
policy applies to new requests; pending ones keep the rules they were filed under."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from app.services.approval_rules import DEFAULT_RULE_NAME, ApprovalRule, RequestRules
from app.services.auth import Permission, get_owned
from app.services.errors import (
    InvalidInput,
    NotFound,
)

MAX_EXPIRY_HOURS = 24 * 365
MAX_APPROVALS = 20
MAX_RULES = 10
MAX_NAMED = 50


@dataclass(frozen=True)
class RuleInput:
    name: str
    required_approvals: int
    approver_roles: Sequence[Role] = ()
    approver_ids: Sequence[str] = ()


@dataclass(frozen=True)
class PolicyInput:
    """One rule (``required_approvals`` from ``approver_roles`` and ``approver_ids``) or,
    with ``rules``, several, all of which must be met."""

    environment_id: str
    required_approvals: int | None = None
    approver_roles: Sequence[Role] = (Role.ADMIN, Role.APPROVER)
    approver_ids: Sequence[str] = ()
    allow_self_approval: bool = False
    expires_after_hours: int | None = None
    rules: Sequence[RuleInput] | None = None


async def set_approval_policy(
    session: AsyncSession, *, actor: User, policy: PolicyInput
) -> Environment:
    environment = await get_owned(
        session, Environment, policy.environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    if policy.expires_after_hours is not None and not (
        1 <= policy.expires_after_hours <= MAX_EXPIRY_HOURS
    ):
        raise InvalidInput(
            f"expiresAfterHours must be between 1 and {MAX_EXPIRY_HOURS}", field="expiresAfterHours"
        )
    rules = await _checked_rules(session, environment.organization_id, policy)
    request_rules = RequestRules(rules=rules, allow_self_approval=policy.allow_self_approval)
    kept = request_rules.as_json()
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
    row.rules = kept["rules"]
    row.required_approvals = request_rules.required_approvals
    row.approver_roles = kept["roles"]
    row.approver_ids = kept["approver_ids"]
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
        approver_roles=row.approver_roles,
        approver_ids=row.approver_ids,
        rules=row.rules,
        allow_self_approval=row.allow_self_approval,
        expires_after_hours=row.expires_after_hours,
    )
    await session.flush()
    return environment


async def _checked_rules(
    session: AsyncSession, organization_id: str, policy: PolicyInput
) -> tuple[ApprovalRule, ...]:
    """The policy's rules, each checked: a unique name, a count from 1 to 20, reviewers who
    are members of the organization, enough of them to meet it. A typed error names the field
    at fault (``rules[1].requiredApprovals``); the ids are checked first, so that an id of
    another organization's is not found, whatever else is wrong."""
    named = [("approverIds", policy.approver_ids)] + [
        (f"rules[{i}].approverIds", rule.approver_ids) for i, rule in enumerate(policy.rules or ())
    ]
    for field, ids in named:
        if len(set(ids)) > MAX_NAMED:
            raise InvalidInput(f"a rule names at most {MAX_NAMED} reviewers", field=field)
    await _check_members(session, organization_id, [i for _, ids in named for i in ids])
    if policy.rules is None:
        if policy.required_approvals is None:
            raise InvalidInput(
                "give requiredApprovals (one rule) or rules", field="requiredApprovals"
            )
        given = [
            RuleInput(
                name=DEFAULT_RULE_NAME,
                required_approvals=policy.required_approvals,
                approver_roles=policy.approver_roles,
                approver_ids=policy.approver_ids,
            )
        ]
        prefixes = [""]
    else:
        if policy.required_approvals is not None or policy.approver_ids:
            raise InvalidInput(
                "give either requiredApprovals with approverRoles and approverIds (one rule) "
                "or rules, not both",
                field="rules",
            )
        if not 1 <= len(policy.rules) <= MAX_RULES:
            raise InvalidInput(f"a policy has from 1 to {MAX_RULES} rules", field="rules")
        given = list(policy.rules)
        prefixes = [f"rules[{i}]." for i in range(len(given))]
    rules = []
    seen: set[str] = set()
    for rule, prefix in zip(given, prefixes, strict=True):
        name = rule.name.strip()
        if not 1 <= len(name) <= 100:
            raise InvalidInput("a rule's name has 1 to 100 characters", field=f"{prefix}name")
        if name.casefold() in seen:
            raise InvalidInput(f"two rules are named {name!r}", field=f"{prefix}name")
        seen.add(name.casefold())
        rules.append(_checked_rule(rule, name, prefix))
    return tuple(rules)


def _checked_rule(rule: RuleInput, name: str, prefix: str) -> ApprovalRule:
    count_field = f"{prefix}requiredApprovals"
    if rule.required_approvals < 1:
        raise InvalidInput("requiredApprovals must be at least 1", field=count_field)
    if rule.required_approvals > MAX_APPROVALS:
        raise InvalidInput(f"requiredApprovals must be at most {MAX_APPROVALS}", field=count_field)
    approver_ids = list(dict.fromkeys(rule.approver_ids))
    roles = sorted({role.value for role in rule.approver_roles})
    if not roles and not approver_ids:
        raise InvalidInput(
            "name reviewer roles or reviewers: nobody could approve otherwise",
            field=f"{prefix}approverRoles",
        )
    if not roles and rule.required_approvals > len(approver_ids):
        raise InvalidInput(
            f"the rule {name!r} needs {rule.required_approvals} approvals but names only "
            f"{len(approver_ids)} reviewer(s)",
            field=count_field,
        )
    return ApprovalRule(
        name=name,
        required_approvals=rule.required_approvals,
        roles=tuple(roles),
        approver_ids=tuple(approver_ids),
    )


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


async def _check_members(session: AsyncSession, organization_id: str, user_ids: list[str]) -> None:
    """NotFound unless every named reviewer is a member of the organization: as for any object
    outside it (whether the user exists elsewhere is not this organization's to learn)."""
    user_ids = list(dict.fromkeys(user_ids))
    if not user_ids:
        return
    members = set(
        (
            await session.exec(
                select(Membership.user_id).where(
                    Membership.organization_id == organization_id,
                    col(Membership.user_id).in_(user_ids),
                )
            )
        ).all()
    )
    for user_id in dict.fromkeys(user_ids):
        if user_id not in members:
            raise NotFound(f"no member of the organization with id {user_id}", id=user_id)
