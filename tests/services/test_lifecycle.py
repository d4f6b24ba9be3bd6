"""The lifecycle tables, and the one writer of each status: a move the tables allow is recorded
with its event and outbox row; any other raises IllegalTransition and writes nothing."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from typing import Any

import pytest
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    AuditEvent,
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentStatus,
    OutboxMessage,
    Promotion,
    PromotionEvent,
    PromotionStatus,
)
from app.services.lifecycle import (
    CHANGE_FLOW,
    DEPLOYMENT_FLOW,
    PROMOTION_FLOW,
    PROMOTION_STATUS_OF_CHANGE,
    IllegalTransition,
    claim_change,
    follow_change,
    hold_promotion,
    move_change,
    move_promotion,
)
from app.services.projects import create_project
from tests.conftest import make_organization, make_user
from tests.support.promotions import promotion_of_new_integration

Flow = Mapping[Any, frozenset[Any]]


def _reachable_finals(flow: Flow, start: Any) -> set[Any]:
    seen, todo = {start}, deque([start])
    while todo:
        for following in flow[todo.popleft()]:
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return {status for status in seen if status.is_final}


@pytest.mark.parametrize("flow", [PROMOTION_FLOW, CHANGE_FLOW], ids=["promotion", "change"])
def test_every_status_is_in_the_table_and_every_one_that_is_not_final_can_end(
    flow: Flow,
) -> None:
    statuses: type[enum.Enum] = type(next(iter(flow)))
    assert set(flow) == set(statuses)
    for status, following in flow.items():
        if status.is_final:
            assert not following, f"{status} is final"
        else:
            assert _reachable_finals(flow, status), f"{status} can never end"


def test_every_deployment_status_is_in_the_table_and_can_come_back_to_active() -> None:
    assert set(DEPLOYMENT_FLOW) == set(DeploymentStatus)
    for status in DeploymentStatus:
        seen, todo = {status}, deque([status])
        while todo:
            for following in DEPLOYMENT_FLOW[todo.popleft()] - seen:
                seen.add(following)
                todo.append(following)
        assert DeploymentStatus.ACTIVE in seen, status
    # Nothing runs yet: only a queued deploy or promotion moves it.
    assert DEPLOYMENT_FLOW[DeploymentStatus.NOT_DEPLOYED] == {DeploymentStatus.IN_PROGRESS}


def test_a_promotion_follows_its_change_by_moves_its_own_table_allows() -> None:
    for status, following in CHANGE_FLOW.items():
        for then in following:
            before, after = PROMOTION_STATUS_OF_CHANGE[status], PROMOTION_STATUS_OF_CHANGE[then]
            assert after in PROMOTION_FLOW[before], f"change {status} -> {then}"


async def _queued_promotion(session: AsyncSession, box: SecretBox) -> Promotion:
    admin = await make_user(session, "ada@lifecycle.example.com")
    org = await make_organization(session, admin, slug="lifecycle")
    project = await create_project(session, actor=admin, organization_id=org.id, name="P")
    promotion = await promotion_of_new_integration(
        session, box, admin=admin, project=project, name="I", status=PromotionStatus.QUEUED
    )
    await session.commit()
    return promotion


async def _written(session: AsyncSession, promotion_id: str) -> tuple[int, int]:
    events = await session.exec(
        select(PromotionEvent).where(PromotionEvent.promotion_id == promotion_id)
    )
    outbox = await session.exec(select(OutboxMessage))
    return len(events.all()), len(outbox.all())


async def test_a_promotion_move_is_recorded_with_its_event_and_outbox_row(
    session: AsyncSession, box: SecretBox
) -> None:
    promotion = await _queued_promotion(session, box)
    before = await _written(session, promotion.id)
    await move_promotion(session, promotion, PromotionStatus.APPLYING_CONFIGURATION, detail="go")
    await session.commit()
    assert await _written(session, promotion.id) == (before[0] + 1, before[1] + 1)
    assert promotion.status is PromotionStatus.APPLYING_CONFIGURATION
    assert promotion.finished_at is None


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (PromotionStatus.SUCCEEDED, PromotionStatus.QUEUED),  # a final status stays
        (PromotionStatus.QUEUED, PromotionStatus.SUCCEEDED),  # a step skipped
        (PromotionStatus.QUEUED, PromotionStatus.REJECTED),  # reviews are over once queued
        (PromotionStatus.RESTARTING, PromotionStatus.CANCELLED),  # too late to cancel
    ],
)
async def test_a_move_the_table_forbids_raises_and_writes_nothing(
    session: AsyncSession, box: SecretBox, start: PromotionStatus, to: PromotionStatus
) -> None:
    promotion = await _queued_promotion(session, box)
    promotion.status = start
    session.add(promotion)
    await session.commit()
    before = await _written(session, promotion.id)
    with pytest.raises(IllegalTransition, match=f"is {start.value}: it cannot become {to.value}"):
        await move_promotion(session, promotion, to, detail=None)
    await session.commit()
    assert await _written(session, promotion.id) == before
    await session.refresh(promotion)
    assert promotion.status is start


async def test_a_change_ends_once_with_when_and_why(session: AsyncSession, box: SecretBox) -> None:
    promotion = await _queued_promotion(session, box)
    change = DeploymentChange(
        organization_id=promotion.organization_id,
        deployment_id=promotion.deployment_id,
        kind=ChangeKind.RESTART,
        error="an earlier attempt failed",
    )
    session.add(change)
    move_change(session, change, ChangeStatus.APPLYING_CONFIGURATION)
    assert change.error == "an earlier attempt failed"  # kept until the change ends
    move_change(session, change, ChangeStatus.FAILED, error="it did not start")
    assert (change.error, change.finished_at is not None) == ("it did not start", True)
    with pytest.raises(IllegalTransition):
        move_change(session, change, ChangeStatus.SUCCEEDED)
    assert change.status is ChangeStatus.FAILED


async def _queued_change(session: AsyncSession, promotion: Promotion) -> DeploymentChange:
    change = DeploymentChange(
        organization_id=promotion.organization_id,
        deployment_id=promotion.deployment_id,
        promotion_id=promotion.id,
        kind=ChangeKind.PROMOTION,
    )
    session.add(change)
    await session.commit()
    return change


async def test_a_claim_wins_once_and_loses_to_a_move_that_came_first(
    session: AsyncSession, box: SecretBox
) -> None:
    promotion = await _queued_promotion(session, box)
    change = await _queued_change(session, promotion)
    assert await claim_change(session, change, ChangeStatus.APPLYING_CONFIGURATION)
    assert change.status is ChangeStatus.APPLYING_CONFIGURATION
    await session.commit()

    # Another claimant read it while queued; a cancel moved it first (behind its back).
    raced = await _queued_change(session, promotion)
    await session.exec(
        update(DeploymentChange)
        .where(col(DeploymentChange.id) == raced.id)
        .values(status=ChangeStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    assert raced.status.value == "QUEUED"  # what the claimant had read
    assert not await claim_change(session, raced, ChangeStatus.APPLYING_CONFIGURATION)
    assert raced.status is ChangeStatus.CANCELLED


@pytest.fixture
async def queued_change(session: AsyncSession, box: SecretBox) -> DeploymentChange:
    return await _queued_change(session, await _queued_promotion(session, box))


async def test_a_claim_the_table_forbids_raises_and_writes_nothing(
    session: AsyncSession, queued_change: DeploymentChange
) -> None:
    change = queued_change
    with pytest.raises(IllegalTransition, match="is QUEUED: it cannot become SUCCEEDED"):
        await claim_change(session, change, ChangeStatus.SUCCEEDED)
    await session.refresh(change)
    assert change.status is ChangeStatus.QUEUED


async def test_a_promotion_follows_the_status_of_its_change(
    session: AsyncSession, queued_change: DeploymentChange
) -> None:
    change = queued_change
    move_change(session, change, ChangeStatus.APPLYING_CONFIGURATION)
    followed = await follow_change(session, change, detail="applying")
    assert followed is not None and followed.id == change.promotion_id
    assert followed.status is PromotionStatus.APPLYING_CONFIGURATION
    change.promotion_id = None
    assert await follow_change(session, change, detail=None) is None


async def _audited(session: AsyncSession, subject_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.exec(
        select(AuditEvent).where(AuditEvent.subject_id == subject_id).order_by(col(AuditEvent.at))
    )
    return [(row.action, row.detail) for row in rows.all()]


async def test_a_step_of_a_request_is_not_audited(session: AsyncSession, box: SecretBox) -> None:
    promotion = await _queued_promotion(session, box)
    await move_promotion(session, promotion, PromotionStatus.APPLYING_CONFIGURATION, detail=None)
    await session.commit()
    assert await _audited(session, promotion.id) == []


async def test_a_decided_request_is_audited_by_its_move(
    session: AsyncSession, box: SecretBox
) -> None:
    promotion = await _queued_promotion(session, box)
    promotion.status = PromotionStatus.PENDING_APPROVAL
    session.add(promotion)
    await move_promotion(
        session, promotion, PromotionStatus.REJECTED, detail="no", actor=None, comment="not now"
    )
    await session.commit()
    assert await _audited(session, promotion.id) == [("promotion.rejected", {"comment": "not now"})]


async def test_how_a_change_ends_is_audited_on_its_deployment(
    session: AsyncSession, queued_change: DeploymentChange
) -> None:
    move_change(session, queued_change, ChangeStatus.APPLYING_CONFIGURATION)
    move_change(session, queued_change, ChangeStatus.FAILED, error="boom", reason="boom")
    await session.commit()
    [(action, detail)] = await _audited(session, queued_change.deployment_id)
    assert action == "change.failed"
    assert detail == {
        "change_id": queued_change.id,
        "kind": "PROMOTION",
        "promotion_id": queued_change.promotion_id,
        "reason": "boom",
    }


async def test_a_hold_succeeds_while_the_status_read_is_current(
    session: AsyncSession, box: SecretBox
) -> None:
    promotion = await _queued_promotion(session, box)
    assert await hold_promotion(session, promotion)
    await session.commit()
    # Moved by another transaction since it was read: the hold fails and shows the new status.
    await session.exec(
        update(Promotion)
        .where(col(Promotion.id) == promotion.id)
        .values(status=PromotionStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    assert promotion.status.value == "QUEUED"
    assert not await hold_promotion(session, promotion)
    assert promotion.status is PromotionStatus.CANCELLED
