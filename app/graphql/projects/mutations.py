"""Creating projects, integrations and builds."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    in_transaction,
)
from app.graphql.projects.types import (
    Build,
    CreateBuildInput,
    CreateIntegrationInput,
    CreateProjectInput,
    Integration,
    Project,
)
from app.services import projects
from app.services.configuration import ConfigKey

ProjectResult = Annotated[
    Project | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("ProjectResult"),
]


IntegrationResult = Annotated[
    Integration | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("IntegrationResult"),
]


BuildResult = Annotated[
    Build | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("BuildResult"),
]


@strawberry.type
class ProjectMutations:
    @strawberry.mutation(description="DEVELOPER or ADMIN. The slug is derived from the name.")
    @in_transaction
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectResult:
        ctx = info.context
        return Project.from_model(
            await projects.create_project(
                ctx.session,
                actor=ctx.viewer,
                organization_id=input.organization_id,
                name=input.name,
                description=input.description,
                pipeline_id=input.pipeline_id,
            )
        )

    @strawberry.mutation(description="DEVELOPER or ADMIN.")
    @in_transaction
    async def create_integration(
        self, info: Info, input: CreateIntegrationInput
    ) -> IntegrationResult:
        ctx = info.context
        schema = [
            ConfigKey(
                key=k.key,
                type=k.type,
                required=k.required,
                secret=k.secret,
                default_value=k.default_value,
                description=k.description,
            )
            for k in input.config_schema
        ]
        return Integration.from_model(
            await projects.create_integration(
                ctx.session,
                actor=ctx.viewer,
                project_id=input.project_id,
                name=input.name,
                description=input.description,
                config_schema=schema,
            )
        )

    @strawberry.mutation(description="DEVELOPER or ADMIN. Versions are unique per integration.")
    @in_transaction
    async def create_build(self, info: Info, input: CreateBuildInput) -> BuildResult:
        ctx = info.context
        return Build.from_model(
            await projects.create_build(
                ctx.session,
                actor=ctx.viewer,
                integration_id=input.integration_id,
                version=input.version,
                artifact=input.artifact,
                commit=input.commit,
            )
        )
