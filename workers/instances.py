"""What a change runs, where the gateway serves it, and starting it: in one place for the step
machine and the supervisor, so that neither can let a secret value into a status or an error."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from app.crypto import SecretBox
from app.models import (
    Build,
    Deployment,
    DeploymentChange,
    Environment,
    Integration,
    Organization,
    Project,
)
from app.services.configuration import ConfigType, effective_values, schema_of
from app.services.masking import mask_secrets
from workers.runtimes.base import Instance, InstanceSpec, Runtime, StartFailed


@dataclass(frozen=True)
class InstanceTarget:
    change: DeploymentChange
    route: str
    artifact: str | None
    values: dict[str, str]
    file_keys: frozenset[str]
    secret_keys: frozenset[str] = frozenset()
    # Secret values inside a value (a configuration group's file): masked one by one too.
    secret_parts: frozenset[str] = frozenset()

    @property
    def secret_values(self) -> frozenset[str]:
        """The values of secret keys: never written anywhere but to the instance."""
        whole = frozenset(v for k, v in self.values.items() if k in self.secret_keys)
        return whole | self.secret_parts

    def without_secrets(self, text: str) -> str:
        """The text (an instance's last output lines, say) with secret values blanked out."""
        return mask_secrets(text, self.secret_values)

    def spec(self, *, health_timeout_s: float = 30.0) -> InstanceSpec:
        assert self.artifact is not None, "a change that runs nothing has no instance"
        return InstanceSpec(
            health_timeout_s=health_timeout_s,
            deployment_id=self.change.deployment_id,
            change_id=self.change.id,
            artifact=self.artifact,
            values=self.values,
            file_keys=self.file_keys,
            secret_keys=self.secret_keys,
            organization_id=self.change.organization_id,
            route=self.route,
        )


def route_of(
    organization: Organization,
    environment: Environment,
    project: Project,
    integration: Integration,
) -> str:
    """Where the gateway serves a deployment; it never changes for the deployment. The
    organization comes first: every organization's ``local`` data plane shares one gateway, and
    names are unique only within an organization."""
    return f"/{organization.slug}/{environment.dns_prefix}/{project.slug}/{integration.slug}"


# Where a deployment runs: what its route and its instance's configuration are made of.
Place = tuple[Organization, Environment, Project, Integration]


def _places() -> Select[Organization, Environment, Project, Integration]:
    """The place of each deployment the caller's ``where`` picks, in one query."""
    return (
        select(Organization, Environment, Project, Integration)
        .select_from(Deployment)
        .join(Environment, col(Environment.id) == col(Deployment.environment_id))
        .join(Integration, col(Integration.id) == col(Deployment.integration_id))
        .join(Project, col(Project.id) == col(Integration.project_id))
        .join(Organization, col(Organization.id) == col(Project.organization_id))
    )


async def instance_target(
    session: AsyncSession, box: SecretBox, change: DeploymentChange
) -> InstanceTarget:
    """The route of the change's deployment and, when the change runs a build, what to run:
    the build's artifact with the change's frozen configuration (defaults filled in)."""
    place = (await session.exec(_places().where(col(Deployment.id) == change.deployment_id))).one()
    build = await session.get(Build, change.build_id) if change.build_id else None
    return target_of(box, change, place, build)


async def running_targets(
    session: AsyncSession, deployments: Sequence[Deployment]
) -> list[tuple[DeploymentChange, Place, Build | None]]:
    """For each deployment that runs a change, that change, its place and its build: three
    queries however many there are (the supervisor's round). ``target_of`` makes the target
    of one, when it is needed: the configuration stays sealed until then."""
    running = {d.id: d.running_change_id for d in deployments if d.running_change_id}
    if not running:
        return []
    changes = {
        change.id: change
        for change in await session.exec(
            select(DeploymentChange).where(col(DeploymentChange.id).in_(running.values()))
        )
    }
    places = {
        (environment.id, integration.id): (organization, environment, project, integration)
        for organization, environment, project, integration in await session.exec(
            _places().where(col(Deployment.id).in_(running))
        )
    }
    build_ids = {change.build_id for change in changes.values() if change.build_id}
    builds = {
        build.id: build
        for build in await session.exec(select(Build).where(col(Build.id).in_(build_ids)))
    }
    found = []
    for deployment in deployments:
        change = changes.get(running.get(deployment.id, ""))
        place = places.get((deployment.environment_id, deployment.integration_id))
        if change is None or place is None:
            continue
        found.append((change, place, builds.get(change.build_id or "")))
    return found


def target_of(
    box: SecretBox, change: DeploymentChange, place: Place, build: Build | None
) -> InstanceTarget:
    organization, environment, project, integration = place
    schema = schema_of(integration)
    values = (
        effective_values(schema, box.open_json(change.snapshot_sealed))
        if change.snapshot_sealed
        else {}
    )
    # Values from configuration groups: secret as the group says, and a group linked as a
    # file is one FILE value (app/services/configuration_groups.py).
    grouped = change.snapshot_groups or {}
    return InstanceTarget(
        change=change,
        route=route_of(organization, environment, project, integration),
        artifact=build.artifact if build else None,
        values=values,
        file_keys=frozenset(
            [k for k, v in schema.items() if v.type is ConfigType.FILE]
            + [k for k, g in grouped.items() if g.get("file")]
        ),
        secret_keys=frozenset(
            [k for k, v in schema.items() if v.secret]
            + [k for k, g in grouped.items() if g.get("secret")]
        ),
        secret_parts=_secrets_in_files(values, grouped),
    )


def _secrets_in_files(values: dict[str, str], grouped: dict[str, Any]) -> frozenset[str]:
    """The secret values inside the configuration groups' files (TOML documents)."""
    parts: set[str] = set()
    for key, layout in grouped.items():
        names = layout.get("secret_keys") or []
        if names and key in values:
            document = tomllib.loads(values[key])
            parts |= {str(document[name]) for name in names if name in document}
    return frozenset(parts)


async def start_instance(
    runtime: Runtime, target: InstanceTarget, *, health_timeout_s: float
) -> Instance:
    """The target's instance, started and healthy (a running one is returned as it is). What it
    says of the instance (why it did not start, how an earlier one ended) is masked: an
    instance's output may show its configuration, and it goes into lastError and events."""
    try:
        instance = await runtime.start(target.spec(health_timeout_s=health_timeout_s))
    except StartFailed as failure:
        raise StartFailed(target.without_secrets(str(failure))) from None
    if instance.restarted_after is None:
        return instance
    return dataclasses.replace(
        instance, restarted_after=target.without_secrets(instance.restarted_after)
    )
