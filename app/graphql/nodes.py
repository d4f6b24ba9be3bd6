"""``node(id:)``: any object by its id, when the viewer may see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from app import models
from app.graphql.context import Context, Info
from app.graphql.deployments.types import Deployment
from app.graphql.environments.types import DataPlane, Environment
from app.graphql.identity.types import ApiToken, User
from app.graphql.objects import Node
from app.graphql.organizations.types import Organization
from app.graphql.pipelines.types import DeploymentPipeline
from app.graphql.projects.types import Build, Integration, Project
from app.ids import prefix_of


class _Owned(Protocol):
    @property
    def organization_id(self) -> str: ...


R = TypeVar("R", bound=_Owned)


async def _owned(
    ctx: Context,
    loader: DataLoader[str, R | None],
    node_id: str,
    to_node: Callable[[R], Node],
) -> Node | None:
    row = await loader.load(node_id)
    if row is None or not await ctx.can_read(row.organization_id):
        return None
    return to_node(row)


async def _user(ctx: Context, user_id: str) -> Node | None:
    """A user is visible to themselves and to members of an organization they belong to."""
    if user_id == ctx.viewer.id:
        return User.from_model(ctx.viewer)
    for membership in await ctx.loaders.memberships_by_user.load(user_id):
        if await ctx.can_read(membership.organization_id):
            row = await ctx.loaders.user.load(user_id)
            return User.from_model(row) if row else None
    return None


async def _api_token(ctx: Context, token_id: str) -> Node | None:
    token = await ctx.session.get(models.ApiToken, token_id)
    if token is None or token.user_id != ctx.viewer.id:
        return None
    return ApiToken.from_model(token)


async def _organization(ctx: Context, org_id: str) -> Node | None:
    org = await ctx.loaders.organization.load(org_id)
    if org is None or not await ctx.can_read(org.id):
        return None
    return Organization.from_model(org)


async def _build(ctx: Context, build_id: str) -> Node | None:
    build = await ctx.loaders.build.load(build_id)
    if build is None:
        return None
    integration = await ctx.loaders.integration.load(build.integration_id)
    if integration is None or not await ctx.can_read(integration.organization_id):
        return None
    return Build.from_model(build)


def _resolvers(ctx: Context) -> dict[str, Callable[[str], Awaitable[Node | None]]]:
    loaders = ctx.loaders
    return {
        "usr": lambda i: _user(ctx, i),
        "tok": lambda i: _api_token(ctx, i),
        "org": lambda i: _organization(ctx, i),
        "bld": lambda i: _build(ctx, i),
        "dp": lambda i: _owned(ctx, loaders.data_plane, i, DataPlane.from_model),
        "env": lambda i: _owned(ctx, loaders.environment, i, Environment.from_model),
        "pl": lambda i: _owned(ctx, loaders.pipeline, i, DeploymentPipeline.from_model),
        "prj": lambda i: _owned(ctx, loaders.project, i, Project.from_model),
        "int": lambda i: _owned(ctx, loaders.integration, i, Integration.from_model),
        "dep": lambda i: _owned(ctx, loaders.deployment, i, Deployment.from_model),
    }


@strawberry.type
class NodeQueries:
    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        resolve = _resolvers(info.context).get(prefix_of(id))
        return await resolve(id) if resolve else None
