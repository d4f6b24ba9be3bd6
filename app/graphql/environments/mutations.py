"""Creating, changing and deleting data planes and environments."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.environments.types import (
    CreateDataPlaneInput,
    CreateEnvironmentInput,
    DataPlane,
    Environment,
    UpdateEnvironmentInput,
)
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
from app.graphql.organizations.mutations import OrganizationResult
from app.graphql.organizations.types import Organization
from app.models import Environment as EnvironmentRow
from app.services import dataplanes, environments

DataPlaneResult = Annotated[
    DataPlane | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("DataPlaneResult"),
]


EnvironmentResult = Annotated[
    Environment | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("EnvironmentResult"),
]


def _environment(row: EnvironmentRow) -> Environment:
    return Environment.from_model(row)


@strawberry.type
class EnvironmentMutations:
    @strawberry.mutation(description="ADMIN only.")
    @in_transaction
    async def create_data_plane(self, info: Info, input: CreateDataPlaneInput) -> DataPlaneResult:
        ctx = info.context
        plane = await dataplanes.create_data_plane(
            ctx.session,
            actor=ctx.viewer,
            organization_id=input.organization_id,
            name=input.name,
            runtime=input.runtime,
            settings=input.settings,
        )
        return DataPlane.from_model(plane)

    @strawberry.mutation(description="ADMIN only.")
    @in_transaction
    async def create_environment(
        self, info: Info, input: CreateEnvironmentInput
    ) -> EnvironmentResult:
        ctx = info.context
        return _environment(
            await environments.create_environment(
                ctx.session,
                actor=ctx.viewer,
                organization_id=input.organization_id,
                name=input.name,
                dns_prefix=input.dns_prefix,
                description=input.description,
                critical=bool(input.critical),
                data_plane_id=input.data_plane_id,
                position=input.position,
            )
        )

    @strawberry.mutation(description="ADMIN only.")
    @in_transaction
    async def update_environment(
        self, info: Info, input: UpdateEnvironmentInput
    ) -> EnvironmentResult:
        ctx = info.context
        return _environment(
            await environments.update_environment(
                ctx.session,
                actor=ctx.viewer,
                environment_id=input.id,
                name=input.name,
                description=input.description,
                critical=input.critical,
                emergency_allowed=input.emergency_allowed,
                required_soak_seconds=input.required_soak_seconds,
            )
        )

    @strawberry.mutation(
        description="confirmName must equal the environment's name. Refused while "
        "any deployment is not NOT_DEPLOYED or a pipeline uses it."
    )
    @in_transaction
    async def delete_environment(
        self, info: Info, id: strawberry.ID, confirm_name: str
    ) -> DeleteResult:
        ctx = info.context
        await environments.delete_environment(
            ctx.session, actor=ctx.viewer, environment_id=id, confirm_name=confirm_name
        )
        return Deleted(id=id)

    @strawberry.mutation(
        description="environmentIds lists every environment of the organization "
        "once, in the new order."
    )
    @in_transaction
    async def reorder_environments(
        self, info: Info, organization_id: strawberry.ID, environment_ids: list[strawberry.ID]
    ) -> OrganizationResult:
        ctx = info.context
        org = await environments.reorder_environments(
            ctx.session,
            actor=ctx.viewer,
            organization_id=organization_id,
            environment_ids=[str(i) for i in environment_ids],
        )
        forget(ctx.loaders.environments_by_organization, org.id)
        return Organization.from_model(org)
