"""The queue of a deployment's changes (app/services/change_queue.py): superseding. A newer
build queued for a deployment ends the changes that wait to run older builds there, and their
requests; what a worker took runs on, and what asks for something else (a rollback) stays."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    AuditEvent,
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    User,
)
from app.services.changes import deploy
from app.services.configuration import ConfigEntry
from app.services.lifecycle import claim_change
from app.services.projects import create_build
from app.services.promotions import PromotionRequest, promote
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme


def deploying(acme: Acme, version: str) -> Call[object]:
    async def call(session: AsyncSession, actor: User) -> object:
        return await deploy(
            session,
            actor=actor,
            box=acme.box,
            integration_id=acme.integration_id,
            build_id=acme.builds[version],
            environment_id=acme.environments["Development"],
            configuration=[ConfigEntry(k, v) for k, v in COMPLETE.items()],
        )

    return call


def promoting_to_staging(acme: Acme) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        request = PromotionRequest(
            integration_id=acme.integration_id,
            source_environment_id=acme.environments["Development"],
            target_environment_id=acme.environments["Staging"],
        )
        return await promote(session, actor=actor, box=acme.box, request=request)

    return call


async def with_build_3(acme: Acme) -> None:
    async with acme.session() as session:
        admin = await session.get(User, acme.users["admin"])
        assert admin is not None
        build = await create_build(
            session, actor=admin, integration_id=acme.integration_id, version="3.0", artifact="x"
        )
        await session.commit()
    acme.builds["3.0"] = build.id


def statuses(changes: list[DeploymentChange]) -> list[tuple[str | None, ChangeStatus]]:
    return [(change.build_id, change.status) for change in changes]


async def superseded_audit(acme: Acme) -> list[dict[str, Any]]:
    async with acme.session() as session:
        rows = await session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "change.superseded")
            .order_by(col(AuditEvent.id))
        )
        return [row.detail for row in rows.all()]


async def test_three_queued_builds_leave_only_the_newest_to_run(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await with_build_3(acme)
    for version in ("1.0", "2.0", "3.0"):
        await acme.run("developer", deploying(acme, version))

    changes = await acme.changes("Development")
    b = acme.builds
    assert statuses(changes) == [
        (b["1.0"], ChangeStatus.SUPERSEDED),
        (b["2.0"], ChangeStatus.SUPERSEDED),
        (b["3.0"], ChangeStatus.QUEUED),
    ]
    first, second, newest = changes
    assert first.error == f"superseded by build 2.0, queued after it (change {second.id})"
    assert second.error == f"superseded by build 3.0, queued after it (change {newest.id})"
    assert first.finished_at is not None
    audited = await superseded_audit(acme)
    assert [(d["change_id"], d["superseded_by"], d["build"]) for d in audited] == [
        (first.id, second.id, "2.0"),
        (second.id, newest.id, "3.0"),
    ]


async def test_a_change_a_worker_took_runs_on_and_an_older_build_queued_later_waits(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.run("developer", deploying(acme, "1.0"))
    [taken] = await acme.changes("Development")
    async with acme.session() as session:
        change = await session.get(DeploymentChange, taken.id)
        assert change is not None
        assert await claim_change(session, change, ChangeStatus.APPLYING_CONFIGURATION)
        await session.commit()

    await acme.run("developer", deploying(acme, "2.0"))
    # An older build asked for after a newer one: it asks for that build, and runs in turn.
    await acme.run("developer", deploying(acme, "1.0"))

    b = acme.builds
    assert statuses(await acme.changes("Development")) == [
        (b["1.0"], ChangeStatus.APPLYING_CONFIGURATION),
        (b["2.0"], ChangeStatus.QUEUED),
        (b["1.0"], ChangeStatus.QUEUED),
    ]
    assert await superseded_audit(acme) == []


async def test_a_waiting_promotion_of_an_older_build_ends_superseded_with_its_event(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Staging", {"GREETING": "hello staging", "API_KEY": "staging-key"})
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    older = await acme.run("developer", promoting_to_staging(acme))
    await record_run(acme, "Development", "2.0")
    newer = await acme.run("developer", promoting_to_staging(acme))

    assert (await acme.promotion(older.id)).status is PromotionStatus.SUPERSEDED
    assert (await acme.promotion(newer.id)).status is PromotionStatus.QUEUED
    async with acme.session() as session:
        events = (
            await session.exec(
                select(PromotionEvent)
                .where(PromotionEvent.promotion_id == older.id)
                .order_by(col(PromotionEvent.at), col(PromotionEvent.id))
            )
        ).all()
    assert [event.status for event in events][-1] is PromotionStatus.SUPERSEDED
    assert events[-1].detail is not None and "superseded by build 2.0" in events[-1].detail
    kinds = [(c.kind, c.status) for c in await acme.changes("Staging")]
    assert kinds == [
        (ChangeKind.PROMOTION, ChangeStatus.SUPERSEDED),
        (ChangeKind.PROMOTION, ChangeStatus.QUEUED),
    ]
