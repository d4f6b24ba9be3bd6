"""Scheduled promotions: a promotion with a notBefore in the future passes every check at once
and is SCHEDULED; the schedule sweep starts it when its time comes (once, however many
processes sweep), after checking again: a frozen target keeps it SCHEDULED, another new
blocker fails it. Under an approval policy it is reviewed first, then SCHEDULED."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import create_session_factory
from app.models import ChangeKind, ChangeStatus, Promotion, PromotionStatus, User
from app.models.base import utcnow
from app.services.approvals import approve, cancel
from app.services.environments import set_deployment_windows, unfreeze_environment
from app.services.errors import Forbidden, InvalidInput, PromotionBlocked
from app.services.promotions import PromotionRequest, promote, start_due
from app.services.windows import DeploymentWindow, window
from app.sweeps import ScheduleSweep
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme


async def ready_for_staging(acme: Acme) -> None:
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", COMPLETE)


def promoting(acme: Acme, not_before: datetime | None) -> Call[Promotion]:
    wanted = PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments["Development"],
        not_before=not_before,
    )

    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return call


async def make_due(acme: Acme, promotion_id: str) -> None:
    """The promotion's time has come (as if the clock had moved on)."""
    async with acme.session() as session:
        await session.exec(
            update(Promotion)
            .where(Promotion.id == promotion_id)  # type: ignore[arg-type]
            .values(not_before=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def sweep(acme: Acme) -> int:
    return await ScheduleSweep(
        create_session_factory(acme.engine), box=acme.box, interval_s=1.0
    ).sweep()


async def test_a_promotion_with_a_future_not_before_is_scheduled_and_runs_nothing(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    when = utcnow() + timedelta(hours=2)
    promotion = await acme.run("developer", promoting(acme, when))
    stored = await acme.promotion(promotion.id)
    assert stored.status is PromotionStatus.SCHEDULED
    assert stored.not_before == when
    assert await acme.changes("Staging") == []
    # Not due yet: the sweep leaves it alone.
    assert await sweep(acme) == 0
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.SCHEDULED


async def test_a_not_before_already_past_starts_at_once(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() - timedelta(minutes=1)))
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED
    assert [c.kind for c in await acme.changes("Staging")] == [ChangeKind.PROMOTION]


@pytest.mark.parametrize(
    ("not_before", "says"),
    [
        (datetime(2030, 1, 1, 12, 0), "time zone"),
        (datetime.now(UTC) + timedelta(days=91), "at most 90 days ahead"),
    ],
)
async def test_a_bad_not_before_is_refused_and_nothing_is_written(
    engine: AsyncEngine, not_before: datetime, says: str
) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    refusal = await acme.refuses("developer", promoting(acme, not_before), InvalidInput)
    assert refusal.field == "notBefore"
    assert says in refusal.message


async def test_blockers_refuse_a_scheduled_promotion_at_request_time(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    await acme.freeze("Staging")
    await acme.refuses(
        "developer", promoting(acme, utcnow() + timedelta(hours=1)), PromotionBlocked
    )


async def test_a_scheduled_promotion_can_be_cancelled(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))

    async def cancelling(session: AsyncSession, actor: User) -> Promotion:
        return await cancel(session, actor=actor, promotion_id=promotion.id)

    await acme.run("developer", cancelling)
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.CANCELLED
    await make_due(acme, promotion.id)
    assert await sweep(acme) == 0
    assert await acme.changes("Staging") == []


async def test_the_sweep_starts_a_due_promotion_once(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))
    await make_due(acme, promotion.id)
    # Two API processes sweep at the same moment, then again.
    started = await asyncio.gather(sweep(acme), sweep(acme))
    assert sorted(started) == [0, 1]
    assert await sweep(acme) == 0
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED
    changes = await acme.changes("Staging")
    assert [(c.kind, c.status, c.promotion_id) for c in changes] == [
        (ChangeKind.PROMOTION, ChangeStatus.QUEUED, promotion.id)
    ]


async def test_a_frozen_target_keeps_it_scheduled_until_unfrozen(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))
    await acme.freeze("Staging")
    await make_due(acme, promotion.id)
    assert await sweep(acme) == 0
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.SCHEDULED
    assert await acme.changes("Staging") == []

    async def unfreezing(session: AsyncSession, actor: User) -> object:
        return await unfreeze_environment(
            session, actor=actor, environment_id=acme.environments["Staging"]
        )

    await acme.run("admin", unfreezing)
    assert await sweep(acme) == 1
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED
    assert len(await acme.changes("Staging")) == 1


