"""An organization, by its slug."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.organizations.types import Organization
from app.services import organizations


@strawberry.type
class OrganizationQueries:
    @strawberry.field
    async def organization(self, info: Info, slug: str) -> Organization | None:
        ctx = info.context
        org = await organizations.find_by_slug(ctx.session, slug, actor=ctx.viewer)
        return Organization.from_model(org) if org else None
