"""Releases: integrations promoted together in the order of their dependencies (cycles
refused); one plan and, into a protected environment, one request for the whole set; each
member a promotion of its own, the next starting when the one before succeeded; a failed
member fails the release and rolls back the members it had changed, unless it keeps them.

The workers' part (running each member's change) is written here as a worker leaves it
(``finish``); tests/e2e/test_releases.py runs the real thing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Promotion,
    PromotionStatus,
    Release,
    ReleaseEvent,
    ReleaseStatus,
    RequestKind,
    RevisionCause,
    User,
)
from app.services.approvals import approve
from app.services.changes import restart
from app.services.configuration import ConfigEntry
from app.services.dependencies import release_order, set_dependencies
from app.services.errors import (
    Forbidden,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.lifecycle import IllegalTransition, move_promotion
from app.services.projects import create_build, create_integration
from app.services.promotions import PromotionRequest, promote
from app.services.releases import (
    MemberRequest,
    ReleaseRequest,
    advance,
    create_release,
    plan_release,
)
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme


@dataclass
class Shop:
    """acme with two more integrations of its project: Ledger (Greeter depends on it) and
    Mailer; all three ACTIVE in Development, build 1.0."""

    acme: Acme
    ledger: str
    mailer: str
    builds: dict[str, str]  # integration id -> its 1.0 build


async def set_up_shop(engine: AsyncEngine) -> Shop:
    acme = await set_up_acme(engine)
    ids, builds = {}, {acme.integration_id: acme.builds["1.0"]}
    async with acme.session() as session:
        admin = await session.get(User, acme.users["admin"])
        assert admin is not None
        for name in ("Ledger", "Mailer"):
            integration = await create_integration(
                session, actor=admin, project_id=acme.project_id, name=name
            )
            build = await create_build(
                session, actor=admin, integration_id=integration.id, version="1.0", artifact="true"
            )
            ids[name], builds[integration.id] = integration.id, build.id
        await session.commit()
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", COMPLETE)
    for name in ("Ledger", "Mailer"):
        await record_run(
            acme, "Development", "1.0", integration_id=ids[name], build_id=builds[ids[name]]
        )
    shop = Shop(acme=acme, ledger=ids["Ledger"], mailer=ids["Mailer"], builds=builds)
    await acme.run("developer", depending(acme.integration_id, [shop.ledger]))
    return shop


def depending(integration_id: str, on: list[str]) -> Call[object]:
    async def call(session: AsyncSession, actor: User) -> object:
        return await set_dependencies(
            session, actor=actor, integration_id=integration_id, depends_on=on
        )

    return call


def release_of(shop: Shop, *members: str, keep: bool = False) -> ReleaseRequest:
    return ReleaseRequest(
        name="spring",
        source_environment_id=shop.acme.environments["Development"],
        members=[
            MemberRequest(
                integration_id=m,
                overrides=[ConfigEntry("GREETING", "hi")] if m == shop.acme.integration_id else [],
            )
            for m in members
        ],
        keep_on_failure=keep,
    )


def creating(shop: Shop, request: ReleaseRequest) -> Call[Release]:
    async def call(session: AsyncSession, actor: User) -> Release:
        return await create_release(session, actor=actor, box=shop.acme.box, request=request)

    return call


async def advancing(shop: Shop, release_id: str) -> bool:
    async with shop.acme.session() as session:
        moved = await advance(session, box=shop.acme.box, release_id=release_id)
        await session.commit()
        return moved


async def release_row(shop: Shop, release_id: str) -> Release:
    async with shop.acme.session() as session:
        release = await session.get(Release, release_id)
        assert release is not None
        return release


async def members(shop: Shop, release_id: str) -> list[Promotion]:
    """The release's member promotions, in the order they were made."""
    async with shop.acme.session() as session:
        rows = await session.exec(
            select(Promotion)
            .where(Promotion.release_id == release_id, Promotion.kind == RequestKind.PROMOTION)
            .order_by(col(Promotion.requested_at), col(Promotion.id))
        )
        return list(rows.all())


