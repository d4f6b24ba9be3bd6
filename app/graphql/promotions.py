"""Deploying, promoting and the changes that follow: restart, suspend, resume, roll back."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.deployments import ConfigEntryInput, DeploymentResult, answer_of
from app.graphql.errors import (
    ConflictError,
    ForbiddenError,
    MissingConfigurationError,
    NotFoundError,
    PromotionBlockedError,
    ValidationError,
    in_change_transaction,
)
from app.graphql.public_error import PublicError
from app.graphql.types import Build, ConfigChange, Deployment, Environment, Promotion
from app.services import changes, promotions
from app.services.configuration import ConfigEntry
from app.services.errors import Blocker, DomainError, PromotionBlocked

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


@strawberry.type(description="What a promotion would do, computed without changing anything.")
class PromotionPlan:
    build: Build | None
    source_environment: Environment
    target_environment: Environment
    missing_configuration: list[str] = strawberry.field(
        description="Required keys that still need a value in the target (after overrides)."
    )
    configuration_changes: list[ConfigChange] = strawberry.field(
        description="How the target's configuration would change (secret values masked)."
    )
    requires_approval: bool
    blockers: list[Blocker] = strawberry.field(
        description="Reasons the promotion cannot start now; empty when it can."
    )


@strawberry.input
class DeployInput:
    integration_id: strawberry.ID
    build_id: strawberry.ID
    environment_id: strawberry.ID = strawberry.field(
        description="Must be the first environment of the project's pipeline; later ones are "
        "reached by promotion."
    )
    configuration: list[ConfigEntryInput] | None = strawberry.field(default_factory=list)
    idempotency_key: str | None = None


@strawberry.input
class PromoteInput:
    integration_id: strawberry.ID
    source_environment_id: strawberry.ID
    target_environment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the next environment of the pipeline."
    )
    overrides: list[ConfigEntryInput] | None = strawberry.field(
        default_factory=list,
        description="Values for the target environment, applied with the promotion.",
    )
    copy_source_configuration: bool | None = strawberry.field(
        default=False,
        description="Explicitly copy the source's non-secret values for keys the target has no "
        "value for.",
    )
    message: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retried request with the same key returns the first request's promotion.",
    )

    def to_request(self) -> promotions.PromotionRequest:
        return promotions.PromotionRequest(
            integration_id=self.integration_id,
            source_environment_id=self.source_environment_id,
            target_environment_id=self.target_environment_id,
            overrides=_entries(self.overrides),
            copy_source_configuration=bool(self.copy_source_configuration),
            message=self.message,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class RollbackInput:
    deployment_id: strawberry.ID
    revision: int | None = strawberry.field(
        default=None,
        description="Defaults to the last revision before the current one that became ACTIVE.",
    )


def _entries(entries: list[ConfigEntryInput] | None) -> list[ConfigEntry]:
    return [ConfigEntry(key=e.key, value=e.value) for e in entries or []]


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
        return PromotionPlan(
            build=Build.from_model(plan.build) if plan.build else None,
            source_environment=Environment.from_model(plan.source),
            target_environment=Environment.from_model(plan.target),
            missing_configuration=plan.missing,
            configuration_changes=[ConfigChange.from_diff(c) for c in plan.changes],
            requires_approval=plan.requires_approval,
            blockers=plan.blockers,
        )


@strawberry.type
class PromotionMutations:
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
                configuration=_entries(input.configuration),
                idempotency_key=input.idempotency_key,
            )
        )

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
