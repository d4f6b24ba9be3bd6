"""Making releases, and the dependencies that order them."""

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
    in_transaction,
)
from app.graphql.projects.mutations import IntegrationResult
from app.graphql.projects.types import Integration
from app.graphql.releases.types import CreateReleaseInput, Release
from app.services import dependencies, releases

ReleaseResult = Annotated[
    Release
    | ValidationError
    | NotFoundError
    | ForbiddenError
    | ConflictError
    | MissingConfigurationError
    | PromotionBlockedError,
    strawberry.union("ReleaseResult"),
]


@strawberry.type
class ReleaseMutations:
    @strawberry.mutation(
        description="DEVELOPER or ADMIN. Its members are promoted one after the other, each "
        "after those it depends on; into an environment with an approval policy, one request "
        "for the whole release is filed first (approvePromotion approves it). Refused, with "
        "every member's blockers, when one may not be promoted."
    )
    @in_change_transaction
    async def create_release(self, info: Info, input: CreateReleaseInput) -> ReleaseResult:
        ctx = info.context
        release = await releases.create_release(
            ctx.session, actor=ctx.viewer, box=ctx.box, request=input.to_request()
        )
        return Release.from_model(release)

    @strawberry.mutation(
        description="DEVELOPER or ADMIN. What the integration depends on (of its "
        "organization), replacing what it did; a cycle is refused."
    )
    @in_transaction
    async def set_integration_dependencies(
        self, info: Info, integration_id: strawberry.ID, depends_on: list[strawberry.ID]
    ) -> IntegrationResult:
        ctx = info.context
        integration = await dependencies.set_dependencies(
            ctx.session,
            actor=ctx.viewer,
            integration_id=integration_id,
            depends_on=[str(i) for i in depends_on],
        )
        return Integration.from_model(integration)
