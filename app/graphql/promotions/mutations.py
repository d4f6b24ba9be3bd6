"""Promoting a build to the next environment of the pipeline."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.errors import (
    ConflictError,
    ForbiddenError,
    MissingConfigurationError,
    NotFoundError,
    PromotionBlockedError,
    ValidationError,
    in_change_transaction,
)
from app.graphql.promotions.types import PromoteInput, Promotion
from app.services import promotions

PromotionResult = Annotated[
    Promotion
    | ValidationError
    | NotFoundError
    | ForbiddenError
    | ConflictError
    | MissingConfigurationError
    | PromotionBlockedError,
    strawberry.union("PromotionResult"),
]


@strawberry.type
class PromotionMutations:
    @strawberry.mutation(
        description="Starts a promotion, or files a request when the target's "
        "approval policy asks for reviews."
    )
    @in_change_transaction
    async def promote(self, info: Info, input: PromoteInput) -> PromotionResult:
        ctx = info.context
        return Promotion.from_model(
            await promotions.promote(
                ctx.session, actor=ctx.viewer, box=ctx.box, request=input.to_request()
            )
        )

    @strawberry.mutation(
        description="Promotes a FAILED promotion's build again, with the same overrides and "
        "target, checked against today's rules (a request when the target's approval policy "
        "asks for reviews); the new promotion's retryOf is the failed one."
    )
    @in_change_transaction
    async def retry_promotion(self, info: Info, id: strawberry.ID) -> PromotionResult:
        ctx = info.context
        return Promotion.from_model(
            await promotions.retry_promotion(
                ctx.session, actor=ctx.viewer, box=ctx.box, promotion_id=id
            )
        )
