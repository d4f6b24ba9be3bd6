"""``node(id:)``: any object by its id, when the viewer may see it."""

from __future__ import annotations

import strawberry

from app.graphql import types
from app.graphql.context import Info
from app.ids import prefix_of


async def _user(info: Info, user_id: str) -> types.User | None:
    """A user is visible to themselves and to members of an organization they belong to."""
    ctx = info.context
    if user_id == ctx.viewer.id:
        return types.User.from_model(ctx.viewer)
    for membership in await ctx.loaders.memberships_by_user.load(user_id):
        if await ctx.can_read(membership.organization_id):
            row = await ctx.loaders.user.load(user_id)
            return types.User.from_model(row) if row else None
    return None


async def resolve_node(info: Info, node_id: str) -> types.Node | None:
    ctx = info.context
    loaders = ctx.loaders
    kind = prefix_of(node_id)
    if kind == "usr":
        return await _user(info, node_id)
    if kind == "tok":
        from app.models import ApiToken

        token = await ctx.session.get(ApiToken, node_id)
        ok = token is not None and token.user_id == ctx.viewer.id
        return types.ApiToken.from_model(token) if ok and token else None
    if kind == "org":
        org = await loaders.organization.load(node_id)
        return types.Organization.from_model(org) if org and await ctx.can_read(org.id) else None
    owned = {
        "dp": (loaders.data_plane, types.DataPlane),
        "env": (loaders.environment, types.Environment),
        "pl": (loaders.pipeline, types.DeploymentPipeline),
        "prj": (loaders.project, types.Project),
        "int": (loaders.integration, types.Integration),
        "dep": (loaders.deployment, types.Deployment),
    }
    if kind in owned:
        loader, node_type = owned[kind]
        row = await loader.load(node_id)
        if row is None or not await ctx.can_read(row.organization_id):  # type: ignore[union-attr]
            return None
        return node_type.from_model(row)  # type: ignore[attr-defined,no-any-return]
    if kind == "bld":
        build = await loaders.build.load(node_id)
        if build is None:
            return None
        integration = await loaders.integration.load(build.integration_id)
        if integration is None or not await ctx.can_read(integration.organization_id):
            return None
        return types.Build.from_model(build)
    return None


@strawberry.type
class NodeQueries:
    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> types.Node | None:
        return await resolve_node(info, id)
