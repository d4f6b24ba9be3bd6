"""Organizations and their members."""

from __future__ import annotations

import strawberry

from app import models
from app.graphql.context import Info
from app.graphql.environments import LazyDataPlane, LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.governance import LazyAuditEvent
from app.graphql.governance import types as governance_types
from app.graphql.groups import LazyConfigurationGroup
from app.graphql.groups import types as group_types
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.graphql.objects import Node, related, snapshot
from app.graphql.pagination import Connection, Page, decode_cursor, page_key, page_size
from app.graphql.pipelines import LazyDeploymentPipeline
from app.graphql.pipelines import types as pipeline_types
from app.graphql.projects import LazyProject
from app.graphql.projects import types as project_types
from app.graphql.promotions import LazyPromotion
from app.graphql.promotions import types as promotion_types
from app.graphql.public_error import PublicError
from app.models import Role
from app.services import approvals


@strawberry.type
class Organization(Node):
    slug: str
    name: str

    @classmethod
    def from_model(cls, row: models.Organization) -> Organization:
        return snapshot(cls, row)

    @strawberry.field(
        description="All environments of the organization, in their display order (position)."
    )
    async def environments(self, info: Info) -> list[LazyEnvironment]:
        rows = await info.context.loaders.environments_by_organization.load(self.id)
        return [environment_types.Environment.from_model(row) for row in rows]

    @strawberry.field
    async def data_planes(self, info: Info) -> list[LazyDataPlane]:
        rows = await info.context.loaders.data_planes_by_organization.load(self.id)
        return [environment_types.DataPlane.from_model(row) for row in rows]

    @strawberry.field
    async def pipelines(self, info: Info) -> list[LazyDeploymentPipeline]:
        rows = await info.context.loaders.pipelines_by_organization.load(self.id)
        return [pipeline_types.DeploymentPipeline.from_model(row) for row in rows]

    @strawberry.field(description="Oldest first.")
    async def projects(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[LazyProject]:
        page = await info.context.loaders.projects_page.load(page_key(info, self.id, first, after))
        return page.connection(project_types.Project.from_model)

    @strawberry.field(
        description="Promotion requests that wait for a review by the viewer (or by anyone, for "
        "ADMIN), oldest first."
    )
    async def pending_approvals(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[LazyPromotion]:
        # Three reads whatever the number of requests (and of organizations in one query):
        # the pending requests, their reviews, the viewer's memberships. Paged after the
        # reviewer rules (kept in each request) are applied; one integration has at most one
        # pending request per environment, so the pending set stays small.
        ctx = info.context
        size, cursor = page_size(first), decode_cursor(after)
        pending = await ctx.loaders.pending_promotions_by_organization.load(self.id)
        reviews = await ctx.loaders.reviews_by_promotion.load_many([row.id for row in pending])
        role = await ctx.role_in(self.id)
        rows = [
            row
            for row, reviewed in zip(pending, reviews, strict=True)
            if approvals.awaits_review(
                row,
                user_id=ctx.viewer.id,
                role=role,
                reviewer_ids={review.reviewer_id for review in reviewed},
            )
        ]
        after_cursor = [row for row in rows if cursor is None or row.id > cursor]
        page = Page(
            rows=after_cursor[:size],
            has_next_page=len(after_cursor) > size,
            total_count=len(rows),
        )
        return page.connection(promotion_types.Promotion.from_model)

    @strawberry.field(description="In name order.")
    async def configuration_groups(self, info: Info) -> list[LazyConfigurationGroup]:
        rows = await info.context.loaders.configuration_groups_by_organization.load(self.id)
        return [group_types.ConfigurationGroup.from_model(row) for row in rows]

    @strawberry.field(description="Newest first. Visible to ADMIN.")
    async def audit_log(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[LazyAuditEvent]:
        if await info.context.role_in(self.id) is not Role.ADMIN:
            raise PublicError("the audit log is visible to ADMIN", code="FORBIDDEN")
        page = await info.context.loaders.audit_page.load(page_key(info, self.id, first, after))
        return page.connection(governance_types.AuditEvent.from_model)

    @strawberry.field
    async def members(self, info: Info) -> list[Membership]:
        rows = await info.context.loaders.memberships_by_organization.load(self.id)
        return [Membership.from_model(row) for row in rows]


@strawberry.type
class Membership:
    role: Role
    user_id: strawberry.Private[str]

    @strawberry.field
    async def user(self, info: Info) -> LazyUser:
        return identity_types.User.from_model(
            await info.context.loaders.require(info.context.loaders.user, self.user_id)
        )

    @classmethod
    def from_model(cls, row: models.Membership) -> Membership:
        return snapshot(cls, row)


@strawberry.type
class OrganizationMembership:
    role: Role
    organization_id: strawberry.Private[str]

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await related(
            info.context.loaders.organization, self.organization_id, Organization.from_model
        )


@strawberry.input
class AddMemberInput:
    organization_id: strawberry.ID
    email: str
    name: str | None = strawberry.field(
        default=None, description="Used when no user with this email exists yet."
    )
    role: Role
