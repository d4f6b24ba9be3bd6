"""Soak time: an environment may require that a build has run healthy in the environment
before it for a while. Until then the plan says NOT_SOAKED and when it will have soaked; a
promotion is refused, or with waitForSoak SCHEDULED for that moment and started by the sweep."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DeploymentChange, Promotion, PromotionStatus, User
from app.models.base import utcnow
from app.services.environments import update_environment
from app.services.errors import Blocker, InvalidInput, PromotionBlocked
from app.services.promotions import Plan, PromotionRequest, plan_promotion, promote, start_due
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme

HOUR = 3600


async def soaking(acme: Acme) -> None:
    """Build 1.0 just went live in Development; Staging configured, requiring an hour's soak."""
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", COMPLETE)
    await acme.run("admin", requiring(acme, HOUR))


def requiring(acme: Acme, seconds: int) -> Call[object]:
    async def call(session: AsyncSession, admin: User) -> object:
        return await update_environment(
            session,
            actor=admin,
            environment_id=acme.environments["Staging"],
            required_soak_seconds=seconds,
        )

    return call


def request(acme: Acme, *, wait_for_soak: bool = False) -> PromotionRequest:
    return PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments["Development"],
        wait_for_soak=wait_for_soak,
    )


def promoting(acme: Acme, *, wait_for_soak: bool = False) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        wanted = request(acme, wait_for_soak=wait_for_soak)
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return call


async def plan(acme: Acme) -> Plan:
    return await acme.run(
        "developer",
        lambda session, actor: plan_promotion(
            session, actor=actor, box=acme.box, request=request(acme)
        ),
    )


async def went_live_ago(acme: Acme, seconds: int) -> None:
    async with acme.session() as session:
        await session.exec(
            update(DeploymentChange)
            .where(col(DeploymentChange.deployment_id) == (await acme.deployment("Development")).id)
            .values(finished_at=utcnow() - timedelta(seconds=seconds))
        )
        await session.commit()


async def test_a_build_that_has_not_soaked_is_blocked_with_the_time_it_will_have(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=soaking)
    planned = await plan(acme)
    assert planned.blockers == [Blocker.NOT_SOAKED]
    assert planned.soaked_at is not None
    left = (planned.soaked_at - utcnow()).total_seconds()
    assert HOUR - 60 < left <= HOUR
    refusal = await acme.refuses("developer", promoting(acme), PromotionBlocked)
    assert refusal.blockers == [Blocker.NOT_SOAKED]

    await went_live_ago(acme, HOUR + 1)
    assert (await plan(acme)).blockers == []
    promotion = await acme.run("developer", promoting(acme))
    assert promotion.status is PromotionStatus.QUEUED


async def test_wait_for_soak_schedules_it_and_the_sweep_starts_it_once_soaked(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=soaking)
    soaked_at = (await plan(acme)).soaked_at
    promotion = await acme.run("developer", promoting(acme, wait_for_soak=True))
    assert promotion.status is PromotionStatus.SCHEDULED
    assert promotion.not_before == soaked_at
    assert await acme.changes("Staging") == []

    await went_live_ago(acme, HOUR + 1)
    async with acme.session() as session:
        await session.exec(
            update(Promotion)
            .where(col(Promotion.id) == promotion.id)
            .values(not_before=utcnow() - timedelta(seconds=1))
        )
        moved = await start_due(session, box=acme.box)
        await session.commit()
    assert [p.id for p in moved] == [promotion.id]
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED
    assert len(await acme.changes("Staging")) == 1


async def test_a_soak_of_zero_removes_it_and_a_bad_one_is_refused(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=soaking)
    for seconds in (-1, 31 * 24 * HOUR):
        refusal = await acme.refuses("admin", requiring(acme, seconds), InvalidInput)
        assert refusal.field == "requiredSoakSeconds"
    await acme.run("admin", requiring(acme, 0))
    assert (await plan(acme)).blockers == []
