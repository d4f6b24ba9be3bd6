"""Approval policies and promotion requests, through the API, on SQLite and PostgreSQL.

Every refusal is checked for its contract error type, for a message that says why, and for
having changed nothing (the whole governance state is read again, audit log included).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.models import ChangeKind, ChangeStatus, OutboxMessage, Promotion, PromotionStatus
from app.models.base import utcnow
from app.sweeps import ExpirySweep
from tests.graphql.governance import (
    APPROVE,
    CANCEL,
    PENDING_APPROVALS,
    PLAN,
    REJECT,
    REMOVE_POLICY,
    SECRET_KEY,
    Subscription,
    World,
    acting,
    deployment_in,
    expect,
    governed_world,
    live_api,
    make_active,
    production_changes,
    promote,
    promotion,
    promotion_row,
    reading,
    refused_without_change,
    review,
    set_policy,
    state,
)
from tests.graphql.queries import call, create_build
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_user
from tests.support.waiting import eventually


def statuses(result: dict[str, Any]) -> list[str]:
    return [event["status"] for event in result["events"]]


def reviewers(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["reviewer"]["email"], r["decision"]) for r in result["reviews"]]


async def pending_for(api: GraphQLClient, world: World, who: str) -> list[str]:
    """The ids in ``who``'s pendingApprovals (``who`` a member name, or "admin")."""
    user = world.admin if who == "admin" else world.members[who]
    data = await api.execute(PENDING_APPROVALS, {"slug": world.org.slug}, as_user=user)
    connection = data["organization"]["pendingApprovals"]
    ids = [edge["node"]["id"] for edge in connection["edges"]]
    assert connection["totalCount"] == len(ids)
    return ids


async def production_status(api: GraphQLClient, world: World, integration: str) -> str:
    return str((await deployment_in(api, world, integration, "Production"))["status"])


# ---- policies --------------------------------------------------------------------------------


