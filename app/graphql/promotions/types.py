"""Promotion requests, their reviews, events and configuration plans."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app import models
from app.graphql.configuration import ConfigEntryInput, config_entries
from app.graphql.context import Info
from app.graphql.deployments import LazyConfigValue
from app.graphql.deployments import types as deployment_types
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.governance import LazyApprovalRuleProgress, rules
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.graphql.objects import Node, related, snapshot
from app.graphql.projects import LazyBuild, LazyIntegration
from app.graphql.projects import types as project_types
from app.graphql.releases import LazyRelease
from app.models import PromotionStatus, RequestKind, ReviewDecision
from app.services import approval_rules, change_requests, promotions
from app.services.configuration import ConfigChangeKind, ConfigDiff, schema_of
from app.services.errors import Blocker
from app.services.promotions import sealed_entries


@strawberry.type
class Review:
    decision: ReviewDecision
    comment: str | None
    created_at: datetime
    reviewer_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.Review) -> Review:
        return snapshot(cls, row)

    @strawberry.field
    async def reviewer(self, info: Info) -> LazyUser:
        return await related(
            info.context.loaders.user, self.reviewer_id, identity_types.User.from_model
        )


@strawberry.type
class ConfigChange:
    key: str
    secret: bool
    before: str | None = strawberry.field(
        description="Null for secrets and for keys that had no value."
    )
    after: str | None = strawberry.field(description="Null for secrets and for removed keys.")
    kind: ConfigChangeKind

    @classmethod
    def from_diff(cls, diff: ConfigDiff) -> ConfigChange:
        return snapshot(cls, diff)


@strawberry.type
class PromotionEvent:
    promotion_id: strawberry.ID
    status: PromotionStatus
    at: datetime
    organization_id: strawberry.Private[str]
    detail_text: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.PromotionEvent, organization_id: str) -> PromotionEvent:
        return snapshot(
            cls,
            row,
            promotion_id=strawberry.ID(row.promotion_id),
            detail_text=row.detail,
            organization_id=organization_id,
        )

    @strawberry.field
    async def detail(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.organization_id, self.detail_text)


@strawberry.type
class Promotion(Node):
    status: PromotionStatus
    message: str | None
    requested_at: datetime
    required_approvals: int = strawberry.field(
        description="The approvals its rules add up to (approvalRules has each one's progress)."
    )
    finished_at: datetime | None
    row: strawberry.Private[models.Promotion]

    @classmethod
    def from_model(cls, row: models.Promotion) -> Promotion:
        return snapshot(cls, row, row=row)

    @strawberry.field(
        description="The release it belongs to: a member's promotion, or (kind RELEASE) the "
        "release's one request for review, whose configurationChanges name each member's keys "
        "as <integration>/<KEY>."
    )
    async def release(self, info: Info) -> LazyRelease | None:
        # Imported here: the release types name this module's PromotionPlan.
        from app.graphql.releases import types as release_types

        if self.row.release_id is None:
            return None
        row = await info.context.session.get(models.Release, self.row.release_id)
        return release_types.Release.from_model(row) if row is not None else None

    @strawberry.field(description="Set when an ADMIN promoted past a freeze or the reviews.")
    def emergency(self) -> Emergency | None:
        reason = self.row.emergency_reason
        return Emergency(reason=reason) if reason is not None else None

    @strawberry.field
    async def integration(self, info: Info) -> LazyIntegration:
        return await related(
            info.context.loaders.integration,
            self.row.integration_id,
            project_types.Integration.from_model,
        )

    @strawberry.field
    async def build(self, info: Info) -> LazyBuild:
        return await related(
            info.context.loaders.build, self.row.build_id, project_types.Build.from_model
        )

    @strawberry.field
    async def source_environment(self, info: Info) -> LazyEnvironment:
        return await related(
            info.context.loaders.environment,
            self.row.source_environment_id,
            environment_types.Environment.from_model,
        )

    @strawberry.field
    async def target_environment(self, info: Info) -> LazyEnvironment:
        return await related(
            info.context.loaders.environment,
            self.row.target_environment_id,
            environment_types.Environment.from_model,
        )

    @strawberry.field
    async def requested_by(self, info: Info) -> LazyUser:
        return await related(
            info.context.loaders.user, self.row.requested_by_id, identity_types.User.from_model
        )

    @strawberry.field(
        description="The overrides given with the request (secret values masked as null)."
    )
    async def overrides(self, info: Info) -> list[LazyConfigValue]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.row.integration_id)
        schema = schema_of(integration)
        overrides, _ = sealed_entries(info.context.box, self.row)
        return [
            deployment_types.ConfigValue(
                key=entry.key,
                value=None if entry.key in schema and schema[entry.key].secret else entry.value,
                secret=entry.key in schema and schema[entry.key].secret,
                updated_at=self.row.requested_at,
            )
            for entry in overrides
        ]

    @strawberry.field
    async def reviews(self, info: Info) -> list[Review]:
        rows = await info.context.loaders.reviews_by_promotion.load(self.id)
        return [Review.from_model(row) for row in rows]

    @strawberry.field(
        description="The rules the request was filed under, each with its progress; the request "
        "is approved when every one is met. Empty when it needed no review."
    )
    async def approval_rules(self, info: Info) -> list[LazyApprovalRuleProgress]:
        kept = approval_rules.rules_of_request(self.row)
        if not kept.rules:
            return []
        reviews = await info.context.loaders.reviews_by_promotion.load(self.id)
        return [rules.ApprovalRuleProgress.from_progress(p) for p in kept.progress(reviews)]

    @strawberry.field(description="Every status change, oldest first.")
    async def events(self, info: Info) -> list[PromotionEvent]:
        rows = await info.context.loaders.promotion_events_by_promotion.load(self.id)
        return [PromotionEvent.from_model(row, self.row.organization_id) for row in rows]

    @strawberry.field
    async def error(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.row.organization_id, self.row.error)

    @strawberry.field(description="What the request asks for.")
    def kind(self) -> RequestKind:
        return self.row.kind

    @strawberry.field(
        description="The plan filed with the request: how the configuration the target runs "
        "changes (secret values never shown)."
    )
    def configuration_changes(self, info: Info) -> list[ConfigChange]:
        return [
            ConfigChange.from_diff(change)
            for change in change_requests.requested_changes(info.context.box, self.row)
        ]

    @strawberry.field(description="The earliest time the promotion may start; null: at once.")
    def not_before(self) -> datetime | None:
        return self.row.not_before

    @strawberry.field(description="A rollback request: the revision it re-applies.")
    def rollback_to_revision(self) -> int | None:
        return self.row.rollback_to_revision

    @strawberry.field(description="The FAILED promotion this one retries; null for a first try.")
    async def retry_of(self, info: Info) -> Promotion | None:
        if self.row.retry_of_id is None:
            return None
        row = await info.context.loaders.promotion.load(self.row.retry_of_id)
        if row is None or row.organization_id != self.row.organization_id:
            return None
        return Promotion.from_model(row)


@strawberry.type(description="What a promotion would do, computed without changing anything.")
class PromotionPlan:
    build: LazyBuild | None
    source_environment: LazyEnvironment
    target_environment: LazyEnvironment
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
    soaked_at: datetime | None = strawberry.field(
        default=None,
        description="When the build will have run healthy in the source as long as the target "
        "requires (requiredSoakSeconds); NOT_SOAKED until then. Null: no soak required.",
    )

    @classmethod
    def from_plan(cls, plan: promotions.Plan) -> PromotionPlan:
        return cls(
            build=project_types.Build.from_model(plan.build) if plan.build else None,
            source_environment=environment_types.Environment.from_model(plan.source),
            target_environment=environment_types.Environment.from_model(plan.target),
            missing_configuration=plan.missing,
            configuration_changes=[ConfigChange.from_diff(c) for c in plan.changes],
            requires_approval=plan.requires_approval,
            blockers=plan.blockers,
            soaked_at=plan.soaked_at,
        )


@strawberry.input(
    description="Break-glass: an ADMIN's promotion past a freeze of the target or its approval "
    "policy. It runs at once, is marked as such in the promotion, its events and the audit log, "
    "and the target's reviewers are told through approvalRequests. An environment can forbid "
    "it (emergencyAllowed)."
)
class EmergencyInput:
    reason: str = strawberry.field(description="Why; shown to the reviewers and audited.")


@strawberry.type(description="Why a promotion went past a freeze or the reviews.")
class Emergency:
    reason: str


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
    emergency: EmergencyInput | None = None

    not_before: datetime | None = strawberry.field(
        default=None,
        description="Start no earlier than this (with its time zone, at most 90 days ahead): "
        "until then the promotion is SCHEDULED (after its reviews, where they are needed). "
        "The checks run now, and again when it starts.",
    )

    wait_for_soak: bool | None = strawberry.field(
        default=False,
        description="When the build has not soaked in the source yet (NOT_SOAKED), schedule the "
        "promotion to start by itself once it has, instead of refusing it.",
    )

    def to_request(self) -> promotions.PromotionRequest:
        return promotions.PromotionRequest(
            integration_id=self.integration_id,
            source_environment_id=self.source_environment_id,
            target_environment_id=self.target_environment_id,
            overrides=config_entries(self.overrides),
            copy_source_configuration=bool(self.copy_source_configuration),
            message=self.message,
            idempotency_key=self.idempotency_key,
            emergency_reason=self.emergency.reason if self.emergency is not None else None,
            not_before=self.not_before,
            wait_for_soak=bool(self.wait_for_soak),
        )
