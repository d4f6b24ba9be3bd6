"""The promotion service: the build that runs in one environment moves, unchanged, to the next
environment of the project's pipeline, where it runs with that environment's own
configuration. A promotion that cannot start is refused, naming every reason, and writes
nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    DeploymentStatus,
    Pipeline,
    Promotion,
    PromotionStatus,
    User,
)
from app.services.configuration import ConfigChangeKind, ConfigEntry
from app.services.environments import unfreeze_environment
from app.services.errors import (
    Blocker,
    Forbidden,
    InvalidInput,
    MissingConfiguration,
    NotFound,
    PromotionBlocked,
)
from app.services.pipelines import set_project_pipeline, update_pipeline
from app.services.promotions import (
    Plan,
    PromotionRequest,
    plan_promotion,
    promote,
    sealed_entries,
)
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


def request(
    acme: Acme,
    source: str = "Development",
    target: str | None = None,
    overrides: Sequence[tuple[str, str | None]] = (),
    *,
    copy_source_configuration: bool = False,
    message: str | None = None,
    idempotency_key: str | None = None,
) -> PromotionRequest:
    return PromotionRequest(
        integration_id=acme.integration_id,
        source_environment_id=acme.environments[source],
        target_environment_id=acme.environments[target] if target else None,
        overrides=[ConfigEntry(key=key, value=value) for key, value in overrides],
        copy_source_configuration=copy_source_configuration,
        message=message,
        idempotency_key=idempotency_key,
    )


def promoting(acme: Acme, wanted: PromotionRequest) -> Call[Promotion]:
    async def call(session: AsyncSession, actor: User) -> Promotion:
        return await promote(session, actor=actor, box=acme.box, request=wanted)

    return call


def planning(acme: Acme, wanted: PromotionRequest) -> Call[Plan]:
    async def call(session: AsyncSession, actor: User) -> Plan:
        return await plan_promotion(session, actor=actor, box=acme.box, request=wanted)

    return call


async def running_in_development(acme: Acme) -> None:
    """Build 1.0 ACTIVE in Development with every required value; Staging configured too."""
    await record_run(acme, "Development", "1.0", values={**COMPLETE, "COLOR": "green"})
    await acme.configure("Staging", {"GREETING": "hello staging", "API_KEY": "staging-key"})


# ---- what moves, and where -------------------------------------------------------------------


async def test_the_build_that_runs_in_the_source_moves_to_the_next_environment_unchanged(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    # A newer build exists, but a promotion moves what runs in the source, not the newest.
    staging_before = await acme.deployment("Staging")
    development_before = await acme.deployment("Development")
    before = await every_row(engine)

    promotion = await acme.run("developer", promoting(acme, request(acme)))

    assert promotion.status is PromotionStatus.QUEUED
    assert promotion.build_id == acme.builds["1.0"] == development_before.build_id
    assert (promotion.source_environment_id, promotion.target_environment_id) == (
        acme.environments["Development"],
        acme.environments["Staging"],
    )
    assert promotion.deployment_id == staging_before.id
    assert promotion.requested_by_id == acme.users["developer"]
    assert (promotion.required_approvals, promotion.approval_rule) == (0, None)
    [change] = await acme.changes("Staging")
    assert (change.kind, change.status, change.build_id, change.promotion_id) == (
        ChangeKind.PROMOTION,
        ChangeStatus.QUEUED,
        acme.builds["1.0"],
        promotion.id,
    )
    assert change.actor_id == acme.users["developer"]
    assert change.expected_config_version is None  # nobody reviewed a version of it
    assert await told_the_workers(acme, change)
    # The target waits for its change; its values apply only once the change runs.
    staging = await acme.deployment("Staging")
    assert (staging.status, staging.build_id, staging.revision) == (
        DeploymentStatus.IN_PROGRESS,
        None,
        0,
    )
    assert await acme.values("Staging") == {"GREETING": "hello staging", "API_KEY": "staging-key"}
    # The source is untouched.
    development = await acme.deployment("Development")
    assert (development.status, development.build_id, development.revision) == (
        DeploymentStatus.ACTIVE,
        acme.builds["1.0"],
        1,
    )
    # One promotion with its QUEUED event; its change; the command to the data plane, the
    # promotion's and the deployment's events; the audit entry.
    assert added(before, await every_row(engine)) == {
        "promotions": 1,
        "promotion_events": 1,
        "deployment_changes": 1,
        "outbox": 3,
        "audit_events": 1,
    }
    assert await announced(acme, promotion.id) == announced_as("QUEUED")
    assert await deployment_events(acme, "Staging") == [
        ("IN_PROGRESS", f"promotion {promotion.id} queued")
    ]


async def test_without_a_target_it_goes_to_the_next_environment_of_the_pipeline(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    for source, target in [("Development", "Staging"), ("Staging", "Production")]:
        await record_run(acme, source, "2.0", values=COMPLETE)
        await acme.configure(target, COMPLETE)
        promotion = await acme.run("developer", promoting(acme, request(acme, source)))
        assert promotion.target_environment_id == acme.environments[target], source
        assert promotion.build_id == acme.builds["2.0"]
        # Named explicitly, the next environment is just as good.
        plan = await acme.run("developer", planning(acme, request(acme, source, target)))
        assert (plan.target.name, plan.blockers) == (target, [])


async def test_there_is_no_next_environment_after_the_last_or_outside_the_pipeline(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Production", "1.0", values=COMPLETE)
    for source, blocker, where in [
        ("Production", Blocker.NOT_NEXT_ENVIRONMENT, "is the last environment of the pipeline"),
        ("Sandbox", Blocker.ENVIRONMENT_NOT_IN_PIPELINE, "is not in the project's pipeline"),
    ]:
        refusal = await acme.refuses(
            "developer", promoting(acme, request(acme, source)), PromotionBlocked
        )
        assert refusal.blockers == [blocker]
        assert refusal.message == f"{source} {where}: there is no next environment to promote to"


async def test_a_target_other_than_the_next_environment_is_blocked(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    for environment in ("Development", "Staging"):
        await record_run(acme, environment, "1.0", values=COMPLETE)
    await acme.configure("Production", COMPLETE)
    for source, target, blockers in [
        ("Development", "Production", [Blocker.NOT_NEXT_ENVIRONMENT]),  # Staging skipped
        ("Staging", "Development", [Blocker.NOT_NEXT_ENVIRONMENT]),  # backwards
        ("Development", "Development", [Blocker.NOT_NEXT_ENVIRONMENT]),
        # Outside the pipeline the integration has no deployment, so no values either.
        (
            "Development",
            "Sandbox",
            [Blocker.ENVIRONMENT_NOT_IN_PIPELINE, Blocker.MISSING_CONFIGURATION],
        ),
    ]:
        refusal = await acme.refuses(
            "developer", promoting(acme, request(acme, source, target)), PromotionBlocked
        )
        assert refusal.blockers == blockers, (source, target)


# ---- what blocks it ---------------------------------------------------------------------------


async def test_only_an_active_source_is_promoted(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Staging", COMPLETE)
    refusal = await acme.refuses("developer", promoting(acme, request(acme)), PromotionBlocked)
    assert refusal.blockers == [Blocker.SOURCE_NOT_ACTIVE]  # nothing ever ran there
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    for status in (
        DeploymentStatus.IN_PROGRESS,
        DeploymentStatus.SUSPENDED,
        DeploymentStatus.ERROR,
    ):
        await set_status(acme, "Development", status)
        refusal = await acme.refuses("developer", promoting(acme, request(acme)), PromotionBlocked)
        assert refusal.blockers == [Blocker.SOURCE_NOT_ACTIVE], status
        assert refusal.message == "Greeter is not ACTIVE in Development"


async def test_a_frozen_target_blocks_until_it_is_unfrozen(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.freeze("Staging", "release week")
    refusal = await acme.refuses("developer", promoting(acme, request(acme)), PromotionBlocked)
    assert refusal.blockers == [Blocker.TARGET_FROZEN]
    assert refusal.message == "Staging is frozen: release week"
    # A frozen source does not block: nothing new goes into it, but what runs there moves on.
    await acme.freeze("Development", "audit")
    await acme.run(
        "admin",
        lambda session, admin: unfreeze_environment(
            session, actor=admin, environment_id=acme.environments["Staging"]
        ),
    )
    promotion = await acme.run("developer", promoting(acme, request(acme)))
    assert promotion.status is PromotionStatus.QUEUED


async def test_every_reason_is_named_at_once(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.freeze("Staging")
    refusal = await acme.refuses("developer", promoting(acme, request(acme)), PromotionBlocked)
    expected = [Blocker.SOURCE_NOT_ACTIVE, Blocker.TARGET_FROZEN, Blocker.MISSING_CONFIGURATION]
    assert refusal.blockers == expected
    plan = await acme.run("developer", planning(acme, request(acme)))
    assert (plan.blockers, plan.missing, plan.build) == (expected, ["GREETING", "API_KEY"], None)


# ---- configuration ---------------------------------------------------------------------------


async def test_required_values_missing_in_the_target_block_it(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    # The source has every value: they are the source's own, and do not count for the target.
    await record_run(acme, "Development", "1.0", values={**COMPLETE, "COLOR": "green"})
    steps: list[tuple[dict[str, str | None], list[str]]] = [
        ({}, ["GREETING", "API_KEY"]),
        ({"GREETING": "hi"}, ["API_KEY"]),
        ({"GREETING": None, "API_KEY": "k", "COLOR": "red"}, ["GREETING"]),
    ]
    for stored, missing in steps:
        if stored:
            await acme.configure("Staging", stored)
        refusal = await acme.refuses(
            "developer", promoting(acme, request(acme)), MissingConfiguration
        )
        # REPEAT has a default and COLOR is optional: neither is ever missing.
        assert (refusal.environment_id, refusal.keys) == (acme.environments["Staging"], missing)
        assert refusal.message == f"Staging has no value for required keys: {', '.join(missing)}"
        plan = await acme.run("developer", planning(acme, request(acme)))
        assert (plan.blockers, plan.missing) == ([Blocker.MISSING_CONFIGURATION], missing)


async def test_overrides_supply_missing_values_and_apply_only_when_the_change_runs(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    wanted = request(
        acme, overrides=[("GREETING", "hello prod"), ("API_KEY", "key"), ("REPEAT", " 3")]
    )
    promotion = await acme.run("developer", promoting(acme, wanted))
    overrides, copied = sealed_entries(acme.box, promotion)
    assert overrides == [
        ConfigEntry("GREETING", "hello prod"),
        ConfigEntry("API_KEY", "key"),
        ConfigEntry("REPEAT", "3"),  # in its normal form
    ]
    assert copied == []
    assert "key" not in promotion.overrides_sealed  # sealed, secret and all
    assert await acme.values("Staging") == {}


async def test_the_source_configuration_is_carried_over_only_when_asked_and_never_its_secrets(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values={**COMPLETE, "COLOR": "green"})

    not_asked = await acme.refuses(
        "developer", promoting(acme, request(acme)), MissingConfiguration
    )
    assert not_asked.keys == ["GREETING", "API_KEY"]
    copying = request(acme, copy_source_configuration=True)
    secret_left = await acme.refuses("developer", promoting(acme, copying), MissingConfiguration)
    assert secret_left.keys == ["API_KEY"]

    wanted = request(acme, overrides=[("API_KEY", "prod-key")], copy_source_configuration=True)
    promotion = await acme.run("developer", promoting(acme, wanted))
    overrides, copied = sealed_entries(acme.box, promotion)
    assert overrides == [ConfigEntry("API_KEY", "prod-key")]
    assert sorted(copied, key=lambda e: e.key) == [
        ConfigEntry("COLOR", "green"),
        ConfigEntry("GREETING", "hello"),
    ]
    assert promotion.copy_source_configuration is True
    assert await acme.values("Staging") == {}


async def test_copying_fills_only_keys_the_target_has_no_value_for(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    wanted = request(acme, copy_source_configuration=True)
    plan = await acme.run("developer", planning(acme, wanted))
    assert plan.copied == [ConfigEntry("COLOR", "green")]
    kinds = {change.key: change.kind for change in plan.changes}
    assert kinds == {
        "GREETING": ConfigChangeKind.UNCHANGED,  # Staging's own "hello staging" stays
        "API_KEY": ConfigChangeKind.UNCHANGED,
        "COLOR": ConfigChangeKind.ADDED,
    }


async def test_copying_does_not_refill_a_key_the_request_removes(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    wanted = request(acme, overrides=[("GREETING", None)], copy_source_configuration=True)
    plan = await acme.run("developer", planning(acme, wanted))
    assert [entry.key for entry in plan.copied] == ["COLOR"]
    refusal = await acme.refuses("developer", promoting(acme, wanted), MissingConfiguration)
    assert refusal.keys == ["GREETING"]


async def test_overrides_are_checked_against_the_schema(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    cases: list[tuple[list[tuple[str, str | None]], str]] = [
        ([("NOPE", "1")], "overrides[0].key"),
        ([("greeting", "hi")], "overrides[0].key"),  # keys are case-sensitive
        ([("GREETING", "hi"), ("REPEAT", "ten")], "overrides[1].value"),
        ([("GREETING", "hi"), ("GREETING", "again")], "overrides[1].key"),
    ]
    for overrides, field in cases:
        refusal = await acme.refuses(
            "developer", promoting(acme, request(acme, overrides=overrides)), InvalidInput
        )
        assert refusal.field == field, overrides


async def test_a_plan_shows_what_would_change_and_changes_nothing(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.configure("Staging", {"COLOR": "red"})
    before = await every_row(engine)
    wanted = request(
        acme,
        overrides=[("GREETING", "new"), ("API_KEY", "staging-key"), ("COLOR", None)],
    )
    plan = await acme.run("developer", planning(acme, wanted))
    assert await every_row(engine) == before
    assert (plan.target.name, plan.requires_approval, plan.blockers) == ("Staging", False, [])
    assert plan.build is not None and plan.build.version == "1.0"
    changes = {change.key: change for change in plan.changes}
    assert set(changes) == {"GREETING", "API_KEY", "COLOR"}
    assert (changes["GREETING"].before, changes["GREETING"].after) == ("hello staging", "new")
    assert changes["GREETING"].kind is ConfigChangeKind.CHANGED
    assert changes["COLOR"].kind is ConfigChangeKind.REMOVED
    # A secret given again reads CHANGED, equal or not, and shows no value.
    secret = changes["API_KEY"]
    assert (secret.kind, secret.secret, secret.before, secret.after) == (
        ConfigChangeKind.CHANGED,
        True,
        None,
        None,
    )


# ---- who, and how often -------------------------------------------------------------------


async def test_only_members_who_develop_promote(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    errors: dict[str, type[Forbidden | NotFound]] = {
        "viewer": Forbidden,
        "approver": Forbidden,
        "outsider": NotFound,  # another organization's integration does not even exist
    }
    for who, error in errors.items():
        await acme.refuses(who, promoting(acme, request(acme)), error)
        await acme.refuses(who, planning(acme, request(acme)), error)


async def test_a_retried_request_with_the_same_key_is_the_same_promotion(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    wanted = request(acme, idempotency_key="deploy-42")
    first = await acme.run("developer", promoting(acme, wanted))
    rows = await every_row(engine)
    again = await acme.run("developer", promoting(acme, wanted))
    assert again.id == first.id
    assert await every_row(engine) == rows
    # The key is the requester's own: another developer's request with it is a new one.
    other = await acme.run("developer2", promoting(acme, wanted))
    assert other.id != first.id


async def test_a_message_is_kept_up_to_2000_characters(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    refusal = await acme.refuses(
        "developer", promoting(acme, request(acme, message="x" * 2001)), InvalidInput
    )
    assert refusal.field == "message"
    promotion = await acme.run("developer", promoting(acme, request(acme, message="y" * 2000)))
    assert (await acme.promotion(promotion.id)).message == "y" * 2000


async def test_a_refused_promotion_writes_nothing_even_when_its_transaction_commits(
    engine: AsyncEngine,
) -> None:
    """``promote`` refuses before it writes: whatever its caller does with the transaction
    next (commit it anyway, say) cannot record half a promotion."""
    acme = await set_up_acme(engine, then=running_in_development)

    async def refused_then_committed(wanted: PromotionRequest) -> None:
        before = await every_row(engine)
        async with acme.session() as session:
            developer = await session.get(User, acme.users["developer"])
            assert developer is not None
            with pytest.raises((PromotionBlocked, MissingConfiguration)):
                await promote(session, actor=developer, box=acme.box, request=wanted)
            await session.commit()
        assert await every_row(engine) == before

    await refused_then_committed(request(acme, target="Production"))
    await acme.configure("Staging", {"API_KEY": None})
    await refused_then_committed(request(acme))
    await acme.configure("Staging", {"API_KEY": "staging-key"})
    await acme.freeze("Staging")
    await refused_then_committed(request(acme))


async def test_the_next_environment_is_the_projects_pipelines_not_the_organizations_order(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine, then=running_in_development)
    await acme.configure("Production", COMPLETE)
    # The organization's Default pipeline goes from Development straight to Production.
    async with acme.session() as session:
        default = (
            await session.exec(
                select(Pipeline).where(
                    Pipeline.organization_id == acme.id, Pipeline.name == "Default"
                )
            )
        ).one()
    await acme.run(
        "admin",
        lambda session, admin: set_project_pipeline(
            session, actor=admin, project_id=acme.project_id, pipeline_id=default.id
        ),
    )
    plan = await acme.run("developer", planning(acme, request(acme)))
    assert (plan.target.name, plan.blockers) == ("Production", [])
    refusal = await acme.refuses(
        "developer", promoting(acme, request(acme, target="Staging")), PromotionBlocked
    )
    assert refusal.blockers == [Blocker.ENVIRONMENT_NOT_IN_PIPELINE]
    # Reordered, the pipeline decides again: Development, Production, Staging.
    await acme.run(
        "admin",
        lambda session, admin: update_pipeline(
            session,
            actor=admin,
            pipeline_id=acme.pipeline_id,
            environment_ids=[
                acme.environments[name] for name in ("Development", "Production", "Staging")
            ],
        ),
    )
    await acme.run(
        "admin",
        lambda session, admin: set_project_pipeline(
            session, actor=admin, project_id=acme.project_id, pipeline_id=acme.pipeline_id
        ),
    )
    promotion = await acme.run("developer", promoting(acme, request(acme)))
    assert promotion.target_environment_id == acme.environments["Production"]