async def test_only_an_admin_sets_a_policy_and_it_must_let_someone_review(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    viewer = world.members["viewer"]
    await refused_without_change(
        api,
        world,
        [
            (
                role,
                lambda user=user: set_policy(api, world, as_user=user),
                "ForbiddenError",
                None,
            )
            for role, user in [
                ("developer", world.developer),
                ("approver", world.approver),
                ("viewer", viewer),
            ]
        ]
        + [
            (
                "another organization's admin",
                lambda: set_policy(api, world, as_user=world.outsider),
                "NotFoundError",
                None,
            ),
            (
                "no approval required",
                lambda: set_policy(api, world, required=0),
                "ValidationError",
                "requiredApprovals",
            ),
            (
                "nobody could review",
                lambda: set_policy(api, world, approverRoles=[], approverIds=[]),
                "ValidationError",
                "nobody could approve",
            ),
            (
                "expires at once",
                lambda: set_policy(api, world, expiresAfterHours=0),
                "ValidationError",
                "expiresAfterHours",
            ),
            (
                "a reviewer from outside",
                lambda: set_policy(api, world, approverIds=[world.outsider.id]),
                "NotFoundError",
                "no member of the organization",
            ),
            (
                "removed by a developer",
                lambda: call(
                    api,
                    REMOVE_POLICY,
                    {"environmentId": world.production},
                    as_user=world.developer,
                ),
                "ForbiddenError",
                None,
            ),
        ],
    )
    result = expect(
        await set_policy(api, world, required=2, approverIds=[viewer.id], expiresAfterHours=24),
        "Environment",
    )
    assert result["approvalPolicy"] == {
        "requiredApprovals": 2,
        "approverRoles": ["ADMIN", "APPROVER"],
        "allowSelfApproval": False,
        "expiresAfterHours": 24,
        "approvers": [{"email": viewer.email}],
    }
    current = await state(api, world)
    policies = {env["name"]: env["approvalPolicy"] for env in current["environments"]}
    assert policies == {"Development": None, "Production": result["approvalPolicy"]}
    removed = await call(
        api, REMOVE_POLICY, {"environmentId": world.production}, as_user=world.admin
    )
    assert expect(removed, "Environment")["approvalPolicy"] is None


# ---- requests --------------------------------------------------------------------------------


async def test_a_promotion_into_a_protected_environment_is_a_request_and_nothing_runs(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=2)
    secret = f"secret-{secrets.token_hex(8)}"
    filed = expect(
        await promote(
            api,
            world,
            overrides=[
                {"key": "GREETING", "value": "hello production"},
                {"key": SECRET_KEY, "value": secret},
            ],
            message="release 1.0.0",
        ),
        "Promotion",
    )
    assert filed["status"] == "PENDING_APPROVAL"
    assert filed["requiredApprovals"] == 2
    assert filed["build"]["id"] == world.invoices.build_id
    assert filed["requestedBy"]["email"] == world.developer.email
    assert filed["reviews"] == []
    assert statuses(filed) == ["PENDING_APPROVAL"]
    # Shown masked: the secret's value never comes back.
    assert sorted(filed["overrides"], key=lambda o: str(o["key"])) == [
        {"key": SECRET_KEY, "value": None, "secret": True},
        {"key": "GREETING", "value": "hello production", "secret": False},
    ]
    assert await promotion(api, world, filed["id"]) == filed

    # Nothing runs: Production stays NOT_DEPLOYED, no change and no command exist.
    assert await production_status(api, world, "Invoices") == "NOT_DEPLOYED"
    assert await production_changes(engine, world) == []
    async with reading(engine) as db:
        commands = await db.exec(select(OutboxMessage).where(OutboxMessage.exchange == "command"))
        assert commands.all() == []

    # Stored encrypted: the column holds neither value, and opens to both.
    row = await promotion_row(engine, filed["id"])
    assert secret not in row.overrides_sealed
    assert "hello production" not in row.overrides_sealed
    opened = box.open_json(row.overrides_sealed)["overrides"]
    assert {"key": SECRET_KEY, "value": secret} in opened


async def test_the_requester_may_not_approve_unless_the_policy_says_so(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    # The admin is a reviewer by role, so the only thing in the way is being the requester.
    filed = expect(await promote(api, world, as_user=world.admin), "Promotion")
    own = [
        (
            "approve own",
            lambda: review(api, APPROVE, filed["id"], as_user=world.admin),
            "ForbiddenError",
            "own request",
        ),
        (
            "reject own",
            lambda: review(api, REJECT, filed["id"], as_user=world.admin),
            "ForbiddenError",
            "own request",
        ),
    ]
    await refused_without_change(api, world, own)

    # The policy now allows it, but the pending request keeps the rule it was filed under.
    await set_policy(api, world, required=1, allowSelfApproval=True)
    await refused_without_change(api, world, own)

    expect(await review(api, CANCEL, filed["id"], as_user=world.admin), "Promotion")
    second = expect(await promote(api, world, as_user=world.admin), "Promotion")
    approved = expect(
        await review(api, APPROVE, second["id"], as_user=world.admin, comment="mine, allowed"),
        "Promotion",
    )
    assert approved["status"] == "QUEUED"
    assert reviewers(approved) == [(world.admin.email, "APPROVED")]
    assert approved["reviews"][0]["comment"] == "mine, allowed"


async def test_eligible_reviewers_review_once_and_the_last_approval_queues_it(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=2)
    filed = expect(await promote(api, world), "Promotion")
    pid = filed["id"]
    m = world.members
    await refused_without_change(
        api,
        world,
        [
            (
                "viewer",
                lambda: review(api, APPROVE, pid, as_user=m["viewer"]),
                "ForbiddenError",
                "VIEWER role is not among",
            ),
            (
                "another developer",
                lambda: review(api, APPROVE, pid, as_user=m["developer2"]),
                "ForbiddenError",
                "DEVELOPER role is not among",
            ),
            (
                "the requester",
                lambda: review(api, APPROVE, pid, as_user=world.developer),
                "ForbiddenError",
                "own request",
            ),
            (
                "another organization's admin approves",
                lambda: review(api, APPROVE, pid, as_user=world.outsider),
                "NotFoundError",
                None,
            ),
            (
                "another organization's admin rejects",
                lambda: review(api, REJECT, pid, as_user=world.outsider),
                "NotFoundError",
                None,
            ),
            (
                "another organization's admin cancels",
                lambda: review(api, CANCEL, pid, as_user=world.outsider),
                "NotFoundError",
                None,
            ),
        ],
    )
    outsider_view = await api.execute(
        "query($id: ID!) { promotion(id: $id) { id } }", {"id": pid}, as_user=world.outsider
    )
    assert outsider_view == {"promotion": None}

    first = expect(
        await review(api, APPROVE, pid, as_user=world.approver, comment="looks right"), "Promotion"
    )
    assert first["status"] == "PENDING_APPROVAL"
    assert reviewers(first) == [(world.approver.email, "APPROVED")]
    assert first["reviews"][0]["comment"] == "looks right"
    await refused_without_change(
        api,
        world,
        [
            (
                "approves twice",
                lambda: review(api, APPROVE, pid, as_user=world.approver),
                "ConflictError",
                "already",
            ),
            (
                "rejects after approving",
                lambda: review(api, REJECT, pid, as_user=world.approver),
                "ConflictError",
                "already",
            ),
        ],
    )
    assert await production_changes(engine, world) == []

    # The source moves on to a new build meanwhile: the request keeps the build it was filed
    # with.
    newer = await create_build(api, world.org, world.invoices.id, "2.0.0")
    await make_active(
        session,
        integration_id=world.invoices.id,
        environment_id=world.development,
        build_id=newer["id"],
    )
    second = expect(await review(api, APPROVE, pid, as_user=m["approver2"]), "Promotion")
    assert second["status"] == "QUEUED"
    assert statuses(second) == ["PENDING_APPROVAL", "QUEUED"]
    assert reviewers(second) == [
        (world.approver.email, "APPROVED"),
        (m["approver2"].email, "APPROVED"),
    ]
    assert second["build"]["version"] == "1.0.0"
    [change] = await production_changes(engine, world)
    assert (change.kind, change.status, change.promotion_id, change.build_id) == (
        ChangeKind.PROMOTION,
        ChangeStatus.QUEUED,
        pid,
        world.invoices.build_id,
    )
    assert await production_status(api, world, "Invoices") == "IN_PROGRESS"
    await refused_without_change(
        api,
        world,
        [
            (
                "approves a queued promotion",
                lambda: review(api, APPROVE, pid, as_user=world.admin),
                "ConflictError",
                "no longer pending",
            ),
            (
                "rejects a queued promotion",
                lambda: review(api, REJECT, pid, as_user=world.admin),
                "ConflictError",
                "no longer pending",
            ),
        ],
    )


async def test_a_named_reviewer_may_approve_whatever_their_role(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    viewer = world.members["viewer"]
    await set_policy(api, world, required=1, approverRoles=["ADMIN"], approverIds=[viewer.id])
    filed = expect(await promote(api, world), "Promotion")
    await refused_without_change(
        api,
        world,
        [
            (
                "an APPROVER the policy does not name",
                lambda: review(api, APPROVE, filed["id"], as_user=world.approver),
                "ForbiddenError",
                "APPROVER role is not among the policy's reviewer roles (ADMIN)",
            )
        ],
    )
    approved = expect(await review(api, APPROVE, filed["id"], as_user=viewer), "Promotion")
    assert approved["status"] == "QUEUED"
    assert reviewers(approved) == [(viewer.email, "APPROVED")]


async def test_one_rejection_ends_the_request(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=2)
    filed = expect(await promote(api, world), "Promotion")
    pid = filed["id"]
    expect(await review(api, APPROVE, pid, as_user=world.approver), "Promotion")
    rejected = expect(
        await review(
            api, REJECT, pid, as_user=world.members["approver2"], comment="not during the sale"
        ),
        "Promotion",
    )
    assert rejected["status"] == "REJECTED"
    assert "not during the sale" in rejected["error"]
    assert rejected["finishedAt"] is not None
    assert statuses(rejected) == ["PENDING_APPROVAL", "REJECTED"]
    assert reviewers(rejected) == [
        (world.approver.email, "APPROVED"),
        (world.members["approver2"].email, "REJECTED"),
    ]
    await refused_without_change(
        api,
        world,
        [
            (
                "approved after the rejection",
                lambda: review(api, APPROVE, pid, as_user=world.admin),
                "ConflictError",
                "no longer pending",
            ),
            (
                "rejected again",
                lambda: review(api, REJECT, pid, as_user=world.admin),
                "ConflictError",
                "no longer pending",
            ),
            (
                "cancelled after the rejection",
                lambda: review(api, CANCEL, pid, as_user=world.developer),
                "ConflictError",
                "REJECTED",
            ),
        ],
    )
    assert await production_changes(engine, world) == []
    assert await production_status(api, world, "Invoices") == "NOT_DEPLOYED"
    # The target is free for a new request.
    again = expect(await promote(api, world), "Promotion")
    assert again["status"] == "PENDING_APPROVAL"


async def test_the_requester_or_an_admin_cancels_a_pending_or_queued_promotion(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    m = world.members
    await set_policy(api, world, required=1)
    invoices = expect(await promote(api, world), "Promotion")
    payments = expect(await promote(api, world, integration=world.payments), "Promotion")
    await refused_without_change(
        api,
        world,
        [
            (
                who,
                acting(api, CANCEL, invoices["id"], user),
                "ForbiddenError",
                "only the requester or an ADMIN",
            )
            for who, user in [
                ("another developer", m["developer2"]),
                ("an approver", m["approver"]),
                ("a viewer", m["viewer"]),
            ]
        ],
    )
    by_requester = expect(
        await review(api, CANCEL, invoices["id"], as_user=world.developer), "Promotion"
    )
    assert by_requester["status"] == "CANCELLED"
    assert world.developer.email in by_requester["error"]
    by_admin = expect(await review(api, CANCEL, payments["id"], as_user=world.admin), "Promotion")
    assert by_admin["status"] == "CANCELLED"
    assert statuses(by_admin) == ["PENDING_APPROVAL", "CANCELLED"]

    # QUEUED: approved, not yet taken by a worker.
    queued = expect(await promote(api, world), "Promotion")
    expect(await review(api, APPROVE, queued["id"], as_user=world.approver), "Promotion")
    assert await production_status(api, world, "Invoices") == "IN_PROGRESS"
    await refused_without_change(
        api,
        world,
        [
            (
                "another developer cancels a queued one",
                lambda: review(api, CANCEL, queued["id"], as_user=m["developer2"]),
                "ForbiddenError",
                "only the requester or an ADMIN",
            ),
            (
                "cancelled twice",
                lambda: review(api, CANCEL, invoices["id"], as_user=world.developer),
                "ConflictError",
                "CANCELLED",
            ),
        ],
    )
    cancelled = expect(
        await review(api, CANCEL, queued["id"], as_user=world.developer), "Promotion"
    )
    assert statuses(cancelled) == ["PENDING_APPROVAL", "QUEUED", "CANCELLED"]
    [change] = await production_changes(engine, world)
    assert change.status is ChangeStatus.CANCELLED
    # Nothing else was pending for it: Production is back where it was.
    assert await production_status(api, world, "Invoices") == "NOT_DEPLOYED"

    # Without a policy a promotion is QUEUED at once; the admin cancels someone else's.
    await call(api, REMOVE_POLICY, {"environmentId": world.production}, as_user=world.admin)
    direct = expect(await promote(api, world, integration=world.payments), "Promotion")
    assert direct["status"] == "QUEUED"
    cancelled = expect(await review(api, CANCEL, direct["id"], as_user=world.admin), "Promotion")
    assert cancelled["status"] == "CANCELLED"
    assert await production_status(api, world, "Payments") == "NOT_DEPLOYED"


async def test_a_request_nobody_decides_on_expires_even_across_restarts(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1, expiresAfterHours=1)
    filed = expect(await promote(api, world), "Promotion")
    later = expect(await promote(api, world, integration=world.payments), "Promotion")
    row = await promotion_row(engine, filed["id"])
    assert row.expires_at is not None
    assert row.expires_at - row.requested_at == timedelta(hours=1)

    sessions = create_session_factory(engine)
    first = ExpirySweep(sessions, interval_s=3600)
    assert await first.sweep() == 0  # nothing is due yet
    assert (await promotion(api, world, filed["id"]))["status"] == "PENDING_APPROVAL"

    # An hour is the shortest expiry a policy can ask for: rather than wait for it, move this
    # request's expiry into the past, as if the hour had passed while nothing ran.
    await session.exec(
        update(Promotion)
        .where(col(Promotion.id) == filed["id"])
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    await session.commit()

    # A new sweep (the API restarted: the first one is gone) catches up on its first round.
    changed: list[bool] = []
    restarted = ExpirySweep(sessions, interval_s=3600, on_change=lambda: changed.append(True))
    restarted.start()
    try:

        async def expired() -> bool:
            return bool((await promotion(api, world, filed["id"]))["status"] == "EXPIRED")

        await eventually(expired, within=10)
    finally:
        await restarted.stop()
    assert changed == [True]
    result = await promotion(api, world, filed["id"])
    assert statuses(result) == ["PENDING_APPROVAL", "EXPIRED"]
    assert "expired" in result["error"]
    assert result["finishedAt"] is not None
    assert (await promotion(api, world, later["id"]))["status"] == "PENDING_APPROVAL"
    assert await first.sweep() == 0  # nothing more is due: expiring is done once
    await refused_without_change(
        api,
        world,
        [
            (
                "approved after expiry",
                lambda: review(api, APPROVE, filed["id"], as_user=world.approver),
                "ConflictError",
                "no longer pending",
            ),
            (
                "cancelled after expiry",
                lambda: review(api, CANCEL, filed["id"], as_user=world.developer),
                "ConflictError",
                "EXPIRED",
            ),
        ],
    )
    assert await production_changes(engine, world) == []


async def test_one_pending_request_per_integration_and_target(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    plan_input = {"integrationId": world.invoices.id, "sourceEnvironmentId": world.development}
    plan = (await api.execute(PLAN, {"input": plan_input}, as_user=world.developer))[
        "promotionPlan"
    ]
    assert plan == {
        "requiresApproval": False,
        "blockers": [],
        "targetEnvironment": {"name": "Production"},
    }
    await set_policy(api, world, required=1)
    filed = expect(await promote(api, world), "Promotion")
    plan = (await api.execute(PLAN, {"input": plan_input}, as_user=world.developer))[
        "promotionPlan"
    ]
    assert plan["requiresApproval"] is True
    assert plan["blockers"] == ["REQUEST_ALREADY_PENDING"]
    await refused_without_change(
        api,
        world,
        [
            (
                "a second request",
                lambda: promote(api, world, as_user=world.members["developer2"]),
                "PromotionBlockedError",
                "already waiting for reviews",
            )
        ],
    )
    blocked = await promote(api, world)
    assert blocked["blockers"] == ["REQUEST_ALREADY_PENDING"]

    # Two requests at the same moment for the other integration: one is filed.
    results = await asyncio.gather(
        promote(api, world, integration=world.payments),
        promote(api, world, integration=world.payments, as_user=world.members["developer2"]),
    )
    kinds = [result["__typename"] for result in results]
    kinds.remove("Promotion")  # raises if neither was filed
    # The loser is refused: blocked by the first's request, or by the database's rule when
    # both passed the check at once.
    assert kinds in (["PromotionBlockedError"], ["ConflictError"]), results
    async with reading(engine) as db:
        pending = await db.exec(
            select(Promotion.integration_id).where(
                Promotion.status == PromotionStatus.PENDING_APPROVAL
            )
        )
        assert sorted(pending.all()) == sorted([world.invoices.id, world.payments.id])

    # Once the first is decided, the target takes a new request.
    expect(await review(api, REJECT, filed["id"], as_user=world.approver), "Promotion")
    expect(await promote(api, world), "Promotion")


async def test_a_pending_request_keeps_the_rule_it_was_filed_under(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)  # ADMIN and APPROVER may review
    old = expect(await promote(api, world), "Promotion")
    await set_policy(api, world, required=2, approverRoles=["ADMIN"])
    assert (await promotion(api, world, old["id"]))["requiredApprovals"] == 1

    # Filed when one APPROVER's approval was enough: it still is.
    approved = expect(await review(api, APPROVE, old["id"], as_user=world.approver), "Promotion")
    assert approved["status"] == "QUEUED"

    # A new request follows the new rule: two approvals, by ADMINs only.
    new = expect(await promote(api, world, integration=world.payments), "Promotion")
    assert new["requiredApprovals"] == 2
    await refused_without_change(
        api,
        world,
        [
            (
                "an APPROVER under the new rule",
                lambda: review(api, APPROVE, new["id"], as_user=world.approver),
                "ForbiddenError",
                "APPROVER role is not among",
            )
        ],
    )
    once = expect(await review(api, APPROVE, new["id"], as_user=world.admin), "Promotion")
    assert once["status"] == "PENDING_APPROVAL"

    # Removing the policy: the pending request still needs its second ADMIN; new promotions
    # need nobody.
    await call(api, REMOVE_POLICY, {"environmentId": world.production}, as_user=world.admin)
    await refused_without_change(
        api,
        world,
        [
            (
                "an APPROVER after the policy is gone",
                lambda: review(api, APPROVE, new["id"], as_user=world.members["approver2"]),
                "ForbiddenError",
                "APPROVER role is not among",
            )
        ],
    )
    second_admin = await make_user(session, "second-admin@acme.example.com")
    await call(
        api,
        "mutation($input: AddMemberInput!) { addMember(input: $input) { __typename } }",
        {"input": {"organizationId": world.org.id, "email": second_admin.email, "role": "ADMIN"}},
        as_user=world.admin,
    )
    done = expect(await review(api, APPROVE, new["id"], as_user=second_admin), "Promotion")
    assert done["status"] == "QUEUED"
    direct = expect(await promote(api, world), "Promotion")
    assert direct["status"] == "QUEUED"
    assert direct["requiredApprovals"] == 0


async def test_pending_approvals_lists_what_the_viewer_may_still_review(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=2, approverRoles=["ADMIN", "APPROVER", "DEVELOPER"])
    invoices = expect(await promote(api, world), "Promotion")
    payments = expect(
        await promote(api, world, integration=world.payments, as_user=world.members["developer2"]),
        "Promotion",
    )
    both = sorted([invoices["id"], payments["id"]])

    async def pending() -> dict[str, list[str]]:
        names = ["admin", "developer", "developer2", "approver", "viewer"]
        return {name: sorted(await pending_for(api, world, name)) for name in names}

    assert await pending() == {
        "admin": both,
        "developer": [payments["id"]],  # not their own request
        "developer2": [invoices["id"]],
        "approver": both,
        "viewer": [],
    }
    # Pages, oldest first.
    pages: list[str] = []
    after: str | None = None
    for has_next in (True, False):
        data = await api.execute(
            PENDING_APPROVALS,
            {"slug": world.org.slug, "first": 1, "after": after},
            as_user=world.approver,
        )
        connection = data["organization"]["pendingApprovals"]
        assert (connection["totalCount"], connection["pageInfo"]["hasNextPage"]) == (2, has_next)
        pages += [edge["node"]["id"] for edge in connection["edges"]]
        after = connection["pageInfo"]["endCursor"]
    assert pages == [invoices["id"], payments["id"]]
    expect(await review(api, APPROVE, invoices["id"], as_user=world.approver), "Promotion")
    assert await pending() == {
        "admin": both,  # an ADMIN sees every pending request
        "developer": [payments["id"]],
        "developer2": [invoices["id"]],
        "approver": [payments["id"]],  # not what they reviewed already
        "viewer": [],
    }
    expect(
        await review(api, APPROVE, invoices["id"], as_user=world.members["developer2"]),
        "Promotion",
    )
    assert (await pending())["admin"] == [payments["id"]]  # queued: nobody's to review
    # Another organization sees none of it.
    theirs = await api.execute(
        PENDING_APPROVALS, {"slug": world.other.slug}, as_user=world.outsider
    )
    assert theirs["organization"]["pendingApprovals"]["totalCount"] == 0
    ours = await api.execute(PENDING_APPROVALS, {"slug": world.org.slug}, as_user=world.outsider)
    assert ours["organization"] is None


APPROVAL_REQUESTS = """
subscription($organizationId: ID!) {
    approvalRequests(organizationId: $organizationId) {
        id status requiredApprovals integration { name } requestedBy { email }
    }
}
"""


async def test_approval_requests_reach_the_reviewers_who_may_review_them_live(
    session: AsyncSession, engine: AsyncEngine, secret_key: str, tmp_path: Path
) -> None:
    async with live_api(engine, session, secret_key, tmp_path) as live:
        world = await governed_world(live.api, session)
        m = world.members
        variables = {"organizationId": world.org.id}
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = {
                name: await stack.enter_async_context(
                    Subscription.open(live, m[name], APPROVAL_REQUESTS, variables)
                )
                for name in ("approver", "developer", "viewer")
            }
            outsider = await stack.enter_async_context(
                Subscription.open(live, world.outsider, APPROVAL_REQUESTS, variables)
            )
            refused = await outsider.message()
            assert refused["type"] in ("error", "next"), refused
            payload = refused["payload"]
            errors = payload if refused["type"] == "error" else payload["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"], refused

            # Filed by the developer, for ADMINs and APPROVERs: the APPROVER hears of it; the
            # developer (their own) and the viewer (not a reviewer) do not.
            await set_policy(live.api, world, required=1)
            own = expect(await promote(live.api, world), "Promotion")
            # Then a request that all three may review: the first thing the developer and
            # the viewer hear of is this one, so the first was not sent to them.
            await set_policy(
                live.api,
                world,
                required=1,
                approverRoles=["ADMIN", "APPROVER", "DEVELOPER"],
                approverIds=[m["viewer"].id],
            )
            everyone = expect(
                await promote(live.api, world, integration=world.payments, as_user=world.admin),
                "Promotion",
            )

            async def heard(name: str) -> str:
                message = await subscriptions[name].message()
                assert message["type"] == "next", message
                assert not message["payload"].get("errors"), message
                request = message["payload"]["data"]["approvalRequests"]
                assert request["status"] == "PENDING_APPROVAL", request
                return str(request["id"])

            assert [await heard("approver"), await heard("approver")] == [
                own["id"],
                everyone["id"],
            ]
            assert await heard("developer") == everyone["id"]
            assert await heard("viewer") == everyone["id"]