async def finish(shop: Shop, promotion: Promotion, status: PromotionStatus) -> None:
    """What a worker leaves when the member's change ends: SUCCEEDED with a new revision of
    the target (the deployment ACTIVE with the build), or FAILED with the old one serving."""
    async with shop.acme.session() as session:
        change = (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.promotion_id == promotion.id)
            )
        ).one()
        change_status = ChangeStatus(status.value)
        await session.exec(
            update(DeploymentChange)
            .where(col(DeploymentChange.id) == change.id)
            .values(status=change_status)
        )
        await session.exec(
            update(Promotion)
            .where(col(Promotion.id) == promotion.id)
            .values(status=status, error=None if status is PromotionStatus.SUCCEEDED else "boom")
        )
        deployment = await session.get(Deployment, promotion.deployment_id)
        assert deployment is not None
        if status is PromotionStatus.SUCCEEDED:
            deployment.revision += 1
            deployment.status, deployment.build_id = DeploymentStatus.ACTIVE, promotion.build_id
            session.add(deployment)
            session.add(
                DeploymentRevision(
                    deployment_id=deployment.id,
                    revision=deployment.revision,
                    build_id=promotion.build_id,
                    configuration_digest="d",
                    snapshot_sealed=shop.acme.box.seal_json({}),
                    cause=RevisionCause.PROMOTION,
                    change_id=change.id,
                    promotion_id=promotion.id,
                )
            )
        await session.commit()


async def test_dependencies_order_a_release_and_a_cycle_is_refused(engine: AsyncEngine) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    async with acme.session() as session:
        order = await release_order(
            session, acme.id, [acme.integration_id, shop.mailer, shop.ledger]
        )
    # Greeter depends on Ledger: Ledger first; Mailer keeps its place among the rest.
    assert order == [shop.mailer, shop.ledger, acme.integration_id]
    refused = await acme.refuses(
        "developer", depending(shop.ledger, [acme.integration_id]), InvalidInput
    )
    assert "cycle" in refused.message and "Greeter" in refused.message
    await acme.refuses("developer", depending(shop.ledger, [shop.ledger]), InvalidInput)
    await acme.refuses(
        "developer", depending(shop.ledger, ["int_01jzzzzzzzzzzzzzzzzzzzzzzz"]), NotFound
    )
    await acme.refuses("viewer", depending(shop.mailer, [shop.ledger]), Forbidden)


async def test_a_release_runs_its_members_one_after_the_other(engine: AsyncEngine) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    plan = await acme.run(
        "developer",
        lambda session, developer: plan_release(
            session,
            actor=developer,
            box=acme.box,
            request=release_of(shop, acme.integration_id, shop.ledger),
        ),
    )
    assert [p.integration.name for p in plan.members] == ["Ledger", "Greeter"]
    assert (plan.blockers, plan.target.name, plan.policy) == ([], "Staging", None)

    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    assert release.status is ReleaseStatus.RUNNING
    [ledger] = await members(shop, release.id)
    assert (ledger.integration_id, ledger.status) == (shop.ledger, PromotionStatus.QUEUED)
    assert not await advancing(shop, release.id)  # Ledger still runs: nothing to do

    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    assert await advancing(shop, release.id)
    _, greeter = await members(shop, release.id)
    assert (greeter.integration_id, greeter.status) == (acme.integration_id, PromotionStatus.QUEUED)
    assert not await advancing(shop, release.id)

    await finish(shop, greeter, PromotionStatus.SUCCEEDED)
    assert await advancing(shop, release.id)
    done = await release_row(shop, release.id)
    assert (done.status, done.error, done.finished_at is not None) == (
        ReleaseStatus.SUCCEEDED,
        None,
        True,
    )
    assert not await advancing(shop, release.id)  # final: moved once
    async with acme.session() as session:
        events = (
            await session.exec(
                select(ReleaseEvent.status)
                .where(ReleaseEvent.release_id == release.id)
                .order_by(col(ReleaseEvent.at), col(ReleaseEvent.id))
            )
        ).all()
    assert [str(e) for e in events] == ["RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"]


async def test_a_failed_member_rolls_back_the_members_already_changed(engine: AsyncEngine) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    # Staging ran Ledger before (revision 1): the release's change is revision 2.
    await record_run(
        acme, "Staging", "1.0", integration_id=shop.ledger, build_id=shop.builds[shop.ledger]
    )
    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    [ledger] = await members(shop, release.id)
    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    await advancing(shop, release.id)
    _, greeter = await members(shop, release.id)
    await finish(shop, greeter, PromotionStatus.FAILED)
    assert await advancing(shop, release.id)

    failed = await release_row(shop, release.id)
    assert failed.status is ReleaseStatus.FAILED
    assert failed.rolled_back == [shop.ledger]
    assert failed.error == "Greeter FAILED: boom; rolled back: Ledger"
    async with acme.session() as session:
        deployment = (
            await session.exec(
                select(Deployment).where(
                    Deployment.integration_id == shop.ledger,
                    Deployment.environment_id == acme.environments["Staging"],
                )
            )
        ).one()
        [rollback] = (
            await session.exec(
                select(DeploymentChange).where(
                    DeploymentChange.deployment_id == deployment.id,
                    DeploymentChange.status == ChangeStatus.QUEUED,
                )
            )
        ).all()
    assert (rollback.kind, rollback.rollback_to_revision) == (ChangeKind.ROLLBACK, 1)
    # Asked for by the platform, but no restoration past a freeze: it has no reason, so a
    # freeze holds it back as it holds any change.
    assert rollback.reason is None


