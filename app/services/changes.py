"""Changes to what runs: deploy, restart, suspend, resume, roll back.

A request records a ``DeploymentChange`` and, in the same transaction, the command that tells the
data plane's workers about it (an outbox row). The workers apply a deployment's changes one at
a time, in order (``workers.steps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    Build,
    ChangeKind,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Integration,
    Project,
    Promotion,
    RequestKind,
    User,
)
from app.services import approval_policies, change_requests
from app.services.auth import Permission, get_owned
from app.services.change_queue import REQUEST_OF_CHANGE, queue_change
from app.services.configuration import (
    ConfigEntry,
    apply_entries,
    deployment_for,
    missing_keys,
    schema_of,
    stored_values,
    validate_entries,
)
from app.services.configuration_groups import effective_configuration, group_keys
from app.services.errors import (
    Blocker,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.pipelines import stage_environment_ids


async def require_configuration(
    session: AsyncSession, *, integration: Integration, deployment: Deployment
) -> None:
    have = {
        *(await stored_values(session, deployment.id)),
        *(await group_keys(session, [deployment.id]))[deployment.id],
    }
    missing = missing_keys(schema_of(integration), have)
    if missing:
        environment = await session.get(Environment, deployment.environment_id)
        raise MissingConfiguration(
            environment_id=deployment.environment_id,
            environment_name=environment.name if environment else "",
            keys=missing,
        )


async def _check_not_frozen(session: AsyncSession, environment_id: str) -> None:
    environment = await session.get(Environment, environment_id)
    if environment is not None and environment.frozen:
        raise PromotionBlocked(
            f"{environment.name} is frozen: {environment.freeze_reason}",
            blockers=[Blocker.TARGET_FROZEN],
        )


async def deploy(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    integration_id: str,
    build_id: str,
    environment_id: str,
    configuration: Sequence[ConfigEntry] = (),
    idempotency_key: str | None = None,
) -> Deployment | Promotion:
    """Run a build in the first environment of the project's pipeline (or, where an approval
    policy protects it, file the request)."""
    integration = await get_owned(
        session, Integration, integration_id, actor=actor, permission=Permission.DEVELOP
    )
    if idempotency_key is not None:
        earlier = (
            await session.exec(
                select(DeploymentChange).where(
                    DeploymentChange.actor_id == actor.id,
                    DeploymentChange.idempotency_key == idempotency_key,
                )
            )
        ).first()
        if earlier is not None:
            deployment = await session.get(Deployment, earlier.deployment_id)
            if deployment is not None:
                return deployment
    build = await session.get(Build, build_id)
    if build is None or build.integration_id != integration.id:
        raise NotFound(f"no build with id {build_id}", id=build_id)
    environment = await session.get(Environment, environment_id)
    if environment is None or environment.organization_id != integration.organization_id:
        raise NotFound(f"no environment with id {environment_id}", id=environment_id)
    project = await session.get(Project, integration.project_id)
    assert project is not None
    stages = await stage_environment_ids(session, project.pipeline_id)
    if environment.id not in stages:
        raise PromotionBlocked(
            f"{environment.name} is not in the project's pipeline",
            blockers=[Blocker.ENVIRONMENT_NOT_IN_PIPELINE],
        )
    if environment.id != stages[0]:
        first = await session.get(Environment, stages[0])
        raise PromotionBlocked(
            f"a deploy goes into {first.name if first else 'the first environment'}, the "
            f"first environment of the pipeline; {environment.name} is reached by promotion",
            blockers=[Blocker.NOT_NEXT_ENVIRONMENT],
        )
    await _check_not_frozen(session, environment.id)
    deployment = await deployment_for(
        session, integration=integration, environment_id=environment.id
    )
    if configuration:
        await apply_entries(
            session,
            box=box,
            integration=integration,
            deployment=deployment,
            entries=validate_entries(integration, configuration, field="configuration"),
        )
    await require_configuration(session, integration=integration, deployment=deployment)
    request = await _filed_or_queued(
        session,
        actor=actor,
        box=box,
        deployment=deployment,
        kind=ChangeKind.DEPLOY,
        build_id=build.id,
        values=(await effective_configuration(session, box, deployment)).values,
        detail=f"deploy of {build.version} queued",
        idempotency_key=idempotency_key,
        build=build.version,
        configuration_keys=[e.key for e in configuration],
    )
    return request or deployment


async def _filed_or_queued(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    deployment: Deployment,
    kind: ChangeKind,
    build_id: str,
    values: dict[str, str],
    detail: str,
    rollback_to_revision: int | None = None,
    idempotency_key: str | None = None,
    **audited: Any,
) -> Promotion | None:
    """A change of what runs: where an approval policy protects the environment, filed as a
    request with the values it will run with (returned); else queued."""
    request = await change_requests.request_change(
        session,
        actor=actor,
        box=box,
        deployment=deployment,
        kind=REQUEST_OF_CHANGE[kind],
        build_id=build_id,
        values=values,
        rollback_to_revision=rollback_to_revision,
    )
    if request is None:
        await queue_change(
            session,
            deployment=deployment,
            kind=kind,
            actor=actor,
            detail=detail,
            build_id=build_id,
            rollback_to_revision=rollback_to_revision,
            idempotency_key=idempotency_key,
            **audited,
        )
    return request


async def _running_deployment(
    session: AsyncSession,
    *,
    actor: User,
    deployment_id: str,
    allowed: Sequence[DeploymentStatus],
    verb: str,
) -> tuple[Deployment, Integration]:
    deployment = await get_owned(
        session, Deployment, deployment_id, actor=actor, permission=Permission.DEVELOP
    )
    if deployment.status not in allowed:
        raise InvalidInput(
            f"only a deployment that is {' or '.join(s.value for s in allowed)} "
            f"can be {verb}; this one is {deployment.status.value}",
            field="id",
        )
    await _check_not_frozen(session, deployment.environment_id)
    integration = await session.get(Integration, deployment.integration_id)
    assert integration is not None
    return deployment, integration


def _require_a_build(deployment: Deployment, *, field: str) -> None:
    """A restart runs the build that ran before: a first deploy that failed left none."""
    if deployment.build_id is None:
        raise InvalidInput(
            "no build has run in this environment yet: deploy or promote one first", field=field
        )


async def restart(
    session: AsyncSession, *, actor: User, box: SecretBox, deployment_id: str
) -> Deployment | Promotion:
    """Restart with the environment's current configuration (it takes effect now). Where an
    approval policy protects the environment and the restart would apply values the running
    instance does not have, the request is filed instead; a restart that changes nothing
    needs no review."""
    deployment, integration = await _running_deployment(
        session,
        actor=actor,
        deployment_id=deployment_id,
        verb="restarted",
        allowed=(DeploymentStatus.ACTIVE, DeploymentStatus.ERROR),
    )
    _require_a_build(deployment, field="id")
    await require_configuration(session, integration=integration, deployment=deployment)
    if deployment.config_version != deployment.applied_config_version:
        assert deployment.build_id is not None
        request = await change_requests.request_change(
            session,
            actor=actor,
            box=box,
            deployment=deployment,
            kind=RequestKind.RESTART,
            build_id=deployment.build_id,
            values=(await effective_configuration(session, box, deployment)).values,
        )
        if request is not None:
            return request
    # In a protected environment a restart without a review must not apply values stored
    # between now and when it runs.
    protected = await approval_policies.policy_of(session, deployment.environment_id) is not None
    await queue_change(
        session,
        deployment=deployment,
        kind=ChangeKind.RESTART,
        actor=actor,
        detail="restart queued",
        expected_config_version=deployment.config_version if protected else None,
    )
    return deployment


async def restart_for_configuration(
    session: AsyncSession, *, actor: User, box: SecretBox, deployment: Deployment
) -> Promotion | None:
    """``setConfiguration(restart: true)``: the new values take effect now, or, where an
    approval policy protects the environment, once the request filed for them is approved
    (the request, then)."""
    if deployment.status not in (DeploymentStatus.ACTIVE, DeploymentStatus.ERROR):
        raise InvalidInput(
            "nothing runs in this environment to restart: the values apply when "
            "the integration is deployed or promoted here",
            field="restart",
        )
    _require_a_build(deployment, field="restart")
    await _check_not_frozen(session, deployment.environment_id)
    integration = await session.get(Integration, deployment.integration_id)
    assert integration is not None
    await require_configuration(session, integration=integration, deployment=deployment)
    assert deployment.build_id is not None
    return await _filed_or_queued(
        session,
        actor=actor,
        box=box,
        deployment=deployment,
        kind=ChangeKind.CONFIG_CHANGE,
        build_id=deployment.build_id,
        values=(await effective_configuration(session, box, deployment)).values,
        detail="configuration change queued",
    )


async def suspend(session: AsyncSession, *, actor: User, deployment_id: str) -> Deployment:
    deployment, _ = await _running_deployment(
        session,
        actor=actor,
        deployment_id=deployment_id,
        verb="suspended",
        allowed=(DeploymentStatus.ACTIVE, DeploymentStatus.ERROR),
    )
    await queue_change(
        session,
        deployment=deployment,
        kind=ChangeKind.SUSPEND,
        actor=actor,
        detail="suspend queued",
    )
    return deployment


async def resume(session: AsyncSession, *, actor: User, deployment_id: str) -> Deployment:
    deployment, _ = await _running_deployment(
        session,
        actor=actor,
        deployment_id=deployment_id,
        verb="resumed",
        allowed=(DeploymentStatus.SUSPENDED,),
    )
    await queue_change(
        session, deployment=deployment, kind=ChangeKind.RESUME, actor=actor, detail="resume queued"
    )
    return deployment


async def rollback(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    deployment_id: str,
    revision: int | None = None,
) -> Deployment | Promotion:
    """Re-apply an earlier revision's build and configuration, as a new revision (or, where an
    approval policy protects the environment, file the request)."""
    deployment, _ = await _running_deployment(
        session,
        actor=actor,
        deployment_id=deployment_id,
        verb="rolled back",
        allowed=(DeploymentStatus.ACTIVE, DeploymentStatus.ERROR, DeploymentStatus.SUSPENDED),
    )
    query = select(DeploymentRevision).where(DeploymentRevision.deployment_id == deployment.id)
    if revision is None:
        query = query.where(col(DeploymentRevision.revision) < deployment.revision).order_by(
            col(DeploymentRevision.revision).desc()
        )
    else:
        if revision == deployment.revision:
            raise InvalidInput(f"revision {revision} is the current one", field="revision")
        query = query.where(DeploymentRevision.revision == revision)
    target = (await session.exec(query.limit(1))).first()
    if target is None:
        raise InvalidInput(
            "there is no earlier revision to roll back to"
            if revision is None
            else f"there is no revision {revision}",
            field="revision",
        )
    request = await _filed_or_queued(
        session,
        actor=actor,
        box=box,
        deployment=deployment,
        kind=ChangeKind.ROLLBACK,
        build_id=target.build_id,
        values=box.open_json(target.snapshot_sealed),
        detail=f"rollback to revision {target.revision} queued",
        rollback_to_revision=target.revision,
        to_revision=target.revision,
    )
    return request or deployment
