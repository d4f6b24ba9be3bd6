"""The changes service and the change queue: a deploy runs a build in the first environment of
the pipeline only; a restart, suspend, resume or rollback acts on what already ran there; in an
environment with an approval policy each change of what runs is a request instead. Every
change is queued with the command that tells the data plane's workers, in one transaction;
a refused one writes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Promotion,
    PromotionStatus,
    RequestKind,
    User,
)
from app.services.approvals import approve
from app.services.change_queue import queue_change
from app.services.change_requests import requested_changes
from app.services.changes import (
    deploy,
    restart,
    restart_for_configuration,
    resume,
    rollback,
    suspend,
)
from app.services.configuration import ConfigChangeKind, ConfigEntry, stored_values
from app.services.errors import (
    Blocker,
    Forbidden,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.pipelines import create_pipeline, set_project_pipeline
from tests.support.acme import (
    COMPLETE,
    Acme,
    Call,
    deployment_events,
    record_run,
    set_status,
    set_up_acme,
    told_the_workers,
)
from tests.support.rows import added, every_row


def deploying(
    acme: Acme,
    environment: str = "Development",
    version: str = "1.0",
    configuration: dict[str, str | None] | None = None,
    *,
    build_id: str | None = None,
    environment_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Deployment | Promotion]:
    async def call(session: AsyncSession, actor: User) -> Deployment | Promotion:
        return await deploy(
            session,
            actor=actor,
            box=acme.box,
            integration_id=acme.integration_id,
            build_id=build_id or acme.builds[version],
            environment_id=environment_id or acme.environments[environment],
            configuration=[ConfigEntry(k, v) for k, v in (configuration or {}).items()],
            idempotency_key=idempotency_key,
        )

    return call


async def restarting(acme: Acme, environment: str = "Development") -> Call[Deployment | Promotion]:
    deployment_id = (await acme.deployment(environment)).id

    async def call(session: AsyncSession, actor: User) -> Deployment | Promotion:
        return await restart(session, actor=actor, box=acme.box, deployment_id=deployment_id)

    return call


async def rolling_back(
    acme: Acme, revision: int | None = None, environment: str = "Development"
) -> Call[Deployment | Promotion]:
    deployment_id = (await acme.deployment(environment)).id

    async def call(session: AsyncSession, actor: User) -> Deployment | Promotion:
        return await rollback(
            session, actor=actor, box=acme.box, deployment_id=deployment_id, revision=revision
        )

    return call


async def suspending(acme: Acme, environment: str = "Development") -> Call[Deployment]:
    deployment_id = (await acme.deployment(environment)).id
    return lambda session, actor: suspend(session, actor=actor, deployment_id=deployment_id)


async def resuming(acme: Acme, environment: str = "Development") -> Call[Deployment]:
    deployment_id = (await acme.deployment(environment)).id
    return lambda session, actor: resume(session, actor=actor, deployment_id=deployment_id)


async def restarting_for_configuration(
    acme: Acme, environment: str = "Development"
) -> Call[Promotion | None]:
    deployment_id = (await acme.deployment(environment)).id

    async def call(session: AsyncSession, actor: User) -> Promotion | None:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        return await restart_for_configuration(
            session, actor=actor, box=acme.box, deployment=deployment
        )

    return call


def queueing(deployment_id: str, kind: ChangeKind, build_id: str) -> Call[DeploymentChange]:
    async def call(session: AsyncSession, actor: User) -> DeploymentChange:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        return await queue_change(
            session,
            deployment=deployment,
            kind=kind,
            actor=actor,
            detail=f"{kind.value.lower()} queued",
            build_id=build_id,
        )

    return call


async def running_in_development(acme: Acme) -> None:
    """Build 1.0 ACTIVE in Development with every required value."""
    await record_run(acme, "Development", "1.0", values=COMPLETE)


# ---- deploy -----------------------------------------------------------------------------------


async def test_a_deploy_queues_the_build_in_the_first_environment_of_the_pipeline(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Development", COMPLETE)
    before = await every_row(engine)

    deployment = await acme.run("developer", deploying(acme, version="2.0"))

    assert isinstance(deployment, Deployment)
    assert deployment.status is DeploymentStatus.IN_PROGRESS
    [change] = await acme.changes("Development")
    assert (change.kind, change.status, change.build_id, change.actor_id) == (
        ChangeKind.DEPLOY,
        ChangeStatus.QUEUED,
        acme.builds["2.0"],
        acme.users["developer"],
    )
    assert await told_the_workers(acme, change)
    assert await deployment_events(acme, "Development") == [("IN_PROGRESS", "deploy of 2.0 queued")]
    assert added(before, await every_row(engine)) == {
        "deployment_changes": 1,
        "outbox": 2,
        "audit_events": 1,
    }


async def test_a_deploy_goes_into_the_first_environment_only(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    for environment in ("Development", "Staging", "Production"):
        await acme.configure(environment, COMPLETE)
    for environment in ("Staging", "Production"):
        refusal = await acme.refuses("developer", deploying(acme, environment), PromotionBlocked)
        assert refusal.blockers == [Blocker.NOT_NEXT_ENVIRONMENT]
        assert refusal.message == (
            "a deploy goes into Development, the first environment of the pipeline; "
            f"{environment} is reached by promotion"
        )
    outside = await acme.refuses("developer", deploying(acme, "Sandbox"), PromotionBlocked)
    assert outside.blockers == [Blocker.ENVIRONMENT_NOT_IN_PIPELINE]
    async with acme.session() as session:
        # Another organization's environment, and a build that is not the integration's.
        elsewhere = (
            await session.exec(
                select(Deployment.environment_id).where(Deployment.organization_id != acme.id)
            )
        ).first()
    other_env = elsewhere or "env_nope"
    await acme.refuses("developer", deploying(acme, environment_id=other_env), NotFound)
    await acme.refuses("developer", deploying(acme, build_id="bld_nope"), NotFound)


async def test_a_deploy_needs_every_required_value_and_may_bring_them(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    refusal = await acme.refuses("developer", deploying(acme), MissingConfiguration)
    assert (refusal.environment_id, refusal.keys) == (
        acme.environments["Development"],
        ["GREETING", "API_KEY"],
    )
    # Values it brings are stored with it, or not at all.
    partial = await acme.refuses(
        "developer", deploying(acme, configuration={"GREETING": "hi"}), MissingConfiguration
    )
    assert partial.keys == ["API_KEY"]
    invalid = await acme.refuses(
        "developer", deploying(acme, configuration={"REPEAT": "many"}), InvalidInput
    )
    assert invalid.field == "configuration[0].value"

    await acme.run("developer", deploying(acme, configuration={**COMPLETE, "REPEAT": "2"}))
    assert await acme.values("Development") == {**COMPLETE, "REPEAT": "2"}
    async with acme.session() as session:
        stored = await stored_values(session, (await acme.deployment("Development")).id)
    assert stored["API_KEY"].secret and stored["API_KEY"].value != COMPLETE["API_KEY"]


async def test_a_frozen_environment_refuses_deploys_restarts_suspends_and_rollbacks(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await record_run(acme, "Development", "2.0")
    await acme.freeze("Development", "incident 42")
    calls: list[Call[Any]] = [
        deploying(acme),
        await restarting(acme),
        await suspending(acme),
        await rolling_back(acme),
        await restarting_for_configuration(acme),
    ]
    for call in calls:
        refusal = await acme.refuses("developer", call, PromotionBlocked)
        assert refusal.blockers == [Blocker.TARGET_FROZEN]
        assert refusal.message == "Development is frozen: incident 42"


async def test_a_retried_deploy_with_the_same_key_is_queued_once(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Development", COMPLETE)
    first = await acme.run("developer", deploying(acme, idempotency_key="ci-run-7"))
    rows = await every_row(engine)
    again = await acme.run("developer", deploying(acme, idempotency_key="ci-run-7"))
    assert again.id == first.id
    assert await every_row(engine) == rows


async def test_only_members_who_develop_change_what_runs(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await record_run(acme, "Development", "2.0")
    calls: list[Call[Any]] = [
        deploying(acme),
        await restarting(acme),
        await suspending(acme),
        await rolling_back(acme),
    ]
    for who, error in [("viewer", Forbidden), ("approver", Forbidden), ("outsider", NotFound)]:
        for call in calls:
            await acme.refuses(who, call, error)


# ---- the queue --------------------------------------------------------------------------------


async def test_a_deploy_or_promotion_marks_only_a_deployment_that_runs_nothing_in_progress(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    cases = [
        (DeploymentStatus.NOT_DEPLOYED, ChangeKind.DEPLOY, DeploymentStatus.IN_PROGRESS),
        (DeploymentStatus.ERROR, ChangeKind.PROMOTION, DeploymentStatus.IN_PROGRESS),
        (DeploymentStatus.ACTIVE, ChangeKind.DEPLOY, DeploymentStatus.ACTIVE),
        (DeploymentStatus.SUSPENDED, ChangeKind.PROMOTION, DeploymentStatus.SUSPENDED),
        (DeploymentStatus.ERROR, ChangeKind.RESTART, DeploymentStatus.ERROR),
    ]
    for status, kind, then in cases:
        await set_status(acme, "Development", status)
        deployment_id = (await acme.deployment("Development")).id
        queue = queueing(deployment_id, kind, acme.builds["1.0"])
        change = await acme.run("developer", queue)
        assert (await acme.deployment("Development")).status is then, (status, kind)
        assert await told_the_workers(acme, change)


# ---- restart, suspend, resume -----------------------------------------------------------------


async def test_only_what_is_active_or_failed_restarts_and_only_with_every_required_value(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Development", COMPLETE)
    for status in (
        DeploymentStatus.NOT_DEPLOYED,
        DeploymentStatus.IN_PROGRESS,
        DeploymentStatus.SUSPENDED,
    ):
        await set_status(acme, "Development", status)
        refusal = await acme.refuses("developer", await restarting(acme), InvalidInput)
        assert (refusal.field, refusal.message) == (
            "id",
            "only a deployment that is ACTIVE or ERROR can be restarted; "
            f"this one is {status.value}",
        )
    # A first deploy that failed left no build to restart.
    await set_status(acme, "Development", DeploymentStatus.ERROR)
    never_ran = await acme.refuses("developer", await restarting(acme), InvalidInput)
    assert never_ran.message == (
        "no build has run in this environment yet: deploy or promote one first"
    )
    await record_run(acme, "Development", "1.0")
    await acme.configure("Development", {"API_KEY": None})
    missing = await acme.refuses("developer", await restarting(acme), MissingConfiguration)
    assert missing.keys == ["API_KEY"]


async def test_a_restart_runs_the_same_build_with_the_current_values(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    for status in (DeploymentStatus.ACTIVE, DeploymentStatus.ERROR):
        await set_status(acme, "Development", status)
        deployment = await acme.run("developer", await restarting(acme))
        assert isinstance(deployment, Deployment)
        assert deployment.status is status  # the instance that serves keeps serving
        change = (await acme.changes("Development"))[-1]
        # No build named: the one that runs; no version pinned: what is stored when it runs.
        assert (change.kind, change.build_id, change.expected_config_version) == (
            ChangeKind.RESTART,
            None,
            None,
        )
        assert await told_the_workers(acme, change)
    assert [status for status, _ in await deployment_events(acme, "Development")] == [
        "ACTIVE",
        "ERROR",
    ]


async def test_suspend_and_resume_follow_what_runs(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    not_suspended = await acme.refuses("developer", await resuming(acme), InvalidInput)
    assert not_suspended.message == (
        "only a deployment that is SUSPENDED can be resumed; this one is ACTIVE"
    )
    await acme.run("developer", await suspending(acme))
    await set_status(acme, "Development", DeploymentStatus.SUSPENDED)  # as the worker leaves it
    await acme.refuses("developer", await suspending(acme), InvalidInput)
    await acme.run("developer", await resuming(acme))
    kinds = [change.kind for change in await acme.changes("Development")]
    assert kinds == [ChangeKind.DEPLOY, ChangeKind.SUSPEND, ChangeKind.RESUME]


async def test_a_configuration_restart_needs_something_running(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Development", COMPLETE)
    refusal = await acme.refuses(
        "developer", await restarting_for_configuration(acme), InvalidInput
    )
    assert refusal.field == "restart"
    await record_run(acme, "Development", "1.0")
    assert await acme.run("developer", await restarting_for_configuration(acme)) is None
    change = (await acme.changes("Development"))[-1]
    assert (change.kind, change.status, change.build_id) == (
        ChangeKind.CONFIG_CHANGE,
        ChangeStatus.QUEUED,
        None,
    )


# ---- rollback ---------------------------------------------------------------------------------


async def test_a_rollback_reapplies_an_earlier_revision_as_a_new_change(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    only_one = await acme.refuses("developer", await rolling_back(acme), InvalidInput)
    assert (only_one.field, only_one.message) == (
        "revision",
        "there is no earlier revision to roll back to",
    )
    await record_run(acme, "Development", "2.0", values={"GREETING": "hello again"})
    await record_run(acme, "Development", "2.0", values={"COLOR": "blue"})
    for revision, message in [
        (3, "revision 3 is the current one"),
        (7, "there is no revision 7"),
        (0, "there is no revision 0"),
    ]:
        refusal = await acme.refuses("developer", await rolling_back(acme, revision), InvalidInput)
        assert refusal.message == message

    await acme.run("developer", await rolling_back(acme))  # the one before the current
    await set_status(acme, "Development", DeploymentStatus.SUSPENDED)  # suspended rolls back too
    await acme.run("developer", await rolling_back(acme, 1))
    changes = (await acme.changes("Development"))[-2:]
    assert [(c.kind, c.build_id, c.rollback_to_revision) for c in changes] == [
        (ChangeKind.ROLLBACK, acme.builds["2.0"], 2),
        (ChangeKind.ROLLBACK, acme.builds["1.0"], 1),
    ]
    for change in changes:
        assert await told_the_workers(acme, change)
    await set_status(acme, "Development", DeploymentStatus.NOT_DEPLOYED)
    await acme.refuses("developer", await rolling_back(acme, 1), InvalidInput)


# ---- in a protected environment ---------------------------------------------------------------


async def test_in_a_protected_environment_each_change_of_what_runs_is_a_request(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Development", COMPLETE)
    await acme.protect("Development", required_approvals=1)
    before = await every_row(engine)

    request = await acme.run("developer", deploying(acme))

    assert isinstance(request, Promotion)
    assert (request.kind, request.status, request.build_id) == (
        RequestKind.DEPLOY,
        PromotionStatus.PENDING_APPROVAL,
        acme.builds["1.0"],
    )
    assert request.source_environment_id == request.target_environment_id
    assert await acme.changes("Development") == []
    assert added(before, await every_row(engine)) == {
        "promotions": 1,
        "promotion_events": 1,
        "outbox": 2,
        "audit_events": 1,
    }
    # While it waits, no other request for the integration there is filed.
    waiting = await acme.refuses("developer2", deploying(acme, version="2.0"), PromotionBlocked)
    assert waiting.blockers == [Blocker.REQUEST_ALREADY_PENDING]

    await acme.run(
        "approver", lambda session, actor: approve(session, actor=actor, promotion_id=request.id)
    )
    [change] = await acme.changes("Development")
    assert (change.kind, change.build_id, change.promotion_id) == (
        ChangeKind.DEPLOY,
        acme.builds["1.0"],
        request.id,
    )
    assert change.expected_config_version == request.config_version is not None


async def test_a_protected_restart_is_a_request_only_when_it_would_apply_new_values(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.protect("Development", required_approvals=1)
    unchanged = await acme.run("developer", await restarting(acme))
    assert isinstance(unchanged, Deployment)
    change = (await acme.changes("Development"))[-1]
    # Unreviewed, so it may run only what is stored now.
    assert (change.kind, change.expected_config_version) == (
        ChangeKind.RESTART,
        unchanged.config_version,
    )

    await acme.configure("Development", {"GREETING": "bonjour", "API_KEY": "rotated"})
    request = await acme.run("developer", await restarting(acme))
    assert isinstance(request, Promotion)
    assert (request.kind, request.build_id) == (RequestKind.RESTART, acme.builds["1.0"])
    plan = {diff.key: diff for diff in requested_changes(acme.box, request)}
    assert (plan["GREETING"].kind, plan["GREETING"].before, plan["GREETING"].after) == (
        ConfigChangeKind.CHANGED,
        "hello",
        "bonjour",
    )
    # A secret stored again reads CHANGED, and shows no value.
    assert (plan["API_KEY"].kind, plan["API_KEY"].before, plan["API_KEY"].after) == (
        ConfigChangeKind.CHANGED,
        None,
        None,
    )
    assert len(await acme.changes("Development")) == 2  # the run and the unreviewed restart


async def test_protected_rollbacks_and_configuration_restarts_are_requests(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await record_run(acme, "Development", "2.0", values={"GREETING": "hello again"})
    await acme.protect("Development", required_approvals=1)

    request = await acme.run("developer", await rolling_back(acme))
    assert isinstance(request, Promotion)
    assert (request.kind, request.build_id, request.rollback_to_revision) == (
        RequestKind.ROLLBACK,
        acme.builds["1.0"],
        1,
    )
    plan = {diff.key: diff for diff in requested_changes(acme.box, request)}
    assert (plan["GREETING"].before, plan["GREETING"].after) == ("hello again", "hello")
    await acme.run(
        "approver", lambda session, actor: approve(session, actor=actor, promotion_id=request.id)
    )
    rolled = (await acme.changes("Development"))[-1]
    assert (rolled.kind, rolled.build_id, rolled.rollback_to_revision) == (
        ChangeKind.ROLLBACK,
        acme.builds["1.0"],
        1,
    )

    configuration = await acme.run("developer", await restarting_for_configuration(acme))
    assert configuration is not None and configuration.kind is RequestKind.CONFIGURATION
    await acme.run(
        "approver",
        lambda session, actor: approve(session, actor=actor, promotion_id=configuration.id),
    )
    applied = (await acme.changes("Development"))[-1]
    # A configuration change runs the build that runs then: it names none.
    assert (applied.kind, applied.build_id, applied.promotion_id) == (
        ChangeKind.CONFIG_CHANGE,
        None,
        configuration.id,
    )


async def test_a_deploy_goes_into_the_first_environment_of_the_projects_own_pipeline(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Staging", COMPLETE)
    later = await acme.run(
        "admin",
        lambda session, admin: create_pipeline(
            session,
            actor=admin,
            organization_id=acme.id,
            name="Late start",
            environment_ids=[acme.environments["Staging"], acme.environments["Production"]],
        ),
    )
    await acme.run(
        "admin",
        lambda session, admin: set_project_pipeline(
            session, actor=admin, project_id=acme.project_id, pipeline_id=later.id
        ),
    )
    refusal = await acme.refuses("developer", deploying(acme, "Development"), PromotionBlocked)
    assert refusal.blockers == [Blocker.ENVIRONMENT_NOT_IN_PIPELINE]
    deployment = await acme.run("developer", deploying(acme, "Staging"))
    assert deployment.status is DeploymentStatus.IN_PROGRESS
