"""Pipelines: the order in which a project's integrations are promoted."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Environment, Integration, Pipeline, PipelineStage, Project, User
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.deployments import deployed_in, ensure_deployments
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.names import clean_name, name_key
from app.services.organizations import get_organization

NAME_MAX = 100


async def stage_environment_ids(session: AsyncSession, pipeline_id: str) -> list[str]:
    """The pipeline's environments, in promotion order."""
    return list(
        (
            await session.exec(
                select(PipelineStage.environment_id)
                .where(PipelineStage.pipeline_id == pipeline_id)
                .order_by(col(PipelineStage.position))
            )
        ).all()
    )


async def _validated_environment_ids(
    session: AsyncSession, organization_id: str, environment_ids: Sequence[str]
) -> list[str]:
    if not environment_ids:
        raise InvalidInput("a pipeline needs at least one environment", field="environmentIds")
    if len(set(environment_ids)) != len(environment_ids):
        raise InvalidInput("a pipeline lists each environment once", field="environmentIds")
    found = set(
        (
            await session.exec(
                select(Environment.id).where(
                    col(Environment.id).in_(list(environment_ids)),
                    Environment.organization_id == organization_id,
                )
            )
        ).all()
    )
    for env_id in environment_ids:
        if env_id not in found:
            raise NotFound(f"no environment with id {env_id}", id=env_id)
    return list(environment_ids)


async def _check_name_free(
    session: AsyncSession, organization_id: str, name: str, *, except_id: str | None = None
) -> None:
    clash = (
        await session.exec(
            select(Pipeline).where(
                Pipeline.organization_id == organization_id, Pipeline.name_key == name_key(name)
            )
        )
    ).first()
    if clash is not None and clash.id != except_id:
        raise Conflict(f"a pipeline named {clash.name!r} exists already")


async def _make_default(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.exec(
        update(Pipeline)
        .where(
            col(Pipeline.organization_id) == pipeline.organization_id,
            col(Pipeline.id) != pipeline.id,
        )
        .values(is_default=False)
    )
    pipeline.is_default = True


async def _set_stages(
    session: AsyncSession, pipeline: Pipeline, environment_ids: list[str]
) -> None:
    for stage in (
        await session.exec(select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id))
    ).all():
        await session.delete(stage)
    await session.flush()
    session.add_all(
        PipelineStage(pipeline_id=pipeline.id, environment_id=env_id, position=position)
        for position, env_id in enumerate(environment_ids)
    )
    await session.flush()


async def create_pipeline(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    name: str,
    environment_ids: Sequence[str],
    is_default: bool = False,
) -> Pipeline:
    org = await get_organization(
        session, organization_id, actor=actor, permission=Permission.ADMINISTER
    )
    name = clean_name(name, field="name", max_length=NAME_MAX)
    env_ids = await _validated_environment_ids(session, org.id, environment_ids)
    await _check_name_free(session, org.id, name)
    pipeline = Pipeline(organization_id=org.id, name=name, name_key=name_key(name))
    session.add(pipeline)
    await session.flush()
    if is_default:
        await _make_default(session, pipeline)
    await _set_stages(session, pipeline, env_ids)
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action="pipeline.created",
        subject_id=pipeline.id,
        name=pipeline.name,
        environment_ids=env_ids,
        is_default=pipeline.is_default,
    )
    return pipeline


