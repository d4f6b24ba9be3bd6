"""Environment drift: how two environments of a project's pipeline differ, integration by
integration: the build each runs, and each configuration key's effective value.

Secrets are never compared. A DEVELOPER may set a secret in Development to a guess; if the
comparison said whether it equals Production's, it would be an oracle for Production's
secret. A secret set in both environments is SECRET_NOT_COMPARED, and only its presence can
differ (ONLY_IN_A, ONLY_IN_B). Nothing here opens a secret: the comparison has no SecretBox.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Build, Deployment, DeploymentStatus, Environment, Integration, Project, User
from app.services.auth import Permission, get_owned
from app.services.configuration import EffectiveValue, effective_configuration_unopened, schema_of
from app.services.errors import InvalidInput, NotFound
from app.services.pipelines import stage_environment_ids


class DriftKind(enum.StrEnum):
    SAME = "SAME"
    DIFFERENT = "DIFFERENT"
    ONLY_IN_A = "ONLY_IN_A"
    ONLY_IN_B = "ONLY_IN_B"
    # A secret set in both: its values are not compared (see the module's docstring).
    SECRET_NOT_COMPARED = "SECRET_NOT_COMPARED"


DRIFTED = frozenset({DriftKind.DIFFERENT, DriftKind.ONLY_IN_A, DriftKind.ONLY_IN_B})


@dataclass(frozen=True)
class ConfigurationDrift:
    key: str
    secret: bool
    kind: DriftKind
    value_a: str | None  # None for secrets, always, and where A has no value
    value_b: str | None


@dataclass(frozen=True)
class IntegrationDrift:
    integration: Integration
    status_a: DeploymentStatus
    status_b: DeploymentStatus
    build_a: Build | None  # None while NOT_DEPLOYED
    build_b: Build | None
    configuration: list[ConfigurationDrift]

    @property
    def same_build(self) -> bool:
        """Both run the same build, or neither runs one."""
        return _build_id(self.build_a) == _build_id(self.build_b)

    @property
    def differs(self) -> bool:
        """Another build, or a key that is DIFFERENT or set on one side only. A secret set on
        both sides is not drift: it is not known to differ (counting it would mark every
        integration with a secret as drifted for ever)."""
        return not self.same_build or any(c.kind in DRIFTED for c in self.configuration)


@dataclass(frozen=True)
class Comparison:
    project: Project
    environment_a: Environment
    environment_b: Environment
    integrations: list[IntegrationDrift]  # in name order

    @property
    def drifted_integrations(self) -> int:
        return sum(1 for drift in self.integrations if drift.differs)


def _build_id(build: Build | None) -> str | None:
    return build.id if build else None


async def compare_environments(
    session: AsyncSession,
    *,
    actor: User,
    project_id: str,
    environment_a_id: str,
    environment_b_id: str,
) -> Comparison:
    """How the project's integrations differ between two environments of its pipeline. Any
    member may compare: it shows what ``Deployment.configuration`` shows, and less."""
    project = await get_owned(session, Project, project_id, actor=actor, permission=Permission.READ)
    # Both looked up before either is checked against the pipeline: another organization's
    # environment is not found, whatever the other argument is.
    environment_a = await _environment(session, project, environment_a_id)
    environment_b = await _environment(session, project, environment_b_id)
    stages = await stage_environment_ids(session, project.pipeline_id)
    for environment, field in ((environment_a, "environmentA"), (environment_b, "environmentB")):
        if environment.id not in stages:
            raise InvalidInput(
                f"{environment.name} is not in the pipeline of the project {project.name}",
                field=field,
            )

    integrations = sorted(
        (await session.exec(select(Integration).where(Integration.project_id == project.id))).all(),
        key=lambda integration: (integration.name.casefold(), integration.id),
    )
    deployments = {
        (deployment.integration_id, deployment.environment_id): deployment
        for deployment in (
            await session.exec(
                select(Deployment).where(
                    col(Deployment.integration_id).in_([i.id for i in integrations]),
                    col(Deployment.environment_id).in_([environment_a.id, environment_b.id]),
                )
            )
        ).all()
    }
    build_ids = {d.build_id for d in deployments.values() if d.build_id is not None}
    builds = {
        build.id: build
        for build in (await session.exec(select(Build).where(col(Build.id).in_(build_ids)))).all()
    }
    pairs = [
        (integration, deployments[(integration.id, environment.id)])
        for integration in integrations
        for environment in (environment_a, environment_b)
        if (integration.id, environment.id) in deployments
    ]
    effective = await effective_configuration_unopened(session, deployments=pairs)

    drifts = []
    for integration in integrations:
        a = deployments.get((integration.id, environment_a.id))
        b = deployments.get((integration.id, environment_b.id))
        drifts.append(
            IntegrationDrift(
                integration=integration,
                status_a=_status(a),
                status_b=_status(b),
                build_a=_running(a, builds),
                build_b=_running(b, builds),
                configuration=compare_configuration(
                    list(schema_of(integration)),
                    effective.get(a.id, {}) if a else {},
                    effective.get(b.id, {}) if b else {},
                ),
            )
        )
    return Comparison(
        project=project,
        environment_a=environment_a,
        environment_b=environment_b,
        integrations=drifts,
    )


def compare_configuration(
    schema_order: Sequence[str], a: dict[str, EffectiveValue], b: dict[str, EffectiveValue]
) -> list[ConfigurationDrift]:
    """One entry per key with a value in either: the schema's keys in its order, then keys no
    longer declared, by name. A key secret on either side is compared by presence only."""
    declared = set(schema_order)
    keys = [key for key in schema_order if key in a or key in b]
    keys += sorted(key for key in {*a, *b} if key not in declared)
    drifts = []
    for key in keys:
        value_a, value_b = a.get(key), b.get(key)
        secret = (value_a is not None and value_a.secret) or (
            value_b is not None and value_b.secret
        )
        if value_b is None:
            kind = DriftKind.ONLY_IN_A
        elif value_a is None:
            kind = DriftKind.ONLY_IN_B
        elif secret:
            kind = DriftKind.SECRET_NOT_COMPARED
        elif value_a.value == value_b.value:
            kind = DriftKind.SAME
        else:
            kind = DriftKind.DIFFERENT
        drifts.append(
            ConfigurationDrift(
                key=key,
                secret=secret,
                kind=kind,
                value_a=None if secret or value_a is None else value_a.value,
                value_b=None if secret or value_b is None else value_b.value,
            )
        )
    return drifts


async def _environment(session: AsyncSession, project: Project, environment_id: str) -> Environment:
    environment = await session.get(Environment, environment_id)
    if environment is None or environment.organization_id != project.organization_id:
        raise NotFound(f"no environment with id {environment_id}", id=environment_id)
    return environment


def _status(deployment: Deployment | None) -> DeploymentStatus:
    # Every (integration, environment of the pipeline) has its row; a missing one (the
    # pipeline changing under this read) runs nothing.
    return deployment.status if deployment else DeploymentStatus.NOT_DEPLOYED


def _running(deployment: Deployment | None, builds: dict[str, Build]) -> Build | None:
    if (
        deployment is None
        or deployment.build_id is None
        or deployment.status is DeploymentStatus.NOT_DEPLOYED
    ):
        return None
    return builds.get(deployment.build_id)
