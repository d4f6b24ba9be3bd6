"""Deployments and their per-environment configuration."""

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
from app.graphql.loaders import forget
from app.graphql.types import Deployment, Promotion
from app.models import Deployment as DeploymentRow
from app.models import Promotion as PromotionRow
from app.services import changes, configuration

# A change of what runs answers the deployment, or, where an approval policy protects its
# environment, the request filed for it (a Promotion of that kind).
DeploymentResult = Annotated[
    Deployment
    | Promotion
    | ValidationError
    | NotFoundError
    | ForbiddenError
    | ConflictError
    | MissingConfigurationError
    | PromotionBlockedError,
    strawberry.union("DeploymentResult"),
]


@strawberry.input
class ConfigEntryInput:
    key: str
    value: str | None = strawberry.field(
        description="Null removes the key's value from this environment."
    )


@strawberry.input
class SetConfigurationInput:
    integration_id: strawberry.ID
    environment_id: strawberry.ID
    entries: list[ConfigEntryInput]
    restart: bool | None = strawberry.field(
        default=False,
        description="Restart now so the change takes effect; otherwise it waits "
        "for the next restart.",
    )


@strawberry.type
class DeploymentQueries:
    @strawberry.field
    async def deployment(self, info: Info, id: strawberry.ID) -> Deployment | None:
        row = await info.context.loaders.deployment.load(id)
        if row is None or not await info.context.can_read(row.organization_id):
            return None
        return Deployment.from_model(row)


@strawberry.type
class DeploymentMutations:
    @strawberry.mutation(
        description="DEVELOPER or ADMIN. Values are checked against the "
        "integration's config schema; secret values are stored encrypted and "
        "never returned."
    )
    @in_change_transaction
    async def set_configuration(self, info: Info, input: SetConfigurationInput) -> DeploymentResult:
        ctx = info.context
        entries = [configuration.ConfigEntry(key=e.key, value=e.value) for e in input.entries]
        deployment = await configuration.set_configuration(
            ctx.session,
            actor=ctx.viewer,
            box=ctx.box,
            integration_id=input.integration_id,
            environment_id=input.environment_id,
            entries=entries,
        )
        request = None
        if input.restart:
            request = await changes.restart_for_configuration(
                ctx.session, actor=ctx.viewer, box=ctx.box, deployment=deployment
            )
        forget(ctx.loaders.config_values_by_deployment, deployment.id)
        return answer_of(request or deployment)


def answer_of(result: DeploymentRow | PromotionRow) -> Deployment | Promotion:
    """What a change of what runs answers: the deployment, or the request filed for it."""
    if isinstance(result, PromotionRow):
        return Promotion.from_model(result)
    return Deployment.from_model(result)
