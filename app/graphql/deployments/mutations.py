"""Changes of what runs in one environment: deploy, configure, restart, suspend, resume,
roll back. Their rules are in app/services/changes.py."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.configuration import config_entries
from app.graphql.context import Info
from app.graphql.deployments.types import (
    DeployInput,
    Deployment,
    RollbackInput,
    SetConfigurationInput,
)
from app.graphql.deployments.verification import SetVerificationInput
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
from app.graphql.loaders import forget
from app.graphql.promotions.types import Promotion
from app.models import Deployment as DeploymentRow
from app.models import Promotion as PromotionRow
from app.services import changes, configuration, verification

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


def answer_of(result: DeploymentRow | PromotionRow) -> Deployment | Promotion:
    """What a change of what runs answers: the deployment, or the request filed for it."""
    if isinstance(result, PromotionRow):
        return Promotion.from_model(result)
    return Deployment.from_model(result)


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
        entries = config_entries(input.entries)
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

    @strawberry.mutation(
        description="DEVELOPER or ADMIN (ADMIN only in an environment with an approval "
        "policy). The checks every later deploy, promotion, configuration change, restart or "
        "resume of the deployment must pass once live; an empty list of checks removes them."
    )
    @in_transaction
    async def set_verification(self, info: Info, input: SetVerificationInput) -> DeploymentResult:
        ctx = info.context
        return Deployment.from_model(
            await verification.set_verification(
                ctx.session,
                actor=ctx.viewer,
                deployment_id=input.deployment_id,
                verification=input.to_verification(),
            )
        )

    @strawberry.mutation(
        description="DEVELOPER or ADMIN. Runs a build in the first environment of the pipeline."
    )
    @in_change_transaction
    async def deploy(self, info: Info, input: DeployInput) -> DeploymentResult:
        ctx = info.context
        return answer_of(
            await changes.deploy(
                ctx.session,
                actor=ctx.viewer,
                box=ctx.box,
                integration_id=input.integration_id,
                build_id=input.build_id,
                environment_id=input.environment_id,
                configuration=config_entries(input.configuration),
                idempotency_key=input.idempotency_key,
            )
        )

    @strawberry.mutation(description="Restart with the environment's current configuration.")
    @in_change_transaction
    async def restart_deployment(self, info: Info, id: strawberry.ID) -> DeploymentResult:
        ctx = info.context
        return answer_of(
            await changes.restart(ctx.session, actor=ctx.viewer, box=ctx.box, deployment_id=id)
        )

    @strawberry.mutation(description="Stop the integration here; it keeps its revision.")
    @in_change_transaction
    async def suspend_deployment(self, info: Info, id: strawberry.ID) -> DeploymentResult:
        ctx = info.context
        return Deployment.from_model(
            await changes.suspend(ctx.session, actor=ctx.viewer, deployment_id=id)
        )

    @strawberry.mutation(description="Start a suspended deployment again, at its revision.")
    @in_change_transaction
    async def resume_deployment(self, info: Info, id: strawberry.ID) -> DeploymentResult:
        ctx = info.context
        return Deployment.from_model(
            await changes.resume(ctx.session, actor=ctx.viewer, deployment_id=id)
        )

    @strawberry.mutation(description="Re-apply an earlier revision's build and configuration.")
    @in_change_transaction
    async def rollback(self, info: Info, input: RollbackInput) -> DeploymentResult:
        ctx = info.context
        return answer_of(
            await changes.rollback(
                ctx.session,
                actor=ctx.viewer,
                box=ctx.box,
                deployment_id=input.deployment_id,
                revision=input.revision,
            )
        )
