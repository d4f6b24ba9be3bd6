"""Deployments: what runs in an environment, its configuration and history."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app import models
from app.graphql.configuration import ConfigEntryInput
from app.graphql.context import Info
from app.graphql.deployments.verification import Verification, VerificationRun
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.graphql.objects import Node, optional_now, related, related_now, snapshot
from app.graphql.pagination import Connection, page_key
from app.graphql.projects import LazyBuild, LazyIntegration
from app.graphql.projects import types as project_types
from app.graphql.promotions import LazyPromotion
from app.graphql.promotions import types as promotion_types
from app.graphql.public_error import PublicError
from app.models import DeploymentStatus, RevisionCause
from app.services import verification as verification_service
from app.services.configuration import missing_keys, schema_of
from app.services.errors import DomainError
from app.services.logs import deployment_logs


@strawberry.type
class ConfigValue:
    key: str
    value: str | None = strawberry.field(description="Null for a secret: secrets are write-only.")
    secret: bool
    updated_at: datetime


@strawberry.type
class Deployment(Node):
    status: DeploymentStatus
    revision: int = strawberry.field(
        description="Increases by one with every applied change "
        "(new build, new configuration, rollback)."
    )
    endpoint_url: str | None = strawberry.field(
        description="Reachable URL of the integration in this environment; null while not ACTIVE."
    )
    restart_required: bool = strawberry.field(
        description="True when the configuration was changed "
        "after the last restart: it takes effect "
        "on the next restart."
    )
    updated_at: datetime
    integration_id: strawberry.Private[str]
    environment_id: strawberry.Private[str]
    build_id: strawberry.Private[str | None]
    organization_id: strawberry.Private[str]
    last_error_text: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.Deployment) -> Deployment:
        return snapshot(
            cls,
            row,
            endpoint_url=row.endpoint_url if row.status is DeploymentStatus.ACTIVE else None,
            last_error_text=row.last_error,
            restart_required=row.status is not DeploymentStatus.NOT_DEPLOYED
            and row.config_version != row.applied_config_version,
        )

    @strawberry.field(
        description="Why the last change failed: health-check output, exit code, the "
        "runtime's message (the instance's output for DEVELOPER and ADMIN only)."
    )
    async def last_error(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.organization_id, self.last_error_text)

    # Not coroutine functions: answered at once when the row is loaded already (objects.py).
    @strawberry.field
    def integration(self, info: Info) -> LazyIntegration:
        return related_now(
            info.context.loaders.integration,
            self.integration_id,
            project_types.Integration.from_model,
        )

    @strawberry.field
    def environment(self, info: Info) -> LazyEnvironment:
        return related_now(
            info.context.loaders.environment,
            self.environment_id,
            environment_types.Environment.from_model,
        )

    @strawberry.field(description="The build running now; null while NOT_DEPLOYED.")
    def build(self, info: Info) -> LazyBuild | None:
        if self.build_id is None:
            return None
        return optional_now(
            info.context.loaders.build, self.build_id, project_types.Build.from_model
        )

    @strawberry.field(
        description="The configuration set for this environment (what the next restart applies)."
    )
    async def configuration(self, info: Info) -> list[ConfigValue]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.integration_id)
        order = {key: index for index, key in enumerate(schema_of(integration))}
        values = await loaders.config_values_by_deployment.load(self.id)
        return [
            ConfigValue(
                key=v.key,
                value=None if v.secret else v.value,
                secret=v.secret,
                updated_at=v.updated_at,
            )
            for v in sorted(values, key=lambda v: order.get(v.key, len(order)))
        ]

    @strawberry.field(
        description="The last lines of the running instances' output, newest last, read from "
        "the data plane (DEVELOPER and ADMIN; secret values masked)."
    )
    async def logs(self, info: Info, lines: int | None = 100) -> list[str]:
        context = info.context
        deployment = await context.loaders.require(context.loaders.deployment, self.id)
        try:
            return await deployment_logs(
                context.session,
                actor=context.viewer,
                bus=context.bus,
                deployment=deployment,
                lines=100 if lines is None else lines,
            )
        except DomainError as error:
            raise PublicError(error.message, code=error.code) from None

    @strawberry.field(
        description="The checks its changes must pass once live (setVerification); null: none."
    )
    async def verification(self, info: Info) -> Verification | None:
        row = await info.context.loaders.require(info.context.loaders.deployment, self.id)
        return Verification.from_json(row.verification) if row.verification else None

    @strawberry.field(description="Its verification runs, newest first.")
    async def verifications(self, info: Info, first: int = 20) -> list[VerificationRun]:
        if not 0 < first <= 100:
            raise PublicError("first must be 1 to 100", code="VALIDATION_FAILED")
        runs = await verification_service.runs_of(info.context.session, self.id, first)
        return [VerificationRun.from_model(run) for run in runs]

    @strawberry.field(description="Applied revisions, newest first.")
    async def history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[DeploymentRevision]:
        page = await info.context.loaders.revisions_page.load(
            page_key(info, self.id, first, after, default=20)
        )
        return page.connection(DeploymentRevision.from_model)

    @strawberry.field(
        description="Required keys of the integration's configSchema that this "
        "environment has no value for (its own, or a linked configuration group's)."
    )
    async def missing_configuration(self, info: Info) -> list[str]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.integration_id)
        values = await loaders.config_values_by_deployment.load(self.id)
        missing = missing_keys(schema_of(integration), (v.key for v in values))
        if not missing:
            return missing
        grouped = await loaders.group_keys_by_deployment.load(self.id)
        return [key for key in missing if key not in grouped]


@strawberry.type
class DeploymentRevision:
    revision: int
    configuration_digest: str = strawberry.field(
        description="Hash of the configuration snapshot applied with this revision (values "
        "themselves are not exposed)."
    )
    cause: RevisionCause
    reason: str | None = strawberry.field(
        description="Why it was made when nobody asked: an automatic rollback's failed "
        "verification."
    )
    created_at: datetime
    build_id: strawberry.Private[str]
    promotion_id: strawberry.Private[str | None]
    actor_id: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.DeploymentRevision) -> DeploymentRevision:
        return snapshot(cls, row)

    @strawberry.field
    async def build(self, info: Info) -> LazyBuild:
        return await related(
            info.context.loaders.build, self.build_id, project_types.Build.from_model
        )

    @strawberry.field
    async def promotion(self, info: Info) -> LazyPromotion | None:
        if self.promotion_id is None:
            return None
        row = await info.context.loaders.promotion.load(self.promotion_id)
        return promotion_types.Promotion.from_model(row) if row else None

    @strawberry.field
    async def actor(self, info: Info) -> LazyUser | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.user.load(self.actor_id)
        return identity_types.User.from_model(row) if row else None


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
class RollbackInput:
    deployment_id: strawberry.ID
    revision: int | None = strawberry.field(
        default=None,
        description="Defaults to the last revision before the current one that became ACTIVE.",
    )