async def test_a_new_blocker_fails_it_when_its_time_comes(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))
    # A required value removed from Staging meanwhile.
    await acme.configure("Staging", {"GREETING": None})
    await make_due(acme, promotion.id)
    async with acme.session() as session:
        moved = await start_due(session, box=acme.box)
        await session.commit()
    assert [p.id for p in moved] == [promotion.id]
    failed = await acme.promotion(promotion.id)
    assert failed.status is PromotionStatus.FAILED
    assert failed.error is not None and "MISSING_CONFIGURATION" in failed.error
    assert "GREETING" in failed.error
    assert await acme.changes("Staging") == []


async def test_an_approved_request_waits_for_its_time(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    await acme.protect("Staging")
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.PENDING_APPROVAL

    async def approving(session: AsyncSession, actor: User) -> Promotion:
        return await approve(session, actor=actor, promotion_id=promotion.id)

    await acme.run("approver", approving)
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.SCHEDULED
    assert await acme.changes("Staging") == []
    await make_due(acme, promotion.id)
    assert await sweep(acme) == 1
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED
    [change] = await acme.changes("Staging")
    assert change.expected_config_version is not None


def setting_windows(acme: Acme, *windows: DeploymentWindow) -> Call[object]:
    async def call(session: AsyncSession, actor: User) -> object:
        return await set_deployment_windows(
            session,
            actor=actor,
            environment_id=acme.environments["Staging"],
            windows=[w.to_json() for w in windows],
        )

    return call


def closed_window_now() -> tuple[DeploymentWindow, datetime]:
    """A one-hour window every day, starting two hours from now (UTC), and its next start."""
    starts = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    ends = starts + timedelta(hours=1)
    every_day = [1, 2, 3, 4, 5, 6, 7]
    return window(every_day, f"{starts:%H:%M}", f"{ends:%H:%M}", "UTC"), starts


async def test_outside_the_targets_windows_a_promotion_waits_for_the_next_one(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    later, starts = closed_window_now()
    await acme.run("admin", setting_windows(acme, later))
    promotion = await acme.run("developer", promoting(acme, None))
    stored = await acme.promotion(promotion.id)
    assert stored.status is PromotionStatus.SCHEDULED
    assert stored.not_before == starts
    assert await acme.changes("Staging") == []
    # Windows removed: when its time comes it starts.
    await acme.run("admin", setting_windows(acme))
    await make_due(acme, promotion.id)
    assert await sweep(acme) == 1
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED


async def test_inside_a_window_a_promotion_starts_at_once(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    now = utcnow()
    open_now = window([now.isoweekday()], "00:00", "23:59", "UTC")
    if now.hour == 23 and now.minute == 59:
        open_now = window([1, 2, 3, 4, 5, 6, 7], "23:00", "22:00", "UTC")
    await acme.run("admin", setting_windows(acme, open_now))
    promotion = await acme.run("developer", promoting(acme, None))
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.QUEUED


async def test_windows_set_after_scheduling_move_a_due_promotion_to_the_next_start(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    promotion = await acme.run("developer", promoting(acme, utcnow() + timedelta(hours=1)))
    later, starts = closed_window_now()
    await acme.run("admin", setting_windows(acme, later))
    await make_due(acme, promotion.id)
    assert await sweep(acme) == 0
    stored = await acme.promotion(promotion.id)
    assert stored.status is PromotionStatus.SCHEDULED
    assert stored.not_before == starts
    assert await acme.changes("Staging") == []


async def test_only_an_admin_sets_windows(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    later, _ = closed_window_now()
    await acme.refuses("developer", setting_windows(acme, later), Forbidden)


def test_scheduled_is_not_final_for_the_server_nor_for_the_clis_wait() -> None:
    from app.client.api import FINAL_PROMOTION_STATUSES as CLI_FINAL

    assert not PromotionStatus.SCHEDULED.is_final
    assert "SCHEDULED" not in CLI_FINAL
    assert {s.value for s in PromotionStatus if s.is_final} == CLI_FINAL