async def test_a_release_may_keep_what_it_changed(
    engine: AsyncEngine,
) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    kept = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger, keep=True))
    )
    [ledger] = await members(shop, kept.id)
    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    await advancing(shop, kept.id)
    _, greeter = await members(shop, kept.id)
    await finish(shop, greeter, PromotionStatus.FAILED)
    await advancing(shop, kept.id)
    row = await release_row(shop, kept.id)
    assert (row.status, row.rolled_back) == (ReleaseStatus.FAILED, [])


async def test_a_member_the_release_deployed_first_is_suspended(engine: AsyncEngine) -> None:
    # Ledger's first revision in Staging has nothing before it: it is suspended.
    shop2 = await set_up_shop(engine)
    release = await shop2.acme.run(
        "developer", creating(shop2, release_of(shop2, shop2.acme.integration_id, shop2.ledger))
    )
    [ledger] = await members(shop2, release.id)
    await finish(shop2, ledger, PromotionStatus.SUCCEEDED)
    await advancing(shop2, release.id)
    _, greeter = await members(shop2, release.id)
    await finish(shop2, greeter, PromotionStatus.FAILED)
    await advancing(shop2, release.id)
    async with shop2.acme.session() as session:
        queued = (
            await session.exec(
                select(DeploymentChange.kind).where(DeploymentChange.status == ChangeStatus.QUEUED)
            )
        ).all()
    assert list(queued) == [ChangeKind.SUSPEND]


async def test_a_release_is_refused_with_every_members_blockers_and_writes_nothing(
    engine: AsyncEngine,
) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    # Mailer does not run in Development any more.
    async with acme.session() as session:
        await session.exec(
            update(Deployment)
            .where(col(Deployment.integration_id) == shop.mailer)
            .values(status=DeploymentStatus.NOT_DEPLOYED)
        )
        await session.commit()
    blocked = await acme.refuses(
        "developer", creating(shop, release_of(shop, shop.mailer, shop.ledger)), PromotionBlocked
    )
    assert "Mailer: SOURCE_NOT_ACTIVE" in blocked.message
    await acme.configure("Staging", {"API_KEY": None})
    missing = await acme.refuses(
        "developer", creating(shop, release_of(shop, acme.integration_id)), MissingConfiguration
    )
    assert missing.keys == ["API_KEY"]
    for bad in (
        ReleaseRequest(
            name=" ",
            source_environment_id=acme.environments["Development"],
            members=[MemberRequest(shop.ledger)],
        ),
        ReleaseRequest(
            name="x", source_environment_id=acme.environments["Development"], members=[]
        ),
        ReleaseRequest(
            name="x",
            source_environment_id=acme.environments["Development"],
            members=[MemberRequest(shop.ledger), MemberRequest(shop.ledger)],
        ),
    ):
        await acme.refuses("developer", creating(shop, bad), InvalidInput)
    await acme.refuses("outsider", creating(shop, release_of(shop, shop.ledger)), NotFound)


async def test_into_a_protected_environment_one_request_is_reviewed_for_the_whole_release(
    engine: AsyncEngine,
) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    await acme.protect("Staging")
    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    assert release.status is ReleaseStatus.PENDING_APPROVAL
    assert await members(shop, release.id) == []
    async with acme.session() as session:
        [request] = (
            await session.exec(select(Promotion).where(Promotion.release_id == release.id))
        ).all()
    assert (request.kind, request.status) == (RequestKind.RELEASE, PromotionStatus.PENDING_APPROVAL)
    assert not await advancing(shop, release.id)

    approved = await acme.run(
        "approver", lambda session, user: approve(session, actor=user, promotion_id=request.id)
    )
    assert approved.status is PromotionStatus.SUCCEEDED
    assert await advancing(shop, release.id)
    assert (await release_row(shop, release.id)).status is ReleaseStatus.RUNNING
    # Reviewed as a whole: its members are promotions that run, not requests of their own.
    [ledger] = await members(shop, release.id)
    assert ledger.status is PromotionStatus.QUEUED


