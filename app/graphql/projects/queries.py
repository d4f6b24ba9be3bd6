"""Projects and integrations by id."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.projects.types import Integration, Project


@strawberry.type
class ProjectQueries:
    @strawberry.field
    async def project(self, info: Info, id: strawberry.ID) -> Project | None:
        row = await info.context.loaders.project.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Project.from_model(row)

    @strawberry.field
    async def integration(self, info: Info, id: strawberry.ID) -> Integration | None:
        row = await info.context.loaders.integration.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Integration.from_model(row)
