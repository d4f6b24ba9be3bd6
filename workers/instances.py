"""What a change runs, where the gateway serves it, and starting it: in one place for the step
machine and the supervisor, so that neither can let a secret value into a status or an error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

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

    @property
    def secret_values(self) -> frozenset[str]:
        """The values of secret keys: never written anywhere but to the instance."""
        return frozenset(v for k, v in self.values.items() if k in self.secret_keys)

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


async def instance_target(
    session: AsyncSession, box: SecretBox, change: DeploymentChange
) -> InstanceTarget:
    """The route of the change's deployment and, when the change runs a build, what to run:
    the build's artifact with the change's frozen configuration (defaults filled in)."""
    deployment = await session.get(Deployment, change.deployment_id)
    assert deployment is not None
    environment = await session.get(Environment, deployment.environment_id)
    integration = await session.get(Integration, deployment.integration_id)
    assert environment is not None and integration is not None
    project = await session.get(Project, integration.project_id)
    assert project is not None
    organization = await session.get(Organization, project.organization_id)
    assert organization is not None
    schema = schema_of(integration)
    build = await session.get(Build, change.build_id) if change.build_id else None
    values = (
        effective_values(schema, box.open_json(change.snapshot_sealed))
        if change.snapshot_sealed
        else {}
    )
    return InstanceTarget(
        change=change,
        route=route_of(organization, environment, project, integration),
        artifact=build.artifact if build else None,
        values=values,
        file_keys=frozenset(k for k, v in schema.items() if v.type is ConfigType.FILE),
        secret_keys=frozenset(k for k, v in schema.items() if v.secret),
    )


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
