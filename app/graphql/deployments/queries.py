"""A deployment by id."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.deployments.types import Deployment


@strawberry.type
class DeploymentQueries:
    @strawberry.field
    async def deployment(self, info: Info, id: strawberry.ID) -> Deployment | None:
        row = await info.context.loaders.deployment.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Deployment.from_model(row)
