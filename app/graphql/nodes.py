"""``node(id:)``: any object by its id, when the viewer may see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from app.graphql import types
from app.graphql.context import Context, Info
from app.ids import prefix_of
from app.models import ApiToken


class _Owned(Protocol):
    @property
    def organization_id(self) -> str: ...


R = TypeVar("R", bound=_Owned)


async def _owned(
    ctx: Context,
    loader: DataLoader[str, R | None],
    node_id: str,
    to_node: Callable[[R], types.Node],
) -> types.Node | None:
    row = await loader.load(node_id)
    if row is None or not await ctx.can_read(row.organization_id):
        return None
    return to_node(row)


async def _user(ctx: Context, user_id: str) -> types.Node | None:
    """A user is visible to themselves and to members of an organization they belong to."""
    if user_id == ctx.viewer.id:
        return types.User.from_model(ctx.viewer)
    for membership in await ctx.loaders.memberships_by_user.load(user_id):
        if await ctx.can_read(membership.organization_id):
            row = await ctx.loaders.user.load(user_id)
            return types.User.from_model(row) if row else None
    return None


async def _api_token(ctx: Context, token_id: str) -> types.Node | None:
    token = await ctx.session.get(ApiToken, token_id)
    if token is None or token.user_id != ctx.viewer.id:
        return None
    return types.ApiToken.from_model(token)


async def _organization(ctx: Context, org_id: str) -> types.Node | None:
    org = await ctx.loaders.organization.load(org_id)
    if org is None or not await ctx.can_read(org.id):
        return None
    return types.Organization.from_model(org)


async def _build(ctx: Context, build_id: str) -> types.Node | None:
    build = await ctx.loaders.build.load(build_id)
    if build is None:
        return None
    integration = await ctx.loaders.integration.load(build.integration_id)
    if integration is None or not await ctx.can_read(integration.organization_id):
        return None
    return types.Build.from_model(build)


def _resolvers(ctx: Context) -> dict[str, Callable[[str], Awaitable[types.Node | None]]]:
    loaders = ctx.loaders
    return {
        "usr": lambda i: _user(ctx, i),
        "tok": lambda i: _api_token(ctx, i),
        "org": lambda i: _organization(ctx, i),
        "bld": lambda i: _build(ctx, i),
        "dp": lambda i: _owned(ctx, loaders.data_plane, i, types.DataPlane.from_model),
        "env": lambda i: _owned(ctx, loaders.environment, i, types.Environment.from_model),
        "pl": lambda i: _owned(ctx, loaders.pipeline, i, types.DeploymentPipeline.from_model),
        "prj": lambda i: _owned(ctx, loaders.project, i, types.Project.from_model),
        "int": lambda i: _owned(ctx, loaders.integration, i, types.Integration.from_model),
        "dep": lambda i: _owned(ctx, loaders.deployment, i, types.Deployment.from_model),
    }


@strawberry.type
class NodeQueries:
    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> types.Node | None:
        resolve = _resolvers(info.context).get(prefix_of(id))
        return await resolve(id) if resolve else None
