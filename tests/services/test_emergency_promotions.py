"""Break-glass: an ADMIN promotes past a freeze of the target or its approval policy, with a
reason. The promotion runs at once and is marked as an emergency in the promotion, its events
and the audit log; the target's reviewers are told. Anyone else, a promotion without a reason,
or an environment that forbids it is refused, writing nothing; the other blockers still hold."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    AuditEvent,
    ChangeKind,
    ChangeStatus,
    OutboxMessage,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    Role,
    User,
)
from app.services.approvals import awaits_review_by, hears_of_emergency
from app.services.change_requests import approval_routing_key
from app.services.environments import update_environment
from app.services.errors import Blocker, Forbidden, InvalidInput, PromotionBlocked
from app.services.promotions import PromotionRequest, promote
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme, told_the_workers

REASON = "INC-4711: the payment callback drops orders"


async def running_in_development(acme: Acme) -> None:
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", COMPLETE)


def promoting(acme: Acme, reason: str | None = REASON) -> Call[Promotion]:
    wanted = PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments["Development"],
        emergency_reason=reason,
    )

    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return call


async def audit_actions(acme: Acme, subject_id: str) -> dict[str, dict[str, object]]:
    async with acme.session() as session:
        rows = await session.exec(
            select(AuditEvent)
            .where(AuditEvent.subject_id == subject_id)
            .order_by(col(AuditEvent.id))
        )
        return {row.action: row.detail for row in rows.all()}


async def test_an_admin_promotes_through_a_freeze_and_it_is_marked_as_an_emergency(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.freeze("Staging", "release week")

    promotion = await acme.run("admin", promoting(acme, f"  {REASON} "))

    assert promotion.status is PromotionStatus.QUEUED
    assert promotion.emergency_reason == REASON
    [change] = await acme.changes("Staging")
    assert (change.kind, change.status) == (ChangeKind.PROMOTION, ChangeStatus.QUEUED)
    assert await told_the_workers(acme, change)
    async with acme.session() as session:
        [event] = (
            await session.exec(
                select(PromotionEvent).where(PromotionEvent.promotion_id == promotion.id)
            )
        ).all()
    assert event.status is PromotionStatus.QUEUED
    assert event.detail is not None and event.detail.startswith(f"EMERGENCY ({REASON}): 1.0")
    audited = await audit_actions(acme, promotion.id)
    assert audited["promotion.emergency"] == {
        "reason": REASON,
        "passed": ["TARGET_FROZEN"],
        "target": "Staging",
        "build": "1.0",
    }
    assert "promotion.requested" in audited


async def test_an_emergency_passes_the_approval_policy_and_its_reviewers_are_told(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.protect("Staging", required_approvals=2, approver_roles=[Role.APPROVER])

    promotion = await acme.run("admin", promoting(acme))

    assert promotion.status is PromotionStatus.QUEUED  # no review: it runs
    assert (await audit_actions(acme, promotion.id))["promotion.emergency"]["passed"] == [
        "APPROVAL_POLICY"
    ]
    async with acme.session() as session:
        notice = (
            await session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.routing_key == approval_routing_key(acme.id)
                )
            )
        ).one()
    assert notice.body == {
        "promotionId": promotion.id,
        "organizationId": acme.id,
        "emergency": True,
    }
    told = {
        who: await acme.run(
            who,
            lambda session, user: hears_of_emergency(session, user=user, promotion=promotion),
        )
        for who in acme.users
    }
    assert told == {
        "admin": False,  # the one who did it
        "developer": False,
        "developer2": False,
        "approver": True,
        "approver2": True,
        "viewer": False,
        "outsider": False,
    }
    # It is nobody's to review: it went past the reviews.
    assert not await acme.run(
        "approver",
        lambda session, user: awaits_review_by(session, user=user, promotion=promotion),
    )


async def test_only_an_admin_with_a_reason_breaks_the_glass(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.freeze("Staging", "release week")
    for who in ("developer", "approver", "viewer"):
        await acme.refuses(who, promoting(acme), Forbidden)
    for reason in ("", "   ", "x" * 2001):
        refusal = await acme.refuses("admin", promoting(acme, reason), InvalidInput)
        assert refusal.field == "emergency.reason"


async def test_an_environment_can_forbid_it(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.freeze("Staging", "release week")
    await acme.run(
        "admin",
        lambda session, admin: update_environment(
            session,
            actor=admin,
            environment_id=acme.environments["Staging"],
            emergency_allowed=False,
        ),
    )
    refusal = await acme.refuses("admin", promoting(acme), Forbidden)
    assert refusal.message == "Staging does not allow emergency promotions"


async def test_the_other_blockers_still_hold(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)  # nothing runs in Development
    await acme.freeze("Staging", "release week")
    refusal = await acme.refuses("admin", promoting(acme), PromotionBlocked)
    assert Blocker.SOURCE_NOT_ACTIVE in refusal.blockers
