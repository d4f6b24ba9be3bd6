"""Promotions: the same build moves from one environment to the next of the pipeline.

Configuration is the target's own: its values, plus the request's overrides, plus (only when
asked) the source's non-secret values for keys the target has none for. Secrets never move.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ApprovalPolicy,
    Build,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Environment,
    Integration,
    Project,
    Promotion,
    PromotionStatus,
    Release,
    RequestKind,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import approval_policies, audit, change_requests, configuration_groups
from app.services.auth import Permission, get_owned, role_in
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
    DomainError,
    Forbidden,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.lifecycle import hold_promotion, move_promotion
from app.services.pipelines import stage_environment_ids
from app.services.windows import earliest_start


@dataclass(frozen=True)
class PromotionRequest:
    integration_id: str
    source_environment_id: str
    target_environment_id: str | None = None
    overrides: Sequence[ConfigEntry] = ()
    copy_source_configuration: bool = False
    message: str | None = None
    idempotency_key: str | None = None
    # Break-glass: why this promotion may pass a freeze or the approval policy (ADMINs only).
    emergency_reason: str | None = None
    # Not before this time (timezone-aware, at most MAX_SCHEDULE_AHEAD ahead): SCHEDULED until
    # then once it may run; a time already past starts it as without one.
    not_before: datetime | None = None
    # Not soaked yet in the source (NOT_SOAKED): SCHEDULED for when it will be, not refused.
    wait_for_soak: bool = False


# How far ahead a promotion may be scheduled.
MAX_SCHEDULE_AHEAD = timedelta(days=90)


def validate_not_before(not_before: datetime | None, *, now: datetime) -> None:
    if not_before is None:
        return
    if not_before.tzinfo is None or not_before.utcoffset() is None:
        raise InvalidInput(
            "notBefore must name its time zone (an offset such as Z or +01:00)", field="notBefore"
        )
    if not_before - now > MAX_SCHEDULE_AHEAD:
        raise InvalidInput(
            f"notBefore must be at most {MAX_SCHEDULE_AHEAD.days} days ahead", field="notBefore"
        )


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
    # When the build will have soaked in the source as long as the target requires (NOT_SOAKED
    # until then); None when the target requires no soak or the source is not ACTIVE.
    soaked_at: datetime | None = None

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
    soaked_at: datetime | None = None
    if source_deployment.status is not DeploymentStatus.ACTIVE:
        blockers.append(Blocker.SOURCE_NOT_ACTIVE)
    elif target.required_soak_seconds:
        soaked_at = await _soaked_at(session, source_deployment, target.required_soak_seconds)
        if soaked_at > utcnow():
            blockers.append(Blocker.NOT_SOAKED)
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
    # Keys the target's linked configuration groups set count as set.
    grouped = (await configuration_groups.group_keys(session, [target_deployment.id]))[
        target_deployment.id
    ]
    missing = missing_keys(schema, [*after, *grouped])
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
        soaked_at=soaked_at,
    )


async def _soaked_at(session: AsyncSession, source: Deployment, soak_seconds: int) -> datetime:
    """When the build that serves in the source will have run healthy there for the soak
    time: from the moment the change that runs it succeeded (after its verification, where the
    source has checks). A source whose instance was replaced since starts over."""
    running = (
        await session.get(DeploymentChange, source.running_change_id)
        if source.running_change_id
        else None
    )
    healthy_since = (
        running.finished_at
        if running is not None
        and running.status is ChangeStatus.SUCCEEDED
        and running.finished_at is not None
        else utcnow()
    )
    return healthy_since + timedelta(seconds=soak_seconds)


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
    release: Release | None = None,
    release_build_id: str | None = None,
    release_config_version: int | None = None,
) -> Promotion:
    """Queue a promotion (or schedule it, see ``PromotionRequest.not_before``), or refuse it
    naming every blocker; nothing is written on refusal.

    ``retry_of``: the FAILED promotion this one retries; the source must still run its build.
    ``release``: the running release this promotion is a member of (releases.py), whose build
    ``release_build_id`` the source must still run, into a target whose configuration is still
    at ``release_config_version`` (what the release was planned, and reviewed, with); it was
    reviewed as a whole, so no request is filed for it, and it starts now.
    """
    now = utcnow()
    validate_not_before(request.not_before, now=now)
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
    emergency = request.emergency_reason is not None
    if emergency:
        await _check_emergency(session, actor=actor, plan=plan, reason=request.emergency_reason)
    hard = [
        b
        for b in plan.blockers
        if b != Blocker.MISSING_CONFIGURATION
        and not (emergency and b in EMERGENCY_PASSES)
        and not (request.wait_for_soak and b is Blocker.NOT_SOAKED)
    ]
    if hard:
        raise PromotionBlocked(_blocked_message(plan, hard), blockers=plan.blockers)
    if plan.missing:
        raise MissingConfiguration(
            environment_id=plan.target.id, environment_name=plan.target.name, keys=plan.missing
        )
    assert plan.build is not None  # the source is ACTIVE, so it runs a build
    # Outside the target's deployment windows, the next window start is its time; an
    # emergency runs now.
    if emergency and request.not_before is not None:
        raise InvalidInput("an emergency promotion runs now: give no notBefore", field="notBefore")
    wanted = request.not_before
    if Blocker.NOT_SOAKED in plan.blockers and plan.soaked_at is not None:
        wanted = max(wanted or plan.soaked_at, plan.soaked_at)  # waitForSoak
    not_before = (
        None
        if emergency or release is not None
        else earliest_start(plan.target.deployment_windows, wanted, now)
    )
    if (
        release_config_version is not None
        and plan.target_deployment.config_version != release_config_version
    ):
        raise Conflict(
            f"the configuration of {plan.integration.name} in {plan.target.name} changed after "
            "the release was made: it would run what the release's plan did not show"
        )
    if release_build_id is not None and plan.build.id != release_build_id:
        raise Conflict(
            f"{plan.source.name} now runs {plan.build.version}, not the build the release "
            "was made with"
        )
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
        emergency_reason=request.emergency_reason.strip() if request.emergency_reason else None,
        not_before=not_before,
        retry_of_id=retry_of.id if retry_of is not None else None,
        release_id=release.id if release is not None else None,
        # A member runs only with the configuration its release was planned with.
        config_version=release_config_version,
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
    detail = f"{plan.build.version} from {plan.source.name} to {plan.target.name}"
    if promotion.emergency_reason is not None:
        await _record_emergency(session, actor=actor, plan=plan, promotion=promotion)
        detail = f"EMERGENCY ({promotion.emergency_reason}): {detail}"
    elif plan.policy is not None and release is None:
        # Nothing runs yet: the request waits for its reviews.
        await change_requests.file_request(session, promotion=promotion, policy=plan.policy)
        return promotion
    if not_before is not None:
        await move_promotion(
            session,
            promotion,
            PromotionStatus.SCHEDULED,
            detail=f"{detail}, scheduled for {not_before.isoformat()}",
        )
        return promotion
    await queue_requested_change(session, promotion=promotion, detail=detail, requester=actor)
    return promotion


# What an emergency promotion may pass, besides the target's approval policy.
EMERGENCY_PASSES = frozenset({Blocker.TARGET_FROZEN})


async def _check_emergency(
    session: AsyncSession, *, actor: User, plan: Plan, reason: str | None
) -> None:
    """Break-glass is an ADMIN's, with a reason, into an environment that allows it."""
    if reason is None or not reason.strip():
        raise InvalidInput("an emergency promotion needs a reason", field="emergency.reason")
    if len(reason) > 2000:
        raise InvalidInput(
            "the emergency reason must be at most 2000 characters", field="emergency.reason"
        )
    role = await role_in(session, user_id=actor.id, organization_id=plan.target.organization_id)
    if role is not Role.ADMIN:
        raise Forbidden("only an ADMIN may promote in an emergency")
    if not plan.target.emergency_allowed:
        raise Forbidden(f"{plan.target.name} does not allow emergency promotions")


