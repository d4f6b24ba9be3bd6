"""Live status over graphql-transport-ws: a promotion's statuses, and deployments' events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from sqlmodel import col, select

from app import models
from app.graphql.context import Context, Info
from app.graphql.loaders import Loaders
from app.graphql.promotions.types import Promotion, PromotionEvent
from app.graphql.public_error import PublicError
from app.graphql.releases.types import ReleaseEvent
from app.messaging.bus import Message
from app.messaging.fanout import SubscriberTooSlow
from app.models import DeploymentStatus
from app.services import approvals
from app.services.auth import Owned
from app.services.change_requests import approval_routing_key
from app.services.events import promotion_routing_key
from app.services.releases import release_routing_key

# Without an event, a promotion's subscription still looks at the database this often, so a bus
# that is down (or absent: `promenade api` without RabbitMQ) delays it but does not stall it.
POLL_INTERVAL_S = 5.0


@strawberry.type
class DeploymentEvent:
    deployment_id: strawberry.ID
    integration_id: strawberry.ID
    environment_id: strawberry.ID
    status: DeploymentStatus
    revision: int
    endpoint_url: str | None
    at: datetime
    organization_id: strawberry.Private[str]
    detail_text: strawberry.Private[str | None]

    @strawberry.field
    async def detail(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.organization_id, self.detail_text)

    @classmethod
    def from_body(cls, body: dict[str, object]) -> DeploymentEvent:
        return cls(
            deployment_id=strawberry.ID(str(body["deploymentId"])),
            integration_id=strawberry.ID(str(body["integrationId"])),
            environment_id=strawberry.ID(str(body["environmentId"])),
            status=DeploymentStatus(str(body["status"])),
            revision=int(str(body["revision"])),
            endpoint_url=None if body.get("endpointUrl") is None else str(body["endpointUrl"]),
            detail_text=None if body.get("detail") is None else str(body["detail"]),
            at=datetime.fromisoformat(str(body["at"])),
            organization_id=str(body.get("organizationId", "")),
        )


def _not_found(what: str, object_id: str) -> PublicError:
    return PublicError(f"no {what} with id {object_id}", code="NOT_FOUND")


async def _organization_of(ctx: Context, model: type[Owned], object_id: str) -> str | None:
    """The object's organization, when the viewer belongs to it."""
    async with ctx.sessions() as session:
        row = await session.get(model, object_id)
        if row is None:
            return None
        organization_id = row.organization_id
    return organization_id if await _member_of(ctx, organization_id) else None


async def _member_of(ctx: Context, organization_id: str) -> bool:
    return organization_id in await ctx.current_roles()


Event = TypeVar("Event", models.PromotionEvent, models.ReleaseEvent)


async def _events_after(
    ctx: Context,
    model: type[Event],
    parent: Any,
    parent_id: str,
    after: tuple[datetime, str] | None,
) -> list[Event]:
    """The events of one promotion or release (``parent``: the column naming it), oldest
    first, after the one at ``after`` (all of them without it)."""
    async with ctx.sessions() as session:
        query = select(model).where(parent == parent_id).order_by(col(model.at), col(model.id))
        rows = list((await session.exec(query)).all())
    return rows if after is None else [row for row in rows if (row.at, row.id) > after]


async def _promotion_events(
    ctx: Context, promotion_id: str, after: tuple[datetime, str] | None
) -> list[models.PromotionEvent]:
    column = col(models.PromotionEvent.promotion_id)
    return await _events_after(ctx, models.PromotionEvent, column, promotion_id, after)


