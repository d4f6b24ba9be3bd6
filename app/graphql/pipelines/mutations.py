"""Creating, changing and deleting deployment pipelines."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    DeleteResult,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    in_transaction,
)
from app.graphql.loaders import forget
from app.graphql.objects import Deleted
from app.graphql.pipelines.types import CreatePipelineInput, DeploymentPipeline, UpdatePipelineInput
from app.graphql.projects.mutations import ProjectResult
from app.graphql.projects.types import Project
from app.services import pipelines

PipelineResult = Annotated[
    DeploymentPipeline | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("PipelineResult"),
]


@strawberry.type
class PipelineMutations:
    @strawberry.mutation(description="ADMIN only. environmentIds in promotion order, each once.")
    @in_transaction
    async def create_pipeline(self, info: Info, input: CreatePipelineInput) -> PipelineResult:
        ctx = info.context
        return DeploymentPipeline.from_model(
            await pipelines.create_pipeline(
                ctx.session,
                actor=ctx.viewer,
                organization_id=input.organization_id,
                name=input.name,
                environment_ids=[str(i) for i in input.environment_ids],
                is_default=bool(input.is_default),
            )
        )

    @strawberry.mutation(
        description="ADMIN only. An environment cannot leave the pipeline while "
        "an integration of its projects is deployed there."
    )
    @in_transaction
    async def update_pipeline(self, info: Info, input: UpdatePipelineInput) -> PipelineResult:
        ctx = info.context
        env_ids = None if input.environment_ids is None else [str(i) for i in input.environment_ids]
        pipeline = await pipelines.update_pipeline(
            ctx.session,
            actor=ctx.viewer,
            pipeline_id=input.id,
            name=input.name,
            environment_ids=env_ids,
            is_default=input.is_default,
        )
        forget(ctx.loaders.stages_by_pipeline, pipeline.id)
        return DeploymentPipeline.from_model(pipeline)

    @strawberry.mutation(
        description="ADMIN only. Refused for the default pipeline and for one that projects use."
    )
    @in_transaction
    async def delete_pipeline(self, info: Info, id: strawberry.ID) -> DeleteResult:
        ctx = info.context
        await pipelines.delete_pipeline(ctx.session, actor=ctx.viewer, pipeline_id=id)
        return Deleted(id=id)

    @strawberry.mutation(
        description="DEVELOPER or ADMIN. Configuration of the environments that "
        "stay in the project's pipeline is kept."
    )
    @in_transaction
    async def set_project_pipeline(
        self, info: Info, project_id: strawberry.ID, pipeline_id: strawberry.ID
    ) -> ProjectResult:
        ctx = info.context
        return Project.from_model(
            await pipelines.set_project_pipeline(
                ctx.session, actor=ctx.viewer, project_id=project_id, pipeline_id=pipeline_id
            )
        )
