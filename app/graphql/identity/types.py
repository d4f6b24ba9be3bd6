"""Users, the viewer and API tokens."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlmodel import col, select

from app import models
from app.graphql.context import Info
from app.graphql.objects import Node, snapshot
from app.graphql.organizations import LazyOrganizationMembership
from app.graphql.organizations import types as organization_types


@strawberry.type
class User(Node):
    name: str
    email: str

    @classmethod
    def from_model(cls, row: models.User) -> User:
        return snapshot(cls, row)


@strawberry.type
class ApiToken(Node):
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_model(cls, row: models.ApiToken) -> ApiToken:
        return snapshot(cls, row)


@strawberry.type
class NewApiToken:
    token: str = strawberry.field(description="The secret bearer token. It is never shown again.")
    api_token: ApiToken


@strawberry.type
class Viewer:
    @strawberry.field
    def user(self, info: Info) -> User:
        return User.from_model(info.context.viewer)

    @strawberry.field
    async def memberships(self, info: Info) -> list[LazyOrganizationMembership]:
        rows = await info.context.loaders.memberships_by_user.load(info.context.viewer.id)
        return [
            organization_types.OrganizationMembership(
                role=m.role, organization_id=m.organization_id
            )
            for m in rows
        ]

    @strawberry.field
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        rows = (
            await info.context.session.exec(
                select(models.ApiToken)
                .where(models.ApiToken.user_id == info.context.viewer.id)
                .order_by(col(models.ApiToken.id))
            )
        ).all()
        return [ApiToken.from_model(row) for row in rows]