async def _release_events(
    ctx: Context, release_id: str, after: tuple[datetime, str] | None
) -> list[models.ReleaseEvent]:
    column = col(models.ReleaseEvent.release_id)
    return await _events_after(ctx, models.ReleaseEvent, column, release_id, after)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every status change of one promotion, starting with its current status; "
        "completes at a final status."
    )
    async def promotion_status(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[PromotionEvent, None]:
        ctx = info.context
        organization = await _organization_of(ctx, models.Promotion, id)
        if organization is None:
            raise _not_found("promotion", id)
        key = promotion_routing_key(id)
        # Listen first, then read: an event recorded in between is seen by the read or wakes
        # the loop. The database is the record; an event only says "look again", so none is
        # lost or reordered, whatever order the bus delivers them in.
        with ctx.hub.wakeups(lambda message: message.routing_key == key) as wakeup:
            events = await _promotion_events(ctx, id, None)
            if not events:
                raise _not_found("promotion", id)
            current = events[-1]
            yield PromotionEvent.from_model(current, organization)
            last = (current.at, current.id)
            final = current.status.is_final
            while not final:
                await wakeup.wait(min(POLL_INTERVAL_S, ctx.recheck_s))
                # A member removed meanwhile sees no more of it.
                if not await _member_of(ctx, organization):
                    raise _not_found("promotion", id)
                for event in await _promotion_events(ctx, id, last):
                    yield PromotionEvent.from_model(event, organization)
                    last = (event.at, event.id)
                    final = event.status.is_final

    @strawberry.subscription(
        description="Every status change of one release (each member's start among them), "
        "starting with its current status; completes at a final status. Each member's own "
        "progress streams through promotionStatus."
    )
    async def release_status(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[ReleaseEvent, None]:
        ctx = info.context
        organization = await _organization_of(ctx, models.Release, id)
        if organization is None:
            raise _not_found("release", id)
        key = release_routing_key(id)
        # As promotionStatus: listen first, then read; the database is the record.
        with ctx.hub.wakeups(lambda message: message.routing_key == key) as wakeup:
            events = await _release_events(ctx, id, None)
            if not events:
                raise _not_found("release", id)
            current = events[-1]
            yield ReleaseEvent.from_model(current)
            last = (current.at, current.id)
            final = current.status.is_final
            while not final:
                await wakeup.wait(min(POLL_INTERVAL_S, ctx.recheck_s))
                if not await _member_of(ctx, organization):
                    raise _not_found("release", id)
                for event in await _release_events(ctx, id, last):
                    yield ReleaseEvent.from_model(event)
                    last = (event.at, event.id)
                    final = event.status.is_final

    @strawberry.subscription(
        description="Status changes of deployments, filtered by environment and/or integration "
        "(without a filter: every deployment of the viewer's organizations)."
    )
    async def deployment_events(
        self,
        info: Info,
        environment_id: strawberry.ID | None = None,
        integration_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[DeploymentEvent, None]:
        ctx = info.context
        organizations: set[str] = set()
        if environment_id is not None:
            org = await _organization_of(ctx, models.Environment, environment_id)
            if org is None:
                raise _not_found("environment", environment_id)
            organizations.add(org)
        if integration_id is not None:
            org = await _organization_of(ctx, models.Integration, integration_id)
            if org is None:
                raise _not_found("integration", integration_id)
            organizations.add(org)
        filtered = bool(organizations)
        if not filtered:
            organizations = set(await ctx.current_roles())

        def accept(message: Message) -> bool:
            body = message.body
            return (
                message.routing_key.startswith("deployment.")
                and body.get("organizationId") in organizations
                and (environment_id is None or body.get("environmentId") == environment_id)
                and (integration_id is None or body.get("integrationId") == integration_id)
            )

        with ctx.hub.subscribe(accept) as subscriber:
            while True:
                try:
                    message = await subscriber.next(ctx.recheck_s)
                except SubscriberTooSlow as slow:
                    raise PublicError(str(slow), code="TOO_SLOW") from None
                # What the viewer may see now (roles at most recheck_s old, read for every
                # socket at once): a member removed from an organization hears no more of it
                # (a filtered subscription ends, as if not found).
                current = set(await ctx.current_roles())
                if filtered and not organizations <= current:
                    what = "environment" if environment_id is not None else "integration"
                    raise _not_found(what, str(environment_id or integration_id))
                if not filtered:
                    organizations.clear()
                    organizations.update(current)
                if message is None or not accept(message):
                    continue
                yield DeploymentEvent.from_body(message.body)

    @strawberry.subscription(
        description="New promotion requests the viewer may review, and emergency promotions "
        "that went past a freeze or the reviews of an environment the viewer reviews for "
        "(ADMINs hear of every one)."
    )
    async def approval_requests(
        self, info: Info, organization_id: strawberry.ID
    ) -> AsyncGenerator[Promotion, None]:
        ctx = info.context
        if not await _member_of(ctx, organization_id):
            raise _not_found("organization", organization_id)
        key = approval_routing_key(organization_id)
        with ctx.hub.subscribe(lambda message: message.routing_key == key) as subscriber:
            while True:
                try:
                    message = await subscriber.next(ctx.recheck_s)
                except SubscriberTooSlow as slow:
                    raise PublicError(str(slow), code="TOO_SLOW") from None
                if not await _member_of(ctx, organization_id):
                    raise _not_found("organization", organization_id)
                if message is None:
                    continue
                async with ctx.sessions() as session:
                    promotion = await session.get(
                        models.Promotion, str(message.body.get("promotionId"))
                    )
                    # A request to review, or an emergency promotion that went past the
                    # reviews: the target's reviewers are told of that too.
                    told = (
                        approvals.hears_of_emergency
                        if message.body.get("emergency")
                        else approvals.awaits_review_by
                    )
                    if promotion is None or not await told(
                        session, user=ctx.viewer, promotion=promotion
                    ):
                        continue
                yield Promotion.from_model(promotion)
                # Its fields were read through the operation's session, and it was sent: end
                # that transaction (no database connection held until the next request) and
                # read the next one through fresh loaders.
                await ctx.session.rollback()
                ctx.loaders = Loaders(ctx.session)
