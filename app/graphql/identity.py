"""Viewer, organizations, members and API tokens."""

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
from app.graphql.types import (
    ApiToken,
    Deleted,
    Membership,
    NewApiToken,
    Organization,
    Viewer,
)
from app.models import Role
from app.services import members, organizations, tokens

OrganizationResult = Annotated[
    Organization | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("OrganizationResult"),
]
MembershipResult = Annotated[
    Membership | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("MembershipResult"),
]
ApiTokenResult = Annotated[
    NewApiToken | ValidationError | ForbiddenError, strawberry.union("ApiTokenResult")
]
DeleteResult = Annotated[
    Deleted | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("DeleteResult"),
]


@strawberry.input
class AddMemberInput:
    organization_id: strawberry.ID
    email: str
    name: str | None = strawberry.field(
        default=None, description="Used when no user with this email exists yet."
    )
    role: Role


@strawberry.type
class IdentityQueries:
    @strawberry.field
    def viewer(self) -> Viewer:
        return Viewer()

    @strawberry.field
    async def organization(self, info: Info, slug: str) -> Organization | None:
        ctx = info.context
        org = await organizations.find_by_slug(ctx.session, slug, actor=ctx.viewer)
        return Organization.from_model(org) if org else None


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(
        description="The caller becomes its ADMIN. A new organization starts with "
        "a LOCAL_PROCESS data plane, the environments Development and Production "
        "(critical), and a default pipeline Development -> Production."
    )
    @in_transaction
    async def create_organization(self, info: Info, slug: str, name: str) -> OrganizationResult:
        ctx = info.context
        org = await organizations.create_organization(
            ctx.session, actor=ctx.viewer, slug=slug, name=name
        )
        ctx.forget_roles()
        return Organization.from_model(org)

    @strawberry.mutation(
        description="ADMIN only. A new email creates the user; "
        "`promenade bootstrap --email` then gives them a token."
    )
    @in_transaction
    async def add_member(self, info: Info, input: AddMemberInput) -> MembershipResult:
        ctx = info.context
        membership = await members.add_member(
            ctx.session,
            actor=ctx.viewer,
            organization_id=input.organization_id,
            email=input.email,
            name=input.name,
            role=input.role,
        )
        return Membership.from_model(membership)

    @strawberry.mutation(description="ADMIN only. The last ADMIN cannot be removed.")
    @in_transaction
    async def remove_member(
        self, info: Info, organization_id: strawberry.ID, user_id: strawberry.ID
    ) -> DeleteResult:
        ctx = info.context
        await members.remove_member(
            ctx.session, actor=ctx.viewer, organization_id=organization_id, user_id=user_id
        )
        ctx.forget_roles()
        return Deleted(id=user_id)

    @strawberry.mutation(
        description="The token is shown once, in this result; only its hash is stored."
    )
    @in_transaction
    async def create_api_token(self, info: Info, name: str) -> ApiTokenResult:
        ctx = info.context
        token, secret = await tokens.create_api_token(ctx.session, actor=ctx.viewer, name=name)
        return NewApiToken(token=secret, api_token=ApiToken.from_model(token))

    @strawberry.mutation(description="Revokes one of the caller's own tokens.")
    @in_transaction
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> DeleteResult:
        ctx = info.context
        await tokens.revoke_api_token(ctx.session, actor=ctx.viewer, token_id=id)
        return Deleted(id=id)