async def _record_emergency(
    session: AsyncSession, *, actor: User, plan: Plan, promotion: Promotion
) -> None:
    """The audit entry of what the emergency passed, and word to the target's reviewers."""
    passed = [b.value for b in plan.blockers if b in EMERGENCY_PASSES]
    if plan.policy is not None:
        passed.append("APPROVAL_POLICY")
    audit.record(
        session,
        organization_id=promotion.organization_id,
        actor=actor,
        action="promotion.emergency",
        subject_id=promotion.id,
        reason=promotion.emergency_reason,
        passed=passed,
        target=plan.target.name,
        build=plan.build.version if plan.build else None,
    )
    await change_requests.tell_reviewers(session, promotion=promotion, emergency=True)


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


async def start_due(
    session: AsyncSession, *, box: SecretBox, now: datetime | None = None
) -> list[Promotion]:
    """Scheduled promotions whose time came start (the schedule sweep; safe to run anywhere,
    any time, in several processes at once: each is held first, so one starts once). Each is
    planned again under today's rules: while its target is frozen it stays SCHEDULED
    (freezes still win); another blocker fails it, naming the blockers; else it is queued
    as ``promote`` queues one. Returns those that moved (queued or failed)."""
    moved = []
    for promotion_id in await due_scheduled(session, now=now):
        outcome = await start_scheduled(session, box=box, promotion_id=promotion_id)
        if outcome is not None:
            moved.append(outcome)
    return moved


