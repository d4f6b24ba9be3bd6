"""Projects, their integrations and builds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    Build,
    DataPlane,
    Environment,
    Integration,
    Pipeline,
    PipelineStage,
    Project,
    RuntimeKind,
    User,
)
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.configuration import ConfigKey, validate_schema
from app.services.deployments import ensure_deployments
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.images import is_image_reference
from app.services.names import clean_description, clean_name, unique_slug
from app.services.organizations import get_organization
from app.services.pipelines import default_pipeline, stage_environment_ids

NAME_MAX = 100


async def create_project(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    name: str,
    description: str | None = None,
    pipeline_id: str | None = None,
) -> Project:
    org = await get_organization(
        session, organization_id, actor=actor, permission=Permission.DEVELOP
    )
    name = clean_name(name, field="name", max_length=NAME_MAX)
    if pipeline_id is None:
        pipeline = await default_pipeline(session, org.id)
    else:
        found = await session.get(Pipeline, pipeline_id)
        if found is None or found.organization_id != org.id:
            raise NotFound(f"no pipeline with id {pipeline_id}", id=pipeline_id)
        pipeline = found
    taken = set(
        (await session.exec(select(Project.slug).where(Project.organization_id == org.id))).all()
    )
    project = Project(
        organization_id=org.id,
        pipeline_id=pipeline.id,
        name=name,
        slug=unique_slug(name, taken),
        description=clean_description(description),
    )
    session.add(project)
    await session.flush()
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action="project.created",
        subject_id=project.id,
        name=project.name,
        pipeline_id=project.pipeline_id,
    )
    return project


async def create_integration(
    session: AsyncSession,
    *,
    actor: User,
    project_id: str,
    name: str,
    description: str | None = None,
    config_schema: Sequence[ConfigKey] = (),
) -> Integration:
    project = await get_owned(
        session, Project, project_id, actor=actor, permission=Permission.DEVELOP
    )
    name = clean_name(name, field="name", max_length=NAME_MAX)
    schema = validate_schema(config_schema)
    taken = set(
        (
            await session.exec(select(Integration.slug).where(Integration.project_id == project.id))
        ).all()
    )
    integration = Integration(
        organization_id=project.organization_id,
        project_id=project.id,
        name=name,
        slug=unique_slug(name, taken),
        description=clean_description(description),
        config_schema=[key.to_json() for key in schema],
    )
    session.add(integration)
    await session.flush()
    await ensure_deployments(
        session,
        integrations=[integration],
        environment_ids=await stage_environment_ids(session, project.pipeline_id),
    )
    audit.record(
        session,
        organization_id=integration.organization_id,
        actor=actor,
        action="integration.created",
        subject_id=integration.id,
        name=integration.name,
        config_keys=[key.key for key in schema],
    )
    return integration


async def pipeline_runtimes(session: AsyncSession, project_id: str) -> set[RuntimeKind]:
    """The runtimes of the data planes that the project's pipeline environments run on."""
    rows = await session.exec(
        select(DataPlane.runtime)
        .join(Environment, col(Environment.data_plane_id) == col(DataPlane.id))
        .join(PipelineStage, col(PipelineStage.environment_id) == col(Environment.id))
        .join(Project, col(Project.pipeline_id) == col(PipelineStage.pipeline_id))
        .where(Project.id == project_id)
    )
    return {RuntimeKind(runtime) for runtime in rows.all()}


async def create_build(
    session: AsyncSession,
    *,
    actor: User,
    integration_id: str,
    version: str,
    artifact: str,
    commit: str | None = None,
) -> Build:
    integration = await get_owned(
        session, Integration, integration_id, actor=actor, permission=Permission.DEVELOP
    )
    version = clean_name(version, field="version", max_length=100)
    artifact = artifact.strip()
    if not artifact:
        raise InvalidInput("artifact must not be empty", field="artifact")
    if len(artifact) > 4000:
        raise InvalidInput("artifact must be at most 4000 characters", field="artifact")
    runs_containers = RuntimeKind.CONTAINER in await pipeline_runtimes(
        session, integration.project_id
    )
    if runs_containers and not is_image_reference(artifact):
        raise InvalidInput(
            "artifact must be a container image reference (such as greeter:1.0 or "
            "registry.example.com/team/greeter@sha256:...): the project's pipeline has "
            "environments on a CONTAINER data plane",
            field="artifact",
        )
    if commit is not None:
        commit = clean_name(commit, field="commit", max_length=100)
    clash = (
        await session.exec(
            select(Build).where(Build.integration_id == integration.id, Build.version == version)
        )
    ).first()
    if clash is not None:
        raise Conflict(f"{integration.name} has a build {version} already")
    build = Build(integration_id=integration.id, version=version, artifact=artifact, commit=commit)
    session.add(build)
    await session.flush()
    audit.record(
        session,
        organization_id=integration.organization_id,
        actor=actor,
        action="build.created",
        subject_id=build.id,
        integration_id=integration.id,
        version=build.version,
    )
    return build