async def started_member(shop: Shop, release_id: str) -> Promotion:
    [member] = await members(shop, release_id)
    return member


async def test_a_member_runs_only_with_the_configuration_the_release_was_planned_with(
    engine: AsyncEngine,
) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    await acme.protect("Staging")
    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    async with acme.session() as session:
        [request] = (
            await session.exec(select(Promotion).where(Promotion.release_id == release.id))
        ).all()
    await acme.run(
        "approver", lambda session, user: approve(session, actor=user, promotion_id=request.id)
    )
    await advancing(shop, release.id)
    ledger = await started_member(shop, release.id)
    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    # After the review, a value is stored in Staging for the greeter: the greeter would run
    # what nobody reviewed, so the release fails instead (and Ledger is undone).
    await acme.configure("Staging", {"GREETING": "unreviewed"})
    await advancing(shop, release.id)
    failed = await release_row(shop, release.id)
    assert failed.status is ReleaseStatus.FAILED
    assert failed.error is not None and "changed after the release was made" in failed.error
    assert len(await members(shop, release.id)) == 1


async def test_a_member_waits_for_a_freeze_and_a_window_and_not_for_a_policy(
    engine: AsyncEngine,
) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    ledger = await started_member(shop, release.id)
    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    await acme.freeze("Staging")
    # Frozen: the greeter waits (the release is not failed, nothing is rolled back).
    assert await advancing(shop, release.id)
    row = await release_row(shop, release.id)
    assert (row.status, row.started) == (ReleaseStatus.RUNNING, 1)
    async with acme.session() as session:
        await session.exec(
            update(Environment)
            .where(col(Environment.id) == acme.environments["Staging"])
            .values(frozen=False, freeze_reason=None)
        )
        await session.commit()
    # Protected since the release started: the rest would run unreviewed; it fails.
    await acme.protect("Staging")
    await advancing(shop, release.id)
    failed = await release_row(shop, release.id)
    assert failed.status is ReleaseStatus.FAILED
    assert failed.error is not None and "protected by an approval policy since" in failed.error


async def test_a_rollback_is_not_queued_behind_someone_elses_change(engine: AsyncEngine) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    await record_run(
        acme, "Staging", "1.0", integration_id=shop.ledger, build_id=shop.builds[shop.ledger]
    )
    release = await acme.run(
        "developer", creating(shop, release_of(shop, acme.integration_id, shop.ledger))
    )
    ledger = await started_member(shop, release.id)
    await finish(shop, ledger, PromotionStatus.SUCCEEDED)
    await advancing(shop, release.id)
    # Someone queues a restart of Ledger in Staging; then the greeter fails.
    async with acme.session() as session:
        deployment = (
            await session.exec(
                select(Deployment).where(
                    Deployment.integration_id == shop.ledger,
                    Deployment.environment_id == acme.environments["Staging"],
                )
            )
        ).one()
    await acme.run(
        "developer2",
        lambda session, user: restart(
            session, actor=user, box=acme.box, deployment_id=deployment.id
        ),
    )
    _, greeter = await members(shop, release.id)
    await finish(shop, greeter, PromotionStatus.FAILED)
    await advancing(shop, release.id)
    failed = await release_row(shop, release.id)
    assert (failed.status, failed.rolled_back) == (ReleaseStatus.FAILED, [])
    async with acme.session() as session:
        kinds = (
            await session.exec(
                select(DeploymentChange.kind).where(
                    DeploymentChange.deployment_id == deployment.id,
                    DeploymentChange.status == ChangeStatus.QUEUED,
                )
            )
        ).all()
    assert list(kinds) == [ChangeKind.RESTART]


async def test_only_a_release_request_succeeds_without_running(engine: AsyncEngine) -> None:
    shop = await set_up_shop(engine)
    acme = shop.acme
    await acme.protect("Staging")
    request = await acme.run(
        "developer",
        lambda session, developer: promote(
            session,
            actor=developer,
            box=acme.box,
            request=PromotionRequest(acme.integration_id, acme.environments["Development"]),
        ),
    )
    async with acme.session() as session:
        row = await session.get(Promotion, request.id)
        assert row is not None
        with pytest.raises(IllegalTransition):
            await move_promotion(session, row, PromotionStatus.SUCCEEDED, detail=None)
