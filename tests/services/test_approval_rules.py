"""Approval rules: a policy may hold several rules, each with its reviewers (roles or named
members) and its required approvals, and a request runs only when every rule is met ("1 from
QA and 2 from Operators"). A review counts toward every rule its reviewer satisfies, and keeps
that when roles or the policy change afterwards; a request keeps the rules it was filed
under."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from app.models import (
    ApprovalPolicy,
    ChangeStatus,
    Membership,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    Review,
    ReviewDecision,
    Role,
)
from app.models.base import utcnow
from app.services.approval_policies import RuleInput
from app.services.approval_rules import (
    ApprovalRule,
    RequestRules,
    rules_of_policy,
    rules_of_request,
)
from app.services.errors import Forbidden, InvalidInput, NotFound
from tests.services.test_approvals import (
    approving,
    awaits,
    promoting,
    protected_staging,
    rejecting,
    setting_policy,
)
from tests.support.acme import Acme, set_up_acme


def qa_and_operators(acme: Acme) -> dict[str, Any]:
    """1 from QA (developer2, named) and 2 from Operators (the APPROVER and ADMIN roles)."""
    return {
        "rules": [
            RuleInput(name="QA", required_approvals=1, approver_ids=[acme.users["developer2"]]),
            RuleInput(
                name="Operators", required_approvals=2, approver_roles=[Role.APPROVER, Role.ADMIN]
            ),
        ]
    }


async def staging_under(engine: AsyncEngine, rules: Any) -> Acme:
    """Staging under a policy of ``rules(acme)``, 1.0 ready to promote into it."""
    acme = await protected_staging(engine)
    await acme.run("admin", setting_policy(acme, **rules(acme)))
    return acme


async def event_details(acme: Acme, promotion_id: str) -> list[str | None]:
    async with acme.session() as session:
        return list(
            (
                await session.exec(
                    select(PromotionEvent.detail)
                    .where(PromotionEvent.promotion_id == promotion_id)
                    .order_by(col(PromotionEvent.id))
                )
            ).all()
        )


async def progress(acme: Acme, promotion_id: str) -> dict[str, tuple[int, bool]]:
    """Each rule of the request: (approvals that count toward it, met)."""
    promotion = await acme.promotion(promotion_id)
    async with acme.session() as session:
        rows = (await session.exec(select(Review).where(Review.promotion_id == promotion_id))).all()
    return {p.rule.name: (p.approvals, p.met) for p in rules_of_request(promotion).progress(rows)}


async def test_every_rule_must_be_met_before_the_request_runs(engine: AsyncEngine) -> None:
    acme = await staging_under(engine, qa_and_operators)
    promotion = await acme.run("developer", promoting(acme))
    assert promotion.status is PromotionStatus.PENDING_APPROVAL
    assert promotion.required_approvals == 3  # what the rules add up to
    assert await progress(acme, promotion.id) == {"QA": (0, False), "Operators": (0, False)}

    for operator in ("approver", "approver2", "admin"):
        waiting = await acme.run(operator, approving(promotion.id))
        # Three approvals, as many as the rules add up to; but QA has none: nothing runs.
        assert waiting.status is PromotionStatus.PENDING_APPROVAL
    assert await acme.changes("Staging") == []
    assert await progress(acme, promotion.id) == {"QA": (0, False), "Operators": (3, True)}

    last = await acme.run("developer2", approving(promotion.id))
    assert last.status is PromotionStatus.QUEUED
    [change] = await acme.changes("Staging")
    assert (change.status, change.promotion_id) == (ChangeStatus.QUEUED, promotion.id)
    assert await progress(acme, promotion.id) == {"QA": (1, True), "Operators": (3, True)}
    assert await event_details(acme, promotion.id) == [
        "3 approval(s) required: 1 from QA, 2 from Operators",
        "approved (QA 1/1, Operators 3/2)",
    ]


async def test_a_review_counts_toward_every_rule_its_reviewer_satisfies(
    engine: AsyncEngine,
) -> None:
    def overlapping(acme: Acme) -> dict[str, Any]:
        return {
            "rules": [
                RuleInput(name="Operators", required_approvals=1, approver_roles=[Role.APPROVER]),
                RuleInput(
                    name="Release managers",
                    required_approvals=1,
                    approver_ids=[acme.users["approver"], acme.users["developer2"]],
                ),
            ]
        }

    acme = await staging_under(engine, overlapping)
    promotion = await acme.run("developer", promoting(acme))
    # approver is an APPROVER and a named release manager: one review meets both rules.
    approved = await acme.run("approver", approving(promotion.id))
    assert approved.status is PromotionStatus.QUEUED
    async with acme.session() as session:
        [review] = (await session.exec(select(Review))).all()
    assert review.counted_toward == ["Operators", "Release managers"]


async def test_only_a_reviewer_of_some_rule_may_review(engine: AsyncEngine) -> None:
    acme = await staging_under(engine, qa_and_operators)
    promotion = await acme.run("developer", promoting(acme))
    for who in ("viewer", "developer"):  # developer: the requester, and in no rule anyway
        await acme.refuses(who, approving(promotion.id), Forbidden)
    refusal = await acme.refuses("viewer", rejecting(promotion.id), Forbidden)
    assert "not among the policy's reviewer roles (ADMIN, APPROVER)" in refusal.message
    # The named QA reviewer and the operators see it among the requests they may review.
    for who, expected in [("developer2", True), ("approver", True), ("viewer", False)]:
        assert await awaits(acme, who, promotion.id) is expected, who
    # A rejection by any rule's reviewer ends it.
    rejected = await acme.run("developer2", rejecting(promotion.id, "fails the QA suite"))
    assert rejected.status is PromotionStatus.REJECTED
    assert await acme.changes("Staging") == []


async def test_an_approval_still_counts_after_its_reviewer_changes_role(
    engine: AsyncEngine,
) -> None:
    acme = await staging_under(engine, qa_and_operators)
    promotion = await acme.run("developer", promoting(acme))
    await acme.run("approver", approving(promotion.id))
    async with acme.session() as session:
        membership = (
            await session.exec(
                select(Membership).where(col(Membership.user_id) == acme.users["approver"])
            )
        ).one()
        membership.role = Role.VIEWER
        session.add(membership)
        await session.commit()
    # A VIEWER now, they may review no more; the approval they gave as an operator counts.
    await acme.refuses("approver", rejecting(promotion.id), Forbidden)
    await acme.run("approver2", approving(promotion.id))
    last = await acme.run("developer2", approving(promotion.id))
    assert last.status is PromotionStatus.QUEUED
    assert await progress(acme, promotion.id) == {"QA": (1, True), "Operators": (2, True)}


async def test_a_request_keeps_the_rules_it_was_filed_under(engine: AsyncEngine) -> None:
    acme = await staging_under(engine, qa_and_operators)
    promotion = await acme.run("developer", promoting(acme))
    # The policy becomes a single approval by any APPROVER: the pending request still needs
    # QA and two operators.
    await acme.run("admin", setting_policy(acme, required_approvals=1))
    approved = await acme.run("approver", approving(promotion.id))
    assert approved.status is PromotionStatus.PENDING_APPROVAL
    assert await progress(acme, promotion.id) == {"QA": (0, False), "Operators": (1, False)}
    # A new request is filed under the new policy's one rule.
    async with acme.session() as session:
        [policy] = (await session.exec(select(ApprovalPolicy))).all()
    assert [rule.name for rule in rules_of_policy(policy).rules] == ["Reviewers"]


async def test_a_policy_of_rules_is_stored_with_its_reviewers_together(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.run("admin", setting_policy(acme, **qa_and_operators(acme)))
    async with acme.session() as session:
        [policy] = (await session.exec(select(ApprovalPolicy))).all()
    # The columns every reader had before rules: every rule's reviewers, the total count.
    assert (policy.required_approvals, policy.approver_roles, policy.approver_ids) == (
        3,
        ["ADMIN", "APPROVER"],
        [acme.users["developer2"]],
    )
    assert rules_of_policy(policy) == RequestRules(
        rules=(
            ApprovalRule("QA", 1, approver_ids=(acme.users["developer2"],)),
            ApprovalRule("Operators", 2, roles=("ADMIN", "APPROVER")),
        )
    )


async def test_bad_rules_are_refused_and_change_nothing(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    qa = acme.users["developer2"]

    def rule(**fields: Any) -> RuleInput:
        return RuleInput(**{"name": "Ops", "required_approvals": 1, **fields})

    ops = [Role.APPROVER]
    invalid: list[tuple[dict[str, Any], str]] = [
        ({}, "requiredApprovals"),  # neither one rule nor rules
        ({"required_approvals": 1, "rules": [rule(approver_roles=ops)]}, "rules"),
        ({"approver_ids": [qa], "rules": [rule(approver_roles=ops)]}, "rules"),
        ({"rules": []}, "rules"),
        ({"rules": [rule(name=f"r{i}", approver_roles=ops) for i in range(11)]}, "rules"),
        ({"rules": [rule(name="  ", approver_roles=ops)]}, "rules[0].name"),
        ({"rules": [rule(name="x" * 101, approver_roles=ops)]}, "rules[0].name"),
        (
            {"rules": [rule(approver_roles=ops), rule(name=" ops ", approver_roles=ops)]},
            "rules[1].name",
        ),
        (
            {"rules": [rule(approver_roles=ops), rule(name="QA", required_approvals=0)]},
            "rules[1].requiredApprovals",
        ),
        (
            {"rules": [rule(required_approvals=21, approver_roles=ops)]},
            "rules[0].requiredApprovals",
        ),
        ({"rules": [rule()]}, "rules[0].approverRoles"),  # nobody could approve
        # Two approvals from one named reviewer could never be given.
        ({"rules": [rule(required_approvals=2, approver_ids=[qa])]}, "rules[0].requiredApprovals"),
    ]
    for fields, field in invalid:
        refusal = await acme.refuses("admin", setting_policy(acme, **fields), InvalidInput)
        assert refusal.field == field, fields
    # Another organization's user named in a rule is not found, whatever else is wrong.
    outsider = acme.users["outsider"]
    for fields in (
        {"rules": [rule(approver_ids=[outsider])]},
        {"rules": [rule(approver_ids=[outsider])], "required_approvals": 5},
    ):
        missing = await acme.refuses("admin", setting_policy(acme, **fields), NotFound)
        assert missing.id == outsider


def test_a_request_filed_before_rules_has_its_one_rule() -> None:
    """Requests and reviews from before rules were kept (a request's rule without ``rules``,
    reviews without ``counted_toward``) read as one rule every approval counts toward."""
    promotion = Promotion(
        organization_id="org_1",
        integration_id="int_1",
        build_id="bld_1",
        source_environment_id="env_1",
        target_environment_id="env_2",
        deployment_id="dpl_1",
        requested_by_id="usr_1",
        overrides_sealed="",
        required_approvals=2,
        status=PromotionStatus.PENDING_APPROVAL,
        approval_rule={
            "roles": ["APPROVER"],
            "approver_ids": ["usr_9"],
            "allow_self_approval": True,
        },
    )
    rules = rules_of_request(promotion)
    assert rules == RequestRules(
        rules=(ApprovalRule("Reviewers", 2, roles=("APPROVER",), approver_ids=("usr_9",)),),
        allow_self_approval=True,
    )
    now = utcnow()
    reviews = [
        Review(promotion_id=promotion.id, reviewer_id=reviewer, decision=decision, created_at=at)
        for reviewer, decision, at in [
            ("usr_2", ReviewDecision.APPROVED, now),
            ("usr_3", ReviewDecision.REJECTED, now + timedelta(seconds=1)),
            ("usr_9", ReviewDecision.APPROVED, now + timedelta(seconds=2)),
        ]
    ]
    [only] = rules.progress(reviews)
    assert (only.approver_ids, only.met) == (("usr_2", "usr_9"), True)
    assert rules_of_request(promotion.model_copy(update={"approval_rule": None})).rules == ()