async def update_pipeline(
    session: AsyncSession,
    *,
    actor: User,
    pipeline_id: str,
    name: str | None = None,
    environment_ids: Sequence[str] | None = None,
    is_default: bool | None = None,
) -> Pipeline:
    pipeline = await get_owned(
        session, Pipeline, pipeline_id, actor=actor, permission=Permission.ADMINISTER
    )
    if name is not None:
        name = clean_name(name, field="name", max_length=NAME_MAX)
        await _check_name_free(session, pipeline.organization_id, name, except_id=pipeline.id)
        pipeline.name = name
        pipeline.name_key = name_key(name)
    if is_default is False and pipeline.is_default:
        raise InvalidInput(
            "an organization always has a default pipeline: make another one the default instead",
            field="isDefault",
        )
    if is_default:
        await _make_default(session, pipeline)
    if environment_ids is not None:
        env_ids = await _validated_environment_ids(
            session, pipeline.organization_id, environment_ids
        )
        projects = list(
            (await session.exec(select(Project).where(Project.pipeline_id == pipeline.id))).all()
        )
        await _check_can_leave(
            session, projects, await stage_environment_ids(session, pipeline.id), env_ids
        )
        await _set_stages(session, pipeline, env_ids)
        await ensure_deployments(
            session, integrations=await _integrations_of(session, projects), environment_ids=env_ids
        )
    session.add(pipeline)
    await session.flush()
    audit.record(
        session,
        organization_id=pipeline.organization_id,
        actor=actor,
        action="pipeline.updated",
        subject_id=pipeline.id,
        name=name,
        environment_ids=None if environment_ids is None else list(environment_ids),
        is_default=is_default,
    )
    return pipeline


async def delete_pipeline(session: AsyncSession, *, actor: User, pipeline_id: str) -> Pipeline:
    pipeline = await get_owned(
        session, Pipeline, pipeline_id, actor=actor, permission=Permission.ADMINISTER
    )
    if pipeline.is_default:
        raise Conflict("the default pipeline cannot be deleted: make another one the default first")
    users = (
        await session.exec(select(Project.name).where(Project.pipeline_id == pipeline.id))
    ).all()
    if users:
        raise Conflict(f"the pipeline is used by the projects {', '.join(sorted(users))}")
    await session.delete(pipeline)
    await session.flush()
    audit.record(
        session,
        organization_id=pipeline.organization_id,
        actor=actor,
        action="pipeline.deleted",
        subject_id=pipeline.id,
        name=pipeline.name,
    )
    return pipeline


async def _integrations_of(session: AsyncSession, projects: Sequence[Project]) -> list[Integration]:
    if not projects:
        return []
    return list(
        (
            await session.exec(
                select(Integration).where(col(Integration.project_id).in_([p.id for p in projects]))
            )
        ).all()
    )


async def _check_can_leave(
    session: AsyncSession,
    projects: Sequence[Project],
    before: Sequence[str],
    after: Sequence[str],
) -> None:
    """An environment may leave a project's pipeline only when nothing of the project runs there."""
    leaving = [env_id for env_id in before if env_id not in set(after)]
    if not leaving or not projects:
        return
    running = await deployed_in(
        session, environment_ids=leaving, project_ids=[p.id for p in projects]
    )
    if running:
        env = await session.get(Environment, running[0].environment_id)
        where = env.name if env else running[0].environment_id
        raise Conflict(f"integrations are deployed in {where}, which the change would leave out")


async def default_pipeline(session: AsyncSession, organization_id: str) -> Pipeline:
    return (
        await session.exec(
            select(Pipeline).where(
                Pipeline.organization_id == organization_id, col(Pipeline.is_default).is_(True)
            )
        )
    ).one()


async def set_project_pipeline(
    session: AsyncSession, *, actor: User, project_id: str, pipeline_id: str
) -> Project:
    """Switch the project's pipeline. Configuration of the environments that stay is kept."""
    project = await get_owned(
        session, Project, project_id, actor=actor, permission=Permission.DEVELOP
    )
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.organization_id != project.organization_id:
        raise NotFound(f"no pipeline with id {pipeline_id}", id=pipeline_id)
    new_env_ids = await stage_environment_ids(session, pipeline.id)
    await _check_can_leave(
        session, [project], await stage_environment_ids(session, project.pipeline_id), new_env_ids
    )
    project.pipeline_id = pipeline.id
    session.add(project)
    await ensure_deployments(
        session,
        integrations=await _integrations_of(session, [project]),
        environment_ids=new_env_ids,
    )
    await session.flush()
    audit.record(
        session,
        organization_id=project.organization_id,
        actor=actor,
        action="project.pipeline_changed",
        subject_id=project.id,
        pipeline_id=pipeline.id,
    )
    return project
