"""Environments: an organization's ordered places to run integrations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeStatus,
    DataPlane,
    Deployment,
    DeploymentChange,
    Environment,
    Organization,
    Pipeline,
    PipelineStage,
    User,
)
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.dataplanes import default_data_plane, routing_key
from app.services.deployments import deployed_in
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.names import clean_description, clean_name, dns_label, name_key
from app.services.organizations import get_organization
from app.services.outbox import enqueue
from app.services.windows import MAX_WINDOWS, DeploymentWindow

NAME_MAX = 64
# The longest soak an environment may require: 30 days.
MAX_SOAK_SECONDS = 30 * 24 * 3600


async def list_environments(session: AsyncSession, organization_id: str) -> list[Environment]:
    return list(
        (
            await session.exec(
                select(Environment)
                .where(Environment.organization_id == organization_id)
                .order_by(col(Environment.position), col(Environment.id))
            )
        ).all()
    )


async def _check_name_free(
    session: AsyncSession, organization_id: str, name: str, *, except_id: str | None = None
) -> None:
    clash = (
        await session.exec(
            select(Environment).where(
                Environment.organization_id == organization_id,
                Environment.name_key == name_key(name),
            )
        )
    ).first()
    if clash is not None and clash.id != except_id:
        raise Conflict(f"an environment named {clash.name!r} exists already")


async def create_environment(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    name: str,
    dns_prefix: str,
    description: str | None = None,
    critical: bool = False,
    data_plane_id: str | None = None,
    position: int | None = None,
) -> Environment:
    org: Organization = await get_organization(
        session, organization_id, actor=actor, permission=Permission.ADMINISTER
    )
    name = clean_name(name, field="name", max_length=NAME_MAX)
    prefix = dns_label(dns_prefix.strip(), field="dnsPrefix")
    description = clean_description(description)
    if data_plane_id is None:
        plane = await default_data_plane(session, org.id)
    else:
        found = await session.get(DataPlane, data_plane_id)
        if found is None or found.organization_id != org.id:
            raise NotFound(f"no data plane with id {data_plane_id}", id=data_plane_id)
        plane = found
    await _check_name_free(session, org.id, name)
    prefix_clash = (
        await session.exec(
            select(Environment).where(
                Environment.organization_id == org.id, Environment.dns_prefix == prefix
            )
        )
    ).first()
    if prefix_clash is not None:
        raise Conflict(f"the dnsPrefix {prefix!r} is used by {prefix_clash.name!r}")
    ordered = await list_environments(session, org.id)
    if position is None:
        position = len(ordered)
    if not 0 <= position <= len(ordered):
        raise InvalidInput(f"position must be between 0 and {len(ordered)}", field="position")
    environment = Environment(
        organization_id=org.id,
        data_plane_id=plane.id,
        name=name,
        name_key=name_key(name),
        dns_prefix=prefix,
        description=description,
        critical=critical,
        position=position,
    )
    ordered.insert(position, environment)
    _renumber(ordered)
    session.add_all(ordered)
    await session.flush()
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action="environment.created",
        subject_id=environment.id,
        name=environment.name,
        dns_prefix=environment.dns_prefix,
        position=environment.position,
    )
    return environment


async def update_environment(
    session: AsyncSession,
    *,
    actor: User,
    environment_id: str,
    name: str | None = None,
    description: str | None = None,
    critical: bool | None = None,
    emergency_allowed: bool | None = None,
    required_soak_seconds: int | None = None,
) -> Environment:
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    if name is not None:
        name = clean_name(name, field="name", max_length=NAME_MAX)
        await _check_name_free(session, environment.organization_id, name, except_id=environment.id)
        environment.name = name
        environment.name_key = name_key(name)
    if description is not None:
        environment.description = clean_description(description)
    if critical is not None:
        environment.critical = critical
    if emergency_allowed is not None:
        environment.emergency_allowed = emergency_allowed
    if required_soak_seconds is not None:
        if not 0 <= required_soak_seconds <= MAX_SOAK_SECONDS:
            raise InvalidInput(
                f"requiredSoakSeconds must be 0 to {MAX_SOAK_SECONDS}",
                field="requiredSoakSeconds",
            )
        environment.required_soak_seconds = required_soak_seconds or None
    session.add(environment)
    await session.flush()
    audit.record(
        session,
        organization_id=environment.organization_id,
        actor=actor,
        action="environment.updated",
        subject_id=environment.id,
        name=name,
        description_changed=description is not None or None,
        critical=critical,
        emergency_allowed=emergency_allowed,
        required_soak_seconds=required_soak_seconds,
    )
    return environment


async def reorder_environments(
    session: AsyncSession, *, actor: User, organization_id: str, environment_ids: list[str]
) -> Organization:
    org = await get_organization(
        session, organization_id, actor=actor, permission=Permission.ADMINISTER
    )
    current = {env.id: env for env in await list_environments(session, org.id)}
    if len(set(environment_ids)) != len(environment_ids):
        raise InvalidInput("environmentIds lists an environment twice", field="environmentIds")
    unknown = [env_id for env_id in environment_ids if env_id not in current]
    if unknown:
        raise NotFound(f"no environment with id {unknown[0]}", id=unknown[0])
    if set(environment_ids) != set(current):
        raise InvalidInput(
            "environmentIds must list every environment of the organization once",
            field="environmentIds",
        )
    _renumber([current[env_id] for env_id in environment_ids])
    session.add_all(current.values())
    await session.flush()
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action="environments.reordered",
        subject_id=org.id,
        order=[current[env_id].name for env_id in environment_ids],
    )
    return org


async def delete_environment(
    session: AsyncSession, *, actor: User, environment_id: str, confirm_name: str
) -> Environment:
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    if confirm_name != environment.name:
        raise InvalidInput("confirmName must equal the environment's name", field="confirmName")
    pipelines = (
        await session.exec(
            select(Pipeline.name)
            .join(PipelineStage, col(PipelineStage.pipeline_id) == col(Pipeline.id))
            .where(PipelineStage.environment_id == environment.id)
        )
    ).all()
    if pipelines:
        raise Conflict(f"{environment.name} is in the pipelines {', '.join(sorted(pipelines))}")
    if await deployed_in(session, environment_ids=[environment.id]):
        raise Conflict(f"integrations are deployed in {environment.name}")
    # What is left of it are NOT_DEPLOYED rows (and their configuration, by cascade).
    await session.exec(delete(Deployment).where(col(Deployment.environment_id) == environment.id))
    await session.delete(environment)
    await session.flush()
    _renumber(await list_environments(session, environment.organization_id))
    await session.flush()
    audit.record(
        session,
        organization_id=environment.organization_id,
        actor=actor,
        action="environment.deleted",
        subject_id=environment.id,
        name=environment.name,
    )
    return environment


def _renumber(environments: list[Environment]) -> None:
    for position, environment in enumerate(environments):
        environment.position = position


async def freeze_environment(
    session: AsyncSession, *, actor: User, environment_id: str, reason: str
) -> Environment:
    """No new promotion, deploy, restart or rollback goes into a frozen environment. Changes
    already queued wait for the freeze to be lifted; one already running finishes."""
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    reason = clean_name(reason, field="reason", max_length=1000)
    environment.frozen = True
    environment.freeze_reason = reason
    session.add(environment)
    audit.record(
        session,
        organization_id=environment.organization_id,
        actor=actor,
        action="environment.frozen",
        subject_id=environment.id,
        reason=reason,
    )
    await session.flush()
    return environment


async def unfreeze_environment(
    session: AsyncSession, *, actor: User, environment_id: str
) -> Environment:
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    was_frozen = environment.frozen
    environment.frozen = False
    environment.freeze_reason = None
    session.add(environment)
    if was_frozen:
        audit.record(
            session,
            organization_id=environment.organization_id,
            actor=actor,
            action="environment.unfrozen",
            subject_id=environment.id,
        )
        await _announce_waiting_changes(session, environment)
    await session.flush()
    return environment


async def _announce_waiting_changes(session: AsyncSession, environment: Environment) -> None:
    """The changes that waited for the freeze to end: tell the workers again."""
    waiting = (
        await session.exec(
            select(DeploymentChange.id, DeploymentChange.deployment_id)
            .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
            .where(
                Deployment.environment_id == environment.id,
                DeploymentChange.status == ChangeStatus.QUEUED,
            )
        )
    ).all()
    plane = await session.get(DataPlane, environment.data_plane_id)
    assert plane is not None
    for change_id, deployment_id in waiting:
        await enqueue(
            session,
            exchange="command",
            routing_key=routing_key(plane),
            body={"change_id": change_id, "deployment_id": deployment_id},
        )


async def set_deployment_windows(
    session: AsyncSession,
    *,
    actor: User,
    environment_id: str,
    windows: Sequence[Mapping[str, Any]],
) -> Environment:
    """When promotions may start in the environment (an empty list: at any time). A promotion
    requested outside them is SCHEDULED for the next window start; one already scheduled
    starts in a window of the rules of the moment its time comes. ``windows``: as stored,
    ``{"days", "start", "end", "timeZone"}``, validated once the environment is found."""
    environment = await get_owned(
        session, Environment, environment_id, actor=actor, permission=Permission.ADMINISTER
    )
    if len(windows) > MAX_WINDOWS:
        raise InvalidInput(f"at most {MAX_WINDOWS} windows", field="windows")
    stored = [DeploymentWindow.from_json(dict(w)).to_json() for w in windows]
    environment.deployment_windows = stored or None
    session.add(environment)
    audit.record(
        session,
        organization_id=environment.organization_id,
        actor=actor,
        action="environment.windows_set",
        subject_id=environment.id,
        windows=stored,
    )
    await session.flush()
    return environment
