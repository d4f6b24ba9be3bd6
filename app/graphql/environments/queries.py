"""Environments by id."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.environments.types import Environment


@strawberry.type
class EnvironmentQueries:
    @strawberry.field
    async def environment(self, info: Info, id: strawberry.ID) -> Environment | None:
        row = await info.context.loaders.environment.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Environment.from_model(row)
