"""A release, and what a release would do."""

from __future__ import annotations

import strawberry

from app import models
from app.graphql.context import Info
from app.graphql.projects import types as project_types
from app.graphql.promotions.types import PromotionPlan
from app.graphql.public_error import PublicError
from app.graphql.releases.types import CreateReleaseInput, Release, ReleaseMemberPlan, ReleasePlan
from app.services import releases
from app.services.errors import DomainError


@strawberry.type
class ReleaseQueries:
    @strawberry.field
    async def release(self, info: Info, id: strawberry.ID) -> Release | None:
        row = await info.context.session.get(models.Release, id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Release.from_model(row)

    @strawberry.field(description="What createRelease(input) would do now, without doing it.")
    async def release_plan(self, info: Info, input: CreateReleaseInput) -> ReleasePlan | None:
        ctx = info.context
        try:
            plan = await releases.plan_release(
                ctx.session, actor=ctx.viewer, box=ctx.box, request=input.to_request()
            )
        except DomainError as error:
            if error.code == "NOT_FOUND":
                return None
            raise PublicError(error.message, code=error.code) from None
        return ReleasePlan(
            members=[
                ReleaseMemberPlan(
                    integration=project_types.Integration.from_model(member.integration),
                    plan=PromotionPlan.from_plan(member),
                )
                for member in plan.members
            ],
            requires_approval=plan.policy is not None,
            blockers=plan.blockers,
        )
