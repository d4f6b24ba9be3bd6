"""Promotions: the same build moves from one environment to the next of the pipeline.

Configuration is the target's own: its values, plus the request's overrides, plus (only when
asked) the source's non-secret values for keys the target has none for. Secrets never move.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ApprovalPolicy,
    Build,
    Deployment,
    DeploymentStatus,
    Environment,
    Integration,
    Project,
    Promotion,
    PromotionStatus,
    RequestKind,
    User,
)
from app.services import approval_policies, audit, change_requests
from app.services.auth import Permission, get_owned
from app.services.change_queue import queue_requested_change
from app.services.configuration import (
    ConfigDiff,
    ConfigEntry,
    deployment_for,
    diff_values,
    missing_keys,
    plaintext_values,
    schema_of,
    validate_entries,
)
from app.services.errors import (
    Blocker,
    Conflict,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.pipelines import stage_environment_ids


@dataclass(frozen=True)
class PromotionRequest:
    integration_id: str
    source_environment_id: str
    target_environment_id: str | None = None
    overrides: Sequence[ConfigEntry] = ()
    copy_source_configuration: bool = False
    message: str | None = None
    idempotency_key: str | None = None


@dataclass
class Plan:
    integration: Integration
    source: Environment
    target: Environment
    source_deployment: Deployment
    target_deployment: Deployment
    build: Build | None
    overrides: list[ConfigEntry]
    copied: list[ConfigEntry]
    missing: list[str]
    changes: list[ConfigDiff]
    # The target's approval policy: a promotion there waits for its reviews.
    policy: ApprovalPolicy | None = None
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def requires_approval(self) -> bool:
        return self.policy is not None


async def _environment(
    session: AsyncSession, integration: Integration, env_id: str, field_name: str
) -> Environment:
    environment = await session.get(Environment, env_id)
    if environment is None or environment.organization_id != integration.organization_id:
        raise NotFound(f"no environment with id {env_id}", id=env_id)
    return environment


async def plan_promotion(
    session: AsyncSession, *, actor: User, box: SecretBox, request: PromotionRequest
) -> Plan:
    """Every check of ``promote``, and what it would change, without changing anything."""
    integration = await get_owned(
        session, Integration, request.integration_id, actor=actor, permission=Permission.DEVELOP
    )
    project = await session.get(Project, integration.project_id)
    assert project is not None
    stages = await stage_environment_ids(session, project.pipeline_id)
    source = await _environment(
        session, integration, request.source_environment_id, "sourceEnvironmentId"
    )
    blockers: list[Blocker] = []
    if request.target_environment_id is not None:
        target = await _environment(
            session, integration, request.target_environment_id, "targetEnvironmentId"
        )
    else:
        position = stages.index(source.id) if source.id in stages else -1
        if position < 0 or position + 1 >= len(stages):
            where = (
                "is the last environment of the pipeline"
                if position >= 0
                else "is not in the project's pipeline"
            )
            raise PromotionBlocked(
                f"{source.name} {where}: there is no next environment to promote to",
                blockers=[
                    Blocker.ENVIRONMENT_NOT_IN_PIPELINE
                    if position < 0
                    else Blocker.NOT_NEXT_ENVIRONMENT
                ],
            )
        target = await _environment(
            session, integration, stages[position + 1], "targetEnvironmentId"
        )
    if source.id not in stages or target.id not in stages:
        blockers.append(Blocker.ENVIRONMENT_NOT_IN_PIPELINE)
    elif stages.index(target.id) != stages.index(source.id) + 1:
        blockers.append(Blocker.NOT_NEXT_ENVIRONMENT)
    source_deployment = await _deployment(session, integration, source.id)
    target_deployment = await _deployment(session, integration, target.id)
    if source_deployment.status is not DeploymentStatus.ACTIVE:
        blockers.append(Blocker.SOURCE_NOT_ACTIVE)
    if target.frozen:
        blockers.append(Blocker.TARGET_FROZEN)
    if await change_requests.pending_request_for(session, integration.id, target.id):
        blockers.append(Blocker.REQUEST_ALREADY_PENDING)
    policy = await approval_policies.policy_of(session, target.id)
    build = (
        await session.get(Build, source_deployment.build_id) if source_deployment.build_id else None
    )

    schema = schema_of(integration)
    overrides = validate_entries(integration, request.overrides, field="overrides")
    before = await plaintext_values(session, box=box, deployment_id=target_deployment.id)
    after = dict(before)
    for entry in overrides:
        if entry.value is None:
            after.pop(entry.key, None)
        else:
            after[entry.key] = entry.value
    copied: list[ConfigEntry] = []
    if request.copy_source_configuration:
        source_values = await plaintext_values(session, box=box, deployment_id=source_deployment.id)
        # Copied values fill keys the target has no value for and the request leaves alone: a
        # key the request removes stays removed (the step machine copies by the same rule).
        given = {entry.key for entry in overrides}
        for key, value in source_values.items():
            spec = schema.get(key)
            if spec is not None and not spec.secret and key not in after and key not in given:
                after[key] = value
                copied.append(ConfigEntry(key=key, value=value))
    missing = missing_keys(schema, after)
    if missing:
        blockers.append(Blocker.MISSING_CONFIGURATION)
    return Plan(
        integration=integration,
        source=source,
        target=target,
        source_deployment=source_deployment,
        target_deployment=target_deployment,
        build=build,
        overrides=overrides,
        copied=copied,
        missing=missing,
        changes=diff_values(schema, before, after, {e.key for e in overrides}),
        policy=policy,
        blockers=blockers,
    )


async def _deployment(session: AsyncSession, integration: Integration, env_id: str) -> Deployment:
    try:
        return await deployment_for(session, integration=integration, environment_id=env_id)
    except InvalidInput:
        # Not in the pipeline: a row may not exist; report it as a blocker, not a crash.
        return Deployment(
            organization_id=integration.organization_id,
            integration_id=integration.id,
            environment_id=env_id,
        )


async def promote(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    request: PromotionRequest,
    retry_of: Promotion | None = None,
) -> Promotion:
    """Queue a promotion, or refuse it naming every blocker; nothing is written on refusal.

    ``retry_of``: the FAILED promotion this one retries; the source must still run its build.
    """
    if request.idempotency_key is not None:
        earlier = (
            await session.exec(
                select(Promotion).where(
                    Promotion.requested_by_id == actor.id,
                    Promotion.idempotency_key == request.idempotency_key,
                )
            )
        ).first()
        if earlier is not None:
            await get_owned(session, Integration, earlier.integration_id, actor=actor)
            return earlier
    plan = await plan_promotion(session, actor=actor, box=box, request=request)
    hard = [b for b in plan.blockers if b != Blocker.MISSING_CONFIGURATION]
    if hard:
        raise PromotionBlocked(_blocked_message(plan, hard), blockers=plan.blockers)
    if plan.missing:
        raise MissingConfiguration(
            environment_id=plan.target.id, environment_name=plan.target.name, keys=plan.missing
        )
    assert plan.build is not None  # the source is ACTIVE, so it runs a build
    if retry_of is not None and plan.build.id != retry_of.build_id:
        failed_build = await session.get(Build, retry_of.build_id)
        failed_version = failed_build.version if failed_build is not None else retry_of.build_id
        raise Conflict(
            f"{plan.source.name} now runs {plan.build.version}, not {failed_version} that "
            f"promotion {retry_of.id} promoted: promote {plan.build.version} instead of retrying"
        )
    if request.message is not None and len(request.message) > 2000:
        raise InvalidInput("message must be at most 2000 characters", field="message")
    promotion = Promotion(
        organization_id=plan.integration.organization_id,
        integration_id=plan.integration.id,
        build_id=plan.build.id,
        source_environment_id=plan.source.id,
        target_environment_id=plan.target.id,
        deployment_id=plan.target_deployment.id,
        status=PromotionStatus.PENDING_APPROVAL,
        message=request.message,
        requested_by_id=actor.id,
        overrides_sealed=box.seal_json(
            {
                "overrides": _entries_json(plan.overrides),
                "copied": _entries_json(plan.copied),
                "changes": [dataclasses.asdict(change) for change in plan.changes],
            }
        ),
        copy_source_configuration=request.copy_source_configuration,
        idempotency_key=request.idempotency_key,
        retry_of_id=retry_of.id if retry_of is not None else None,
    )
    session.add(promotion)
    await session.flush()
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action="promotion.requested",
        subject_id=promotion.id,
        integration_id=plan.integration.id,
        build=plan.build.version,
        source=plan.source.name,
        target=plan.target.name,
        override_keys=[entry.key for entry in plan.overrides],
        copied_keys=[entry.key for entry in plan.copied],
        retry_of=retry_of.id if retry_of is not None else None,
    )
    if plan.policy is not None:
        # Nothing runs yet: the request waits for its reviews.
        await change_requests.file_request(session, promotion=promotion, policy=plan.policy)
        return promotion
    await queue_requested_change(
        session,
        promotion=promotion,
        detail=f"{plan.build.version} from {plan.source.name} to {plan.target.name}",
        requester=actor,
    )
    return promotion


async def retry_promotion(
    session: AsyncSession, *, actor: User, box: SecretBox, promotion_id: str
) -> Promotion:
    """A new promotion of a FAILED promotion's build, overrides and target, linked to it.

    It is checked against today's rules like any promotion (blockers, freezes, missing
    configuration, the target's approval policy); values copied from the source are copied
    again by the copy flag, from what the source holds now, not replayed.
    """
    failed = await get_owned(
        session, Promotion, promotion_id, actor=actor, permission=Permission.DEVELOP
    )
    if failed.kind is not RequestKind.PROMOTION:
        raise Conflict(
            f"{failed.id} is a {failed.kind.value.lower()} request, not a promotion: "
            "only a failed promotion can be retried"
        )
    if failed.status is not PromotionStatus.FAILED:
        raise Conflict(
            f"promotion {failed.id} is {failed.status.value}: only a FAILED promotion "
            "can be retried"
        )
    overrides, _copied = sealed_entries(box, failed)
    request = PromotionRequest(
        integration_id=failed.integration_id,
        source_environment_id=failed.source_environment_id,
        target_environment_id=failed.target_environment_id,
        overrides=overrides,
        copy_source_configuration=failed.copy_source_configuration,
        message=failed.message,
    )
    return await promote(session, actor=actor, box=box, request=request, retry_of=failed)


def _blocked_message(plan: Plan, blockers: Sequence[Blocker]) -> str:
    reasons = {
        Blocker.SOURCE_NOT_ACTIVE: f"{plan.integration.name} is not ACTIVE in {plan.source.name}",
        Blocker.NOT_NEXT_ENVIRONMENT: f"{plan.target.name} is not the environment after "
        f"{plan.source.name} in the pipeline",
        Blocker.ENVIRONMENT_NOT_IN_PIPELINE: "the project's pipeline does not include "
        f"{plan.source.name} and {plan.target.name}",
        Blocker.TARGET_FROZEN: f"{plan.target.name} is frozen: {plan.target.freeze_reason}",
        Blocker.REQUEST_ALREADY_PENDING: f"a request to promote {plan.integration.name} to "
        f"{plan.target.name} is already waiting for reviews",
    }
    return "; ".join(reasons.get(b, b.value) for b in blockers)


def _entries_json(entries: Sequence[ConfigEntry]) -> list[dict[str, Any]]:
    return [{"key": e.key, "value": e.value} for e in entries]


def sealed_entries(
    box: SecretBox, promotion: Promotion
) -> tuple[list[ConfigEntry], list[ConfigEntry]]:
    """The promotion's overrides and the source values it copies, opened."""
    data = box.open_json(promotion.overrides_sealed)

    def entries(items: list[dict[str, Any]]) -> list[ConfigEntry]:
        return [ConfigEntry(key=item["key"], value=item["value"]) for item in items]

    return entries(data.get("overrides", [])), entries(data.get("copied", []))
