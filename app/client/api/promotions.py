"""Promotions: planned, sent, retried, read and followed through promotionStatus
(operations/promotions.graphql)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import NotRequired, TypedDict, cast

from app.client.api.deployments import ConfigEntry
from app.client.api.environments import EnvironmentRef
from app.client.api.integrations import BuildRef, IntegrationRef
from app.client.errors import NotFound, mutation_result
from app.client.transport import GraphQLClient

FINAL_PROMOTION_STATUSES = frozenset(
    {"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED", "SUPERSEDED"}
)


class ConfigChange(TypedDict):
    key: str
    secret: bool
    before: str | None
    after: str | None
    kind: str


class PromotionPlan(TypedDict):
    build: BuildRef | None
    sourceEnvironment: EnvironmentRef
    targetEnvironment: EnvironmentRef
    missingConfiguration: list[str]
    configurationChanges: list[ConfigChange]
    requiresApproval: bool
    blockers: list[str]


class PromotionEvent(TypedDict):
    status: str
    detail: str | None
    at: str
    # Only in promotionStatus's events (Promotion.events leave it out: it is the promotion's).
    promotionId: NotRequired[str]


class Promotion(TypedDict):
    id: str
    status: str
    message: str | None
    requestedAt: str
    requiredApprovals: int
    error: str | None
    finishedAt: str | None
    integration: IntegrationRef
    build: BuildRef
    sourceEnvironment: EnvironmentRef
    targetEnvironment: EnvironmentRef
    events: list[PromotionEvent]


class EmergencyInput(TypedDict):
    reason: str


class PromoteInput(TypedDict):
    integrationId: str
    sourceEnvironmentId: str
    targetEnvironmentId: NotRequired[str | None]
    overrides: NotRequired[list[ConfigEntry]]
    copySourceConfiguration: NotRequired[bool]
    message: NotRequired[str | None]
    idempotencyKey: NotRequired[str | None]
    emergency: NotRequired[EmergencyInput | None]
    waitForSoak: NotRequired[bool]


class PromotionOperations:
    client: GraphQLClient

    async def promotion_plan(self, request: PromoteInput) -> PromotionPlan | None:
        data = await self.client.execute("PromotionPlan", {"input": request})
        return cast("PromotionPlan | None", data["promotionPlan"])

    async def promote(self, request: PromoteInput) -> Promotion:
        data = await self.client.execute("Promote", {"input": request})
        return cast("Promotion", mutation_result(data, "promote", "Promotion"))

    async def retry_promotion(self, promotion_id: str) -> Promotion:
        data = await self.client.execute("RetryPromotion", {"id": promotion_id})
        return cast("Promotion", mutation_result(data, "retryPromotion", "Promotion"))

    async def promotion(self, promotion_id: str) -> Promotion:
        data = await self.client.execute("Promotion", {"id": promotion_id})
        if data["promotion"] is None:
            raise NotFound(f"no promotion with id {promotion_id}")
        return cast("Promotion", data["promotion"])

    async def promotion_status(self, promotion_id: str) -> AsyncGenerator[PromotionEvent, None]:
        """The promotion's current status, then every change; ends after a final status."""
        async for data in self.client.subscribe("PromotionStatus", {"id": promotion_id}):
            yield cast("PromotionEvent", data["promotionStatus"])
