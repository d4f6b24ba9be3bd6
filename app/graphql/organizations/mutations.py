"""Creating organizations and managing their members."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    DeleteResult,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    in_transaction,
)
from app.graphql.objects import Deleted
from app.graphql.organizations.types import AddMemberInput, Membership, Organization
from app.services import members, organizations

OrganizationResult = Annotated[
    Organization | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("OrganizationResult"),
]


MembershipResult = Annotated[
    Membership | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("MembershipResult"),
]


@strawberry.type
class OrganizationMutations:
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
