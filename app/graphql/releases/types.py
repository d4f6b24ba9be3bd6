"""A release as clients see it: its members in the order they run, each member's promotion
once it started, the one request for review, and every status it went through."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlmodel import col, select

from app import models
from app.graphql.configuration import ConfigEntryInput, config_entries
from app.graphql.context import Info
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.graphql.objects import Node, related, snapshot
from app.graphql.projects import LazyBuild, LazyIntegration
from app.graphql.projects import types as project_types
from app.graphql.promotions import LazyPromotion
from app.graphql.promotions import types as promotion_types
from app.models import ReleaseStatus, RequestKind
from app.services import releases
from app.services.errors import Blocker


@strawberry.type
class ReleaseEvent:
    release_id: strawberry.ID
    status: ReleaseStatus
    detail: str | None
    at: datetime

    @classmethod
    def from_model(cls, row: models.ReleaseEvent) -> ReleaseEvent:
        return snapshot(cls, row, release_id=strawberry.ID(row.release_id))


@strawberry.type
class ReleaseMember:
    position: int = strawberry.field(description="0 runs first.")
    rolled_back: bool = strawberry.field(
        description="The release rolled its change back after another member failed."
    )
    integration_id: strawberry.Private[str]
    build_id: strawberry.Private[str]
    promotion_row: strawberry.Private[models.Promotion | None]

    @strawberry.field
    async def integration(self, info: Info) -> LazyIntegration:
        return await related(
            info.context.loaders.integration,
            self.integration_id,
            project_types.Integration.from_model,
        )

    @strawberry.field
    async def build(self, info: Info) -> LazyBuild:
        return await related(
            info.context.loaders.build, self.build_id, project_types.Build.from_model
        )

    @strawberry.field(description="Its promotion; null until its turn.")
    def promotion(self) -> LazyPromotion | None:
        row = self.promotion_row
        return promotion_types.Promotion.from_model(row) if row is not None else None


@strawberry.type(
    description="Several integrations' builds promoted together, in the order of their "
    "dependencies; when one fails, the members it changed are rolled back (unless kept)."
)
class Release(Node):
    name: str
    status: ReleaseStatus
    keep_on_failure: bool
    message: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    row: strawberry.Private[models.Release]

    @classmethod
    def from_model(cls, row: models.Release) -> Release:
        return snapshot(cls, row, row=row)

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

    @strawberry.field(description="In the order they run.")
    async def members(self, info: Info) -> list[ReleaseMember]:
        promotions = await releases.member_promotions(info.context.session, self.row)
        return [
            ReleaseMember(
                position=position,
                rolled_back=member["integration_id"] in self.row.rolled_back,
                integration_id=member["integration_id"],
                build_id=member["build_id"],
                promotion_row=promotions.get(member["integration_id"]),
            )
            for position, member in enumerate(self.row.members)
        ]

    @strawberry.field(
        description="The one request for the whole release, into a protected environment: "
        "approved (approvePromotion) or rejected as any request. Null where none was needed."
    )
    async def request(self, info: Info) -> LazyPromotion | None:
        row = (
            await info.context.session.exec(
                select(models.Promotion).where(
                    models.Promotion.release_id == self.id,
                    models.Promotion.kind == RequestKind.RELEASE,
                )
            )
        ).first()
        return promotion_types.Promotion.from_model(row) if row is not None else None

    @strawberry.field(description="Every status change, oldest first.")
    async def events(self, info: Info) -> list[ReleaseEvent]:
        rows = await info.context.session.exec(
            select(models.ReleaseEvent)
            .where(models.ReleaseEvent.release_id == self.id)
            .order_by(col(models.ReleaseEvent.at), col(models.ReleaseEvent.id))
        )
        return [ReleaseEvent.from_model(row) for row in rows.all()]


@strawberry.type
class ReleaseMemberPlan:
    integration: LazyIntegration
    plan: promotion_types.PromotionPlan


@strawberry.type(description="What createRelease(input) would do now, without doing it.")
class ReleasePlan:
    members: list[ReleaseMemberPlan] = strawberry.field(description="In the order they run.")
    requires_approval: bool
    blockers: list[Blocker] = strawberry.field(description="Every member's, together.")


@strawberry.input
class ReleaseMemberInput:
    integration_id: strawberry.ID
    overrides: list[ConfigEntryInput] | None = strawberry.field(
        default_factory=list, description="Values for the target, as a promotion's overrides."
    )


@strawberry.input
class CreateReleaseInput:
    name: str
    source_environment_id: strawberry.ID
    members: list[ReleaseMemberInput] = strawberry.field(
        description="1 to 20 integrations of the organization; they run in the order of their "
        "dependencies (dependsOn), else in this order."
    )
    target_environment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the next environment of the pipelines."
    )
    keep_on_failure: bool = strawberry.field(
        default=False,
        description="When a member fails, keep the members already changed instead of "
        "rolling them back.",
    )
    message: str | None = None

    def to_request(self) -> releases.ReleaseRequest:
        return releases.ReleaseRequest(
            name=self.name,
            source_environment_id=self.source_environment_id,
            target_environment_id=self.target_environment_id,
            members=[
                releases.MemberRequest(
                    integration_id=member.integration_id, overrides=config_entries(member.overrides)
                )
                for member in self.members
            ],
            keep_on_failure=self.keep_on_failure,
            message=self.message,
        )
