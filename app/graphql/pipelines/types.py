"""Deployment pipelines: environments in promotion order."""

from __future__ import annotations

import strawberry

from app import models
from app.graphql.context import Info
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.objects import Node, snapshot
from app.graphql.projects import LazyProject
from app.graphql.projects import types as project_types


@strawberry.type(name="DeploymentPipeline")
class DeploymentPipeline(Node):
    name: str
    is_default: bool

    @classmethod
    def from_model(cls, row: models.Pipeline) -> DeploymentPipeline:
        return snapshot(cls, row)

    @strawberry.field(description="The promotion hierarchy: environments in promotion order.")
    async def environments(self, info: Info) -> list[LazyEnvironment]:
        loaders = info.context.loaders
        stages = await loaders.stages_by_pipeline.load(self.id)
        rows = await loaders.environment.load_many([s.environment_id for s in stages])
        return [environment_types.Environment.from_model(row) for row in rows if row is not None]

    @strawberry.field
    async def projects(self, info: Info) -> list[LazyProject]:
        rows = await info.context.loaders.projects_by_pipeline.load(self.id)
        return [project_types.Project.from_model(row) for row in rows]


@strawberry.input
class CreatePipelineInput:
    organization_id: strawberry.ID
    name: str
    environment_ids: list[strawberry.ID]
    is_default: bool | None = False


@strawberry.input
class UpdatePipelineInput:
    id: strawberry.ID
    name: str | None = None
    environment_ids: list[strawberry.ID] | None = None
    is_default: bool | None = None
