"""Retrying a promotion: a FAILED promotion's build, overrides and target are promoted again,
in a new promotion linked to the first, checked against today's rules like any promotion."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    AuditEvent,
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentStatus,
    Promotion,
    PromotionStatus,
    RequestKind,
    User,
)
from app.models.base import utcnow
from app.services.configuration import ConfigEntry
from app.services.errors import Blocker, Conflict, NotFound, PromotionBlocked
from app.services.promotions import (
    PromotionRequest,
    promote,
    retry_promotion,
    sealed_entries,
)
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme
from tests.support.rows import added, every_row


async def running_in_development(acme: Acme) -> None:
    await record_run(acme, "Development", "1.0", values={**COMPLETE, "COLOR": "green"})
    await acme.configure("Staging", {"GREETING": "hello staging", "API_KEY": "staging-key"})


def retrying(acme: Acme, promotion_id: str) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await retry_promotion(session, actor=actor, box=acme.box, promotion_id=promotion_id)

    return call


async def promoted(acme: Acme, **request: object) -> Promotion:
    wanted = PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments["Development"],
        target_environment_id=acme.environments["Staging"],
        overrides=[ConfigEntry(key="COLOR", value="blue")],
        message="ship it",
        **request,  # type: ignore[arg-type]
    )

    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return await acme.run("developer", call)


async def fail(acme: Acme, promotion: Promotion) -> None:
    """What the workers leave when a promotion's change fails for good."""
    async with acme.session() as session:
        row = await session.get(Promotion, promotion.id)
        assert row is not None
        row.status = PromotionStatus.FAILED
        row.error = "the instance did not start"
        row.finished_at = utcnow()
        session.add(row)
        for change in (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.promotion_id == promotion.id)
            )
        ).all():
            change.status = ChangeStatus.FAILED
            change.finished_at = utcnow()
            session.add(change)
        await session.commit()


async def failed_promotion(acme: Acme) -> Promotion:
    promotion = await promoted(acme)
    await fail(acme, promotion)
    return await acme.promotion(promotion.id)


async def test_a_failed_promotion_is_retried_as_a_new_linked_promotion(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    before = await every_row(engine)

    retry = await acme.run("developer", retrying(acme, failed.id))

    assert retry.id != failed.id
    assert retry.retry_of_id == failed.id
    assert retry.status is PromotionStatus.QUEUED
    assert retry.kind is RequestKind.PROMOTION
    assert (retry.build_id, retry.source_environment_id, retry.target_environment_id) == (
        failed.build_id,
        failed.source_environment_id,
        failed.target_environment_id,
    )
    assert retry.deployment_id == failed.deployment_id
    assert retry.message == "ship it"
    assert sealed_entries(acme.box, retry)[0] == [ConfigEntry(key="COLOR", value="blue")]
    # The failed promotion stays as it was.
    assert (await acme.promotion(failed.id)).status is PromotionStatus.FAILED
    changes = await acme.changes("Staging")
    assert [(c.kind, c.status, c.promotion_id) for c in changes] == [
        (ChangeKind.PROMOTION, ChangeStatus.FAILED, failed.id),
        (ChangeKind.PROMOTION, ChangeStatus.QUEUED, retry.id),
    ]
    assert changes[1].build_id == acme.builds["1.0"]
    grown = added(before, await every_row(engine))
    assert grown["promotions"] == 1
    assert grown["deployment_changes"] == 1
    async with acme.session() as session:
        entry = (
            await session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "promotion.requested", AuditEvent.subject_id == retry.id
                )
            )
        ).one()
        first = (
            await session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "promotion.requested", AuditEvent.subject_id == failed.id
                )
            )
        ).one()
    assert entry.detail["retry_of"] == failed.id
    assert "retry_of" not in first.detail


async def test_only_a_failed_promotion_is_retried(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    queued = await promoted(acme)
    refusal = await acme.refuses("developer", retrying(acme, queued.id), Conflict)
    assert refusal.message == (
        f"promotion {queued.id} is QUEUED: only a FAILED promotion can be retried"
    )
    async with acme.session() as session:
        row = await session.get(Promotion, queued.id)
        assert row is not None
        for status in (PromotionStatus.SUCCEEDED, PromotionStatus.CANCELLED):
            row.status = status
            session.add(row)
            await session.commit()
            await acme.refuses("developer", retrying(acme, queued.id), Conflict)
        # A request of another kind (a deploy filed for review, say) is not a promotion.
        row.status = PromotionStatus.FAILED
        row.kind = RequestKind.DEPLOY
        session.add(row)
        await session.commit()
    refusal = await acme.refuses("developer", retrying(acme, queued.id), Conflict)
    assert "only a failed promotion can be retried" in refusal.message


async def test_a_source_that_now_runs_another_build_is_a_conflict(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    await record_run(acme, "Development", "2.0")
    refusal = await acme.refuses("developer", retrying(acme, failed.id), Conflict)
    assert "Development now runs 2.0, not 1.0" in refusal.message


async def test_a_retry_into_a_frozen_target_is_blocked(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    await acme.freeze("Staging", "release week")
    refusal = await acme.refuses("developer", retrying(acme, failed.id), PromotionBlocked)
    assert refusal.blockers == [Blocker.TARGET_FROZEN]


async def test_a_retry_under_an_approval_policy_files_a_request(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    await acme.protect("Staging", required_approvals=1)
    before = await every_row(engine)

    retry = await acme.run("developer", retrying(acme, failed.id))

    assert (retry.status, retry.required_approvals, retry.retry_of_id) == (
        PromotionStatus.PENDING_APPROVAL,
        1,
        failed.id,
    )
    assert added(before, await every_row(engine)).get("deployment_changes", 0) == 0
    staging = await acme.deployment("Staging")
    assert staging.status is not DeploymentStatus.ACTIVE


async def test_another_organizations_promotion_does_not_exist(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    await acme.refuses("outsider", retrying(acme, failed.id), NotFound)
    await acme.refuses("developer", retrying(acme, "pro_missing"), NotFound)


async def test_retries_are_listed_with_the_failed_promotion(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    failed = await failed_promotion(acme)
    retry = await acme.run("developer", retrying(acme, failed.id))
    async with acme.session() as session:
        retries = (
            await session.exec(
                select(Promotion)
                .where(Promotion.retry_of_id == failed.id)
                .order_by(col(Promotion.id))
            )
        ).all()
    assert [row.id for row in retries] == [retry.id]
