"""Requests into protected environments: in an environment with an approval policy, every
change of what runs there is filed as a request (PENDING_APPROVAL, a Promotion row of its kind)
that keeps the rules it was filed under and the plan of how the running configuration changes:
a promotion into it, and a deploy, a configuration change with a restart, a restart that would
apply values the running instance does not have, and a rollback there."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ApprovalPolicy,
    Deployment,
    DeploymentChange,
    Environment,
    Integration,
    Promotion,
    PromotionStatus,
    RequestKind,
    User,
)
from app.services import audit, configuration_groups
from app.services.approval_policies import policy_of
from app.services.approval_rules import describe_required, rules_of_policy
from app.services.configuration import ConfigChangeKind, ConfigDiff, diff_values, schema_of
from app.services.errors import (
    Blocker,
    PromotionBlocked,
)
from app.services.lifecycle import move_promotion
from app.services.outbox import enqueue


def approval_routing_key(organization_id: str) -> str:
    return f"approval.{organization_id}"


async def file_request(
    session: AsyncSession, *, promotion: Promotion, policy: ApprovalPolicy
) -> None:
    """Make a new promotion a request under the policy, and tell its reviewers."""
    deployment = await session.get(Deployment, promotion.deployment_id)
    if deployment is not None:
        promotion.config_version = deployment.config_version
    rules = rules_of_policy(policy)
    promotion.required_approvals = rules.required_approvals
    promotion.approval_rule = rules.as_json()
    if policy.expires_after_hours is not None:
        promotion.expires_at = promotion.requested_at + timedelta(hours=policy.expires_after_hours)
    await move_promotion(
        session, promotion, PromotionStatus.PENDING_APPROVAL, detail=describe_required(rules)
    )
    await tell_reviewers(session, promotion=promotion)


async def tell_reviewers(
    session: AsyncSession, *, promotion: Promotion, emergency: bool = False
) -> None:
    """An event for ``approvalRequests``: a request to review, or (``emergency``) a promotion
    that went past the reviews, for the target's reviewers to know of."""
    body: dict[str, object] = {
        "promotionId": promotion.id,
        "organizationId": promotion.organization_id,
    }
    if emergency:
        body["emergency"] = True
    await enqueue(
        session,
        exchange="event",
        routing_key=approval_routing_key(promotion.organization_id),
        body=body,
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
    # A key outside the schema comes from a configuration group: secret, unless a group that
    # gives it now or gave what runs says it is not.
    plain = await configuration_groups.plain_group_keys(session, deployment)
    secrets = {k for k in {*running, *values} if k not in schema and k not in plain}
    secrets |= {k for k, v in schema.items() if v.secret}
    changes = diff_values(schema, running, values, secrets, secrets)
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
