"""A promotion, and what a promotion would do."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.promotions.types import PromoteInput, Promotion, PromotionPlan
from app.graphql.public_error import PublicError
from app.services import promotions
from app.services.errors import DomainError, PromotionBlocked


@strawberry.type
class PromotionQueries:
    @strawberry.field
    async def promotion(self, info: Info, id: strawberry.ID) -> Promotion | None:
        row = await info.context.loaders.promotion.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Promotion.from_model(row)

    @strawberry.field(description="What promote(input) would do now, without doing it.")
    async def promotion_plan(self, info: Info, input: PromoteInput) -> PromotionPlan | None:
        ctx = info.context
        try:
            plan = await promotions.plan_promotion(
                ctx.session, actor=ctx.viewer, box=ctx.box, request=input.to_request()
            )
        except PromotionBlocked as blocked:
            raise PublicError(blocked.message, code=blocked.code) from None
        except DomainError as error:
            if error.code == "NOT_FOUND":
                return None
            raise PublicError(error.message, code=error.code) from None
        return PromotionPlan.from_plan(plan)
