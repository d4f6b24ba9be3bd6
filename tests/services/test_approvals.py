"""The approvals service: in an environment with an approval policy a promotion is a request
that runs nothing until enough eligible reviewers approve it, each once; the requester does not
review their own unless the policy says so; one rejection ends it; a request keeps the rule it
was filed under, waits alone, and expires when nobody decides in time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ApprovalPolicy,
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentStatus,
    OutboxMessage,
    Promotion,
    PromotionStatus,
    Review,
    ReviewDecision,
    Role,
    User,
)
from app.models.base import utcnow
from app.services.approval_policies import (
    MAX_EXPIRY_HOURS,
    PolicyInput,
    remove_approval_policy,
    set_approval_policy,
)
from app.services.approvals import approve, awaits_review_by, cancel, expire_due, reject
from app.services.change_requests import approval_routing_key
from app.services.errors import (
    Blocker,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PromotionBlocked,
)
from app.services.lifecycle import move_change, move_promotion
from app.services.promotions import PromotionRequest, plan_promotion, promote
from tests.support.acme import (
    COMPLETE,
    Acme,
    Call,
    announced,
    announced_as,
    deployment_events,
    record_run,
    set_status,
    set_up_acme,
    told_the_workers,
)
from tests.support.rows import added, every_row


async def ready_for_staging(acme: Acme) -> None:
    """Build 1.0 ACTIVE in Development, Staging configured."""
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", COMPLETE)


async def protected_staging(engine: AsyncEngine, **policy: Any) -> Acme:
    """``ready_for_staging``, and Staging under an approval policy (``policy``:
    ``required_approvals`` and the other fields of ``PolicyInput``)."""
    acme = await set_up_acme(engine, then=ready_for_staging)
    await acme.protect("Staging", **policy)
    return acme


def promoting(acme: Acme) -> Call[Promotion]:
    wanted = PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments["Development"],
    )

    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return call


def approving(promotion_id: str, comment: str | None = None) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await approve(session, actor=actor, promotion_id=promotion_id, comment=comment)

    return call


def rejecting(promotion_id: str, comment: str | None = None) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await reject(session, actor=actor, promotion_id=promotion_id, comment=comment)

    return call


def cancelling(promotion_id: str) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await cancel(session, actor=actor, promotion_id=promotion_id)

    return call


def setting_policy(acme: Acme, **fields: Any) -> Call[object]:
    """``set_approval_policy`` on Staging (``fields``: those of ``PolicyInput``)."""

    async def call(session: AsyncSession, actor: User) -> object:
        policy = PolicyInput(environment_id=acme.environments["Staging"], **fields)
        return await set_approval_policy(session, actor=actor, policy=policy)

    return call


async def awaits(acme: Acme, who: str, promotion_id: str) -> bool:
    promotion = await acme.promotion(promotion_id)
    return await acme.run(
        who, lambda session, user: awaits_review_by(session, user=user, promotion=promotion)
    )


async def reviews(acme: Acme, promotion_id: str) -> list[tuple[str, ReviewDecision]]:
    async with acme.session() as session:
        rows = await session.exec(
            select(Review.reviewer_id, Review.decision)
            .where(Review.promotion_id == promotion_id)
            .order_by(col(Review.id))
        )
        return [(reviewer, ReviewDecision(decision)) for reviewer, decision in rows.all()]


# ---- filing -----------------------------------------------------------------------------------


async def test_a_promotion_into_a_protected_environment_is_a_request_and_nothing_runs(
    engine: AsyncEngine,
) -> None:
    acme = await protected_staging(engine, required_approvals=2, expires_after_hours=24)
    plan = await acme.run(
        "developer",
        lambda session, developer: plan_promotion(
            session,
            actor=developer,
            box=acme.box,
            request=PromotionRequest(acme.integration_id, acme.environments["Development"]),
        ),
    )
    assert (plan.requires_approval, plan.blockers) == (True, [])
    before = await every_row(engine)

    promotion = await acme.run("developer", promoting(acme))

    assert promotion.status is PromotionStatus.PENDING_APPROVAL
    assert promotion.required_approvals == 2
    assert promotion.approval_rule == {
        "rules": [
            {
                "name": "Reviewers",
                "required_approvals": 2,
                "roles": ["ADMIN", "APPROVER"],
                "approver_ids": [],
            }
        ],
        "roles": ["ADMIN", "APPROVER"],
        "approver_ids": [],
        "allow_self_approval": False,
    }
    assert promotion.expires_at == promotion.requested_at + timedelta(hours=24)
    staging = await acme.deployment("Staging")
    assert promotion.config_version == staging.config_version  # what the reviewers review
    # Nothing runs, nothing is queued for the workers.
    assert staging.status is DeploymentStatus.NOT_DEPLOYED
    assert await acme.changes("Staging") == []
    assert added(before, await every_row(engine)) == {
        "promotions": 1,
        "promotion_events": 1,
        "outbox": 2,  # the promotion's event, and the reviewers' notice
        "audit_events": 1,
    }
    assert await announced(acme, promotion.id) == announced_as("PENDING_APPROVAL")
    async with acme.session() as session:
        notice = (
            await session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.routing_key == approval_routing_key(acme.id)
                )
            )
        ).one()
    assert notice.body == {"promotionId": promotion.id, "organizationId": acme.id}
    # It shows in the pending approvals of whoever may still review it (and of every ADMIN).
    shown = {who: await awaits(acme, who, promotion.id) for who in acme.users}
    assert shown == {
        "admin": True,
        "developer": False,  # the requester
        "developer2": False,  # not a reviewer role
        "approver": True,
        "approver2": True,
        "viewer": False,
        "outsider": False,
    }


async def test_one_request_waits_per_integration_and_target(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine)
    first = await acme.run("developer", promoting(acme))
    refusal = await acme.refuses("developer2", promoting(acme), PromotionBlocked)
    assert refusal.blockers == [Blocker.REQUEST_ALREADY_PENDING]
    assert "already waiting for reviews" in refusal.message
    # Once it is decided, a new one may be filed.
    await acme.run("approver", rejecting(first.id))
    second = await acme.run("developer2", promoting(acme))
    assert second.status is PromotionStatus.PENDING_APPROVAL


# ---- reviews ----------------------------------------------------------------------------------


async def test_the_last_required_approval_queues_it_and_each_reviewer_counts_once(
    engine: AsyncEngine,
) -> None:
    acme = await protected_staging(engine, required_approvals=2)
    promotion = await acme.run("developer", promoting(acme))

    first = await acme.run("approver", approving(promotion.id, comment="looks good"))
    assert first.status is PromotionStatus.PENDING_APPROVAL
    assert await acme.changes("Staging") == []
    assert not await awaits(acme, "approver", promotion.id)
    twice = await acme.refuses("approver", approving(promotion.id), Conflict)
    assert twice.message == "you reviewed this request already (APPROVED)"
    assert await reviews(acme, promotion.id) == [(acme.users["approver"], ReviewDecision.APPROVED)]

    last = await acme.run("approver2", approving(promotion.id))
    assert last.status is PromotionStatus.QUEUED
    [change] = await acme.changes("Staging")
    assert (change.kind, change.status, change.build_id, change.promotion_id) == (
        ChangeKind.PROMOTION,
        ChangeStatus.QUEUED,
        acme.builds["1.0"],
        promotion.id,
    )
    # It runs what was reviewed or nothing: the configuration version it was filed at.
    assert change.expected_config_version == promotion.config_version is not None
    assert change.actor_id == acme.users["developer"]  # the requester's change
    assert await told_the_workers(acme, change)
    assert (await acme.deployment("Staging")).status is DeploymentStatus.IN_PROGRESS
    assert await announced(acme, promotion.id) == announced_as("PENDING_APPROVAL", "QUEUED")

    late = await acme.refuses("admin", approving(promotion.id), Conflict)
    assert late.message == "the request is QUEUED, no longer pending: nothing to approve"


async def test_the_requester_does_not_review_their_own_request_unless_the_policy_says_so(
    engine: AsyncEngine,
) -> None:
    acme = await protected_staging(engine)
    own = await acme.run("admin", promoting(acme))  # an ADMIN, and so a reviewer role
    for reviewing in (approving, rejecting):
        refusal = await acme.refuses("admin", reviewing(own.id), Forbidden)
        assert "the requester may not review their own request" in refusal.message
    await acme.run("admin", cancelling(own.id))

    await acme.protect("Staging", allow_self_approval=True)
    allowed = await acme.run("admin", promoting(acme))
    approved = await acme.run("admin", approving(allowed.id))
    assert approved.status is PromotionStatus.QUEUED


async def test_only_the_policys_roles_and_named_reviewers_review(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine)
    promotion = await acme.run("developer", promoting(acme))
    for who, error in [("developer2", Forbidden), ("viewer", Forbidden), ("outsider", NotFound)]:
        await acme.refuses(who, approving(promotion.id), error)
        await acme.refuses(who, rejecting(promotion.id), error)
    await acme.run("developer", cancelling(promotion.id))

    # A named reviewer reviews whatever their role; the roles named are the only others.
    await acme.protect("Staging", approver_roles=(), approver_ids=[acme.users["developer2"]])
    named = await acme.run("developer", promoting(acme))
    refusal = await acme.refuses("approver", approving(named.id), Forbidden)
    assert "the APPROVER role is not among the policy's reviewer roles (none)" in refusal.message
    approved = await acme.run("developer2", approving(named.id))
    assert approved.status is PromotionStatus.QUEUED


async def test_one_rejection_ends_the_request(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine, required_approvals=2)
    promotion = await acme.run("developer", promoting(acme))
    await acme.run("approver", approving(promotion.id))

    rejected = await acme.run("approver2", rejecting(promotion.id, comment="not this week"))

    assert rejected.status is PromotionStatus.REJECTED
    assert rejected.error == "rejected by approver2@acme.example.com: not this week"
    assert rejected.finished_at is not None
    assert await acme.changes("Staging") == []
    assert (await acme.deployment("Staging")).status is DeploymentStatus.NOT_DEPLOYED
    assert await announced(acme, promotion.id) == announced_as("PENDING_APPROVAL", "REJECTED")
    for reviewing in (approving, rejecting):
        refusal = await acme.refuses("admin", reviewing(promotion.id), Conflict)
        assert "the request is REJECTED, no longer pending" in refusal.message


async def test_a_comment_is_kept_up_to_2000_characters(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine, required_approvals=2)
    promotion = await acme.run("developer", promoting(acme))
    refusal = await acme.refuses("approver", approving(promotion.id, "x" * 2001), InvalidInput)
    assert refusal.field == "comment"
    await acme.run("approver", approving(promotion.id, "y" * 2000))
    async with acme.session() as session:
        comment = (
            await session.exec(select(Review.comment).where(Review.promotion_id == promotion.id))
        ).one()
    assert comment == "y" * 2000


async def test_a_request_keeps_the_rule_it_was_filed_under(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine, required_approvals=2)
    promotion = await acme.run("developer", promoting(acme))
    await acme.protect("Staging", required_approvals=1, approver_roles=(Role.DEVELOPER,))
    # Still two approvals, still from ADMINs or APPROVERs.
    await acme.refuses("developer2", approving(promotion.id), Forbidden)
    await acme.run("approver", approving(promotion.id))
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.PENDING_APPROVAL
    await acme.run(
        "admin",
        lambda session, admin: remove_approval_policy(
            session, actor=admin, environment_id=acme.environments["Staging"]
        ),
    )
    assert (await acme.promotion(promotion.id)).status is PromotionStatus.PENDING_APPROVAL
    approved = await acme.run("approver2", approving(promotion.id))
    assert approved.status is PromotionStatus.QUEUED


# ---- expiry and cancelling ------------------------------------------------------------------


async def test_a_request_nobody_decides_on_in_time_expires(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine, expires_after_hours=1)
    promotion = await acme.run("developer", promoting(acme))
    assert promotion.expires_at is not None
    sweep_at = promotion.expires_at

    not_yet = await acme.run(
        "admin", lambda session, _: expire_due(session, now=sweep_at - timedelta(minutes=1))
    )
    assert not_yet == []
    # Past its time, it cannot be approved even before the sweep comes by.
    async with acme.session() as session:
        await session.exec(
            update(Promotion)
            .where(col(Promotion.id) == promotion.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    refusal = await acme.refuses("approver", approving(promotion.id), Conflict)
    assert refusal.message == "the request expired before this review: file a new one"

    expired = await acme.run("admin", lambda session, _: expire_due(session))
    assert [p.id for p in expired] == [promotion.id]
    after = await acme.promotion(promotion.id)
    assert (after.status, after.error) == (
        PromotionStatus.EXPIRED,
        "no decision before the request expired",
    )
    assert after.finished_at is not None
    assert await announced(acme, promotion.id) == announced_as("PENDING_APPROVAL", "EXPIRED")
    assert await acme.run("admin", lambda session, _: expire_due(session)) == []
    assert await acme.changes("Staging") == []


async def test_the_requester_or_an_admin_cancels_a_request_still_pending(
    engine: AsyncEngine,
) -> None:
    acme = await protected_staging(engine)
    promotion = await acme.run("developer", promoting(acme))
    for who, error in [("developer2", Forbidden), ("approver", Forbidden), ("outsider", NotFound)]:
        await acme.refuses(who, cancelling(promotion.id), error)
    cancelled = await acme.run("developer", cancelling(promotion.id))
    assert (cancelled.status, cancelled.error) == (
        PromotionStatus.CANCELLED,
        "cancelled by developer@acme.example.com",
    )
    assert await announced(acme, promotion.id) == announced_as("PENDING_APPROVAL", "CANCELLED")
    again = await acme.refuses("developer", cancelling(promotion.id), Conflict)
    assert "only a pending, scheduled or queued promotion can be cancelled" in again.message

    by_admin = await acme.run("developer", promoting(acme))
    assert (await acme.run("admin", cancelling(by_admin.id))).status is PromotionStatus.CANCELLED


async def test_a_queued_promotion_is_cancelled_until_a_worker_takes_it(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=ready_for_staging)
    queued = await acme.run("developer", promoting(acme))
    assert (await acme.deployment("Staging")).status is DeploymentStatus.IN_PROGRESS

    cancelled = await acme.run("admin", cancelling(queued.id))

    assert cancelled.status is PromotionStatus.CANCELLED
    [change] = await acme.changes("Staging")
    assert change.status is ChangeStatus.CANCELLED and change.finished_at is not None
    # Nothing else is pending and nothing ever ran there: back to NOT_DEPLOYED.
    assert (await acme.deployment("Staging")).status is DeploymentStatus.NOT_DEPLOYED
    assert await announced(acme, queued.id) == announced_as("QUEUED", "CANCELLED")
    assert [status for status, _ in await deployment_events(acme, "Staging")] == [
        "IN_PROGRESS",
        "NOT_DEPLOYED",
    ]

    # Once a worker has taken its change, it runs to its end: whether the cancel finds the
    # promotion following it already, or still QUEUED (the worker's commit came between the
    # cancel's read and its conditional update).
    taken = await acme.run("developer", promoting(acme))
    async with acme.session() as session:
        [change] = (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.promotion_id == taken.id)
            )
        ).all()
        move_change(session, change, ChangeStatus.APPLYING_CONFIGURATION)
        await session.commit()
    refusal = await acme.refuses("admin", cancelling(taken.id), Conflict)
    assert refusal.message == "the promotion has started running: it can no longer be cancelled"
    async with acme.session() as session:
        promotion = await session.get(Promotion, taken.id)
        assert promotion is not None
        await move_promotion(
            session, promotion, PromotionStatus.APPLYING_CONFIGURATION, detail=None
        )
        await session.commit()
    refusal = await acme.refuses("admin", cancelling(taken.id), Conflict)
    assert refusal.message == (
        "the promotion is APPLYING_CONFIGURATION: only a pending, scheduled or queued "
        "promotion can be cancelled"
    )


async def test_a_cancelled_promotion_leaves_a_deployment_that_had_run_as_it_was(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "2.0", values=COMPLETE)
    await record_run(acme, "Staging", "1.0", values=COMPLETE)
    await set_status(acme, "Staging", DeploymentStatus.ERROR)  # its instance stopped for good
    queued = await acme.run("developer", promoting(acme))
    assert (await acme.deployment("Staging")).status is DeploymentStatus.IN_PROGRESS
    await acme.run("developer", cancelling(queued.id))
    assert (await acme.deployment("Staging")).status is DeploymentStatus.ERROR


# ---- the policy -------------------------------------------------------------------------------


async def test_only_an_admin_sets_a_policy_and_it_must_let_someone_review(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    for who in ("developer", "approver"):
        await acme.refuses(who, setting_policy(acme, required_approvals=1), Forbidden)
    await acme.refuses("outsider", setting_policy(acme, required_approvals=1), NotFound)
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"required_approvals": 0}, "requiredApprovals"),
        ({"required_approvals": 21}, "requiredApprovals"),
        ({"required_approvals": 1, "expires_after_hours": 0}, "expiresAfterHours"),
        (
            {"required_approvals": 1, "expires_after_hours": MAX_EXPIRY_HOURS + 1},
            "expiresAfterHours",
        ),
        ({"required_approvals": 1, "approver_roles": ()}, "approverRoles"),
    ]
    for fields, field in invalid:
        refusal = await acme.refuses("admin", setting_policy(acme, **fields), InvalidInput)
        assert refusal.field == field, fields
    # A named reviewer must be a member: another organization's user is not found.
    outsider = acme.users["outsider"]
    missing = await acme.refuses(
        "admin", setting_policy(acme, required_approvals=1, approver_ids=[outsider]), NotFound
    )
    assert missing.id == outsider

    for required in (3, 20):  # set, then changed: one policy per environment
        await acme.run(
            "admin",
            setting_policy(
                acme,
                required_approvals=required,
                approver_roles=(Role.APPROVER, Role.ADMIN, Role.APPROVER),
                approver_ids=[acme.users["developer"], acme.users["developer"]],
            ),
        )
    async with acme.session() as session:
        [policy] = (await session.exec(select(ApprovalPolicy))).all()
    assert (policy.required_approvals, policy.approver_roles, policy.approver_ids) == (
        20,
        ["ADMIN", "APPROVER"],
        [acme.users["developer"]],
    )


async def test_an_approved_request_runs_the_build_it_was_filed_with(engine: AsyncEngine) -> None:
    acme = await protected_staging(engine)
    promotion = await acme.run("developer", promoting(acme))
    # Meanwhile a newer build runs in the source: what was reviewed is what moves.
    await record_run(acme, "Development", "2.0")
    await acme.run("approver", approving(promotion.id))
    [change] = await acme.changes("Staging")
    assert change.build_id == promotion.build_id == acme.builds["1.0"]