async def due_scheduled(session: AsyncSession, *, now: datetime | None = None) -> list[str]:
    """The ids of the scheduled promotions whose time came, the earliest first."""
    now = now or utcnow()
    return list(
        (
            await session.exec(
                select(Promotion.id)
                .where(
                    Promotion.status == PromotionStatus.SCHEDULED,
                    col(Promotion.not_before).is_not(None),
                    col(Promotion.not_before) <= now,
                )
                .order_by(col(Promotion.not_before), col(Promotion.id))
            )
        ).all()
    )


async def start_scheduled(
    session: AsyncSession, *, box: SecretBox, promotion_id: str
) -> Promotion | None:
    """One due scheduled promotion started (see ``start_due``), once it is held; None when it
    moved meanwhile or stays SCHEDULED."""
    promotion = await session.get(Promotion, promotion_id)
    if promotion is None or promotion.status is not PromotionStatus.SCHEDULED:
        return None
    if not await hold_promotion(session, promotion):
        return None  # cancelled, or started by another process, meanwhile
    return await _start_scheduled(session, box=box, promotion=promotion)


async def _start_scheduled(
    session: AsyncSession, *, box: SecretBox, promotion: Promotion
) -> Promotion | None:
    requester = await session.get(User, promotion.requested_by_id)
    assert requester is not None, promotion.requested_by_id
    overrides, _ = sealed_entries(box, promotion)
    request = PromotionRequest(
        integration_id=promotion.integration_id,
        source_environment_id=promotion.source_environment_id,
        target_environment_id=promotion.target_environment_id,
        overrides=overrides,
        copy_source_configuration=promotion.copy_source_configuration,
    )
    try:
        plan = await plan_promotion(session, actor=requester, box=box, request=request)
    except DomainError as error:  # the requester lost access, the pipeline changed, ...
        return await _fail_scheduled(session, promotion, error.message)
    if Blocker.TARGET_FROZEN in plan.blockers:
        return None  # freezes still win: it starts once the target thaws
    if Blocker.NOT_SOAKED in plan.blockers and plan.soaked_at is not None:
        # The source's instance was replaced since: its build soaks from then.
        promotion.not_before = plan.soaked_at
        session.add(promotion)
        return None
    later = earliest_start(plan.target.deployment_windows, None, utcnow())
    if later is not None:
        # Outside the target's windows (set since it was scheduled): the next one's start.
        promotion.not_before = later
        session.add(promotion)
        return None
    # Another request waiting for reviews does not stop this one: it was allowed already.
    blockers = [b for b in plan.blockers if b is not Blocker.REQUEST_ALREADY_PENDING]
    if blockers:
        return await _fail_scheduled(
            session,
            promotion,
            "blocked when its time came: "
            + _blocked_message(plan, blockers)
            + (f" ({', '.join(plan.missing)})" if plan.missing else ""),
        )
    await queue_requested_change(
        session,
        promotion=promotion,
        detail=f"its time came: {promotion.not_before.isoformat() if promotion.not_before else ''}",
        requester=requester,
    )
    return promotion


async def _fail_scheduled(session: AsyncSession, promotion: Promotion, error: str) -> Promotion:
    promotion.error = error
    await move_promotion(session, promotion, PromotionStatus.FAILED, detail=error)
    return promotion
