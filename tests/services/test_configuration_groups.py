"""Configuration groups: an organization's keys with a value per environment, linked to
integrations. A linked deployment runs its own values over the group's; required keys a group
sets count as set (promotionPlan, missingConfiguration); changing a group marks the linked
deployments restartRequired and with ``restart`` queues one change per running deployment
(a request where the environment is protected); secrets are sealed; only ADMINs and the
group's editor role edit it, and bad input changes nothing."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    ChangeKind,
    ChangeStatus,
    ConfigurationGroup,
    ConfigurationGroupValue,
    DeploymentChange,
    GroupLinkMode,
    Promotion,
    PromotionStatus,
    RequestKind,
    Role,
    User,
)
from app.services import changes
from app.services import changes as changes_service
from app.services.approvals import approve, cancel
from app.services.change_requests import requested_changes
from app.services.configuration import ConfigEntry
from app.services.configuration_groups import (
    GroupKey,
    ValuesSet,
    create_group,
    effective_configuration,
    link_group,
    set_group_values,
)
from app.services.errors import Blocker, Conflict, Forbidden, InvalidInput, NotFound
from app.services.promotions import PromotionRequest, plan_promotion
from tests.support.acme import COMPLETE, Acme, Call, record_run, set_up_acme
from workers.instances import _secrets_in_files
from workers.steps.applying import ChangeRefused, apply_configuration

KEYS = [GroupKey("GREETING"), GroupKey("API_KEY", secret=True), GroupKey("DATABASE_URL")]
STAGING = {"GREETING": "hello from the group", "API_KEY": "group-s3cret", "DATABASE_URL": "pg://db"}


def creating(acme: Acme, name: str = "shared", **fields: Any) -> Call[ConfigurationGroup]:
    async def call(session: AsyncSession, actor: User) -> ConfigurationGroup:
        return await create_group(
            session,
            actor=actor,
            organization_id=fields.pop("organization_id", acme.id),
            name=name,
            keys=fields.pop("keys", KEYS),
            **fields,
        )

    return call


def setting(
    acme: Acme,
    group_id: str,
    environment: str,
    values: dict[str, str | None],
    restart: bool = False,
) -> Call[ValuesSet]:
    async def call(session: AsyncSession, actor: User) -> ValuesSet:
        return await set_group_values(
            session,
            actor=actor,
            box=acme.box,
            group_id=group_id,
            environment_id=acme.environments[environment],
            entries=[ConfigEntry(key=k, value=v) for k, v in values.items()],
            restart=restart,
        )

    return call


def linking(
    group_id: str, integration_id: str, mode: GroupLinkMode = GroupLinkMode.ENVIRONMENT
) -> Call[object]:
    async def call(session: AsyncSession, actor: User) -> object:
        return await link_group(
            session, actor=actor, group_id=group_id, integration_id=integration_id, mode=mode
        )

    return call


async def shared_group(acme: Acme, **fields: Any) -> str:
    """The group "shared" with Staging's values, linked to the greeter."""
    group = await acme.run("admin", creating(acme, **fields))
    await acme.run("admin", setting(acme, group.id, "Staging", dict(STAGING)))
    await acme.run("admin", linking(group.id, acme.integration_id))
    return group.id


async def blockers_into_staging(acme: Acme) -> list[Blocker]:
    plan = await acme.run(
        "developer",
        lambda session, developer: plan_promotion(
            session,
            actor=developer,
            box=acme.box,
            request=PromotionRequest(acme.integration_id, acme.environments["Development"]),
        ),
    )
    return plan.blockers


async def effective(acme: Acme, environment: str) -> tuple[dict[str, str], dict[str, Any]]:
    deployment = await acme.deployment(environment)
    async with acme.session() as session:
        found = await effective_configuration(session, acme.box, deployment)
    return found.values, found.groups


async def test_a_linked_deployment_runs_its_own_values_over_the_groups(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    await acme.configure("Staging", {"COLOR": "red"})
    assert Blocker.MISSING_CONFIGURATION in await blockers_into_staging(acme)

    await shared_group(acme)
    # Staging's required keys are set by the group now: nothing is missing.
    assert await blockers_into_staging(acme) == []
    values, groups = await effective(acme, "Staging")
    assert values == {**STAGING, "COLOR": "red"}
    assert groups == {
        "GREETING": {"group": "shared", "secret": False, "file": False},
        "API_KEY": {"group": "shared", "secret": True, "file": False},
        "DATABASE_URL": {"group": "shared", "secret": False, "file": False},
    }
    # Its own value wins, and is its own.
    await acme.configure("Staging", {"GREETING": "hello from Staging"})
    values, groups = await effective(acme, "Staging")
    assert values["GREETING"] == "hello from Staging"
    assert "GREETING" not in groups
    # Other environments have no group values: nothing of Staging's reaches them.
    assert (await effective(acme, "Production"))[1] == {}
    # The secret is sealed where it is stored.
    async with acme.session() as session:
        rows = (await session.exec(select(ConfigurationGroupValue))).all()
    stored = {row.key: row for row in rows}
    assert stored["API_KEY"].secret and stored["API_KEY"].value != STAGING["API_KEY"]
    assert acme.box.open(stored["API_KEY"].value) == STAGING["API_KEY"]
    assert stored["GREETING"].value == STAGING["GREETING"]


async def test_a_change_freezes_the_group_values_into_its_snapshot(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Staging", "1.0", values={"COLOR": "red", **COMPLETE})
    group = await acme.run(
        "admin", creating(acme, name="files", keys=[GroupKey("A"), GroupKey("B", secret=True)])
    )
    await acme.run("admin", setting(acme, group.id, "Staging", {"A": "1", "B": "two"}))
    await acme.run("admin", linking(group.id, acme.integration_id, GroupLinkMode.FILE))
    # As a file: the group's keys together, one TOML document.
    values, groups = await effective(acme, "Staging")
    assert tomllib.loads(values["groups/files.toml"]) == {"A": "1", "B": "two"}
    assert groups == {
        "groups/files.toml": {"group": "files", "secret": True, "file": True, "secret_keys": ["B"]}
    }

    deployment = await acme.deployment("Staging")
    assert deployment.config_version != deployment.applied_config_version  # restartRequired
    await acme.run(
        "admin",
        lambda session, admin: changes.restart(
            session, actor=admin, box=acme.box, deployment_id=deployment.id
        ),
    )
    async with acme.session() as session:
        change = (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.status == ChangeStatus.QUEUED)
            )
        ).one()
        await apply_configuration(session, acme.box, change)
        assert change.snapshot_sealed is not None
        assert acme.box.open_json(change.snapshot_sealed) == values
        assert change.snapshot_groups == groups
        assert change.snapshot_config_version == deployment.config_version


async def test_changing_a_group_marks_linked_deployments_and_restarts_the_running_ones(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Staging", "1.0", values=COMPLETE)
    await record_run(acme, "Production", "1.0", values=COMPLETE)
    group_id = await shared_group(acme)
    before = {env: await acme.deployment(env) for env in ("Staging", "Production")}

    result = await acme.run(
        "admin", setting(acme, group_id, "Staging", {"DATABASE_URL": "pg://db2"}, restart=True)
    )
    assert [d.id for d in result.restarted] == [before["Staging"].id]
    assert result.requests == []
    [queued] = [c for c in await acme.changes("Staging") if c.status is ChangeStatus.QUEUED]
    assert queued.kind is ChangeKind.CONFIG_CHANGE
    staging = await acme.deployment("Staging")
    assert staging.config_version == before["Staging"].config_version + 1
    # Production's values did not change: not marked, not restarted.
    production = await acme.deployment("Production")
    assert production.config_version == before["Production"].config_version
    assert all(c.status is not ChangeStatus.QUEUED for c in await acme.changes("Production"))

    # Where an approval policy protects the environment, the restart is a request to review.
    await acme.protect("Production")
    await acme.run("admin", setting(acme, group_id, "Production", {"DATABASE_URL": "pg://p"}))
    filed = await acme.run(
        "admin", setting(acme, group_id, "Production", {"GREETING": "hi"}, restart=True)
    )
    [request] = filed.requests
    assert (request.kind, request.status) == (
        RequestKind.CONFIGURATION,
        PromotionStatus.PENDING_APPROVAL,
    )

    # A frozen environment keeps running what it runs: marked, not restarted.
    await acme.freeze("Staging")
    frozen = await acme.run(
        "admin", setting(acme, group_id, "Staging", {"GREETING": "later"}, restart=True)
    )
    assert frozen.restarted == [] and frozen.requests == []


async def test_only_admins_and_the_groups_editor_role_edit_it(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.refuses("developer", creating(acme), Forbidden)
    await acme.refuses("outsider", creating(acme), NotFound)
    locked = await acme.run("admin", creating(acme, name="locked"))
    await acme.refuses(
        "developer", setting(acme, locked.id, "Staging", {"GREETING": "x"}), Forbidden
    )
    await acme.refuses("outsider", setting(acme, locked.id, "Staging", {"GREETING": "x"}), NotFound)

    open_to_developers = await acme.run(
        "admin", creating(acme, name="dev-shared", editor_role=Role.DEVELOPER)
    )
    await acme.run("developer", setting(acme, open_to_developers.id, "Staging", {"GREETING": "x"}))
    await acme.run("developer", linking(open_to_developers.id, acme.integration_id))
    await acme.refuses(
        "approver", setting(acme, open_to_developers.id, "Staging", {"GREETING": "y"}), Forbidden
    )


async def test_bad_input_is_refused_and_changes_nothing(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    group = await acme.run("admin", creating(acme))
    invalid: list[tuple[Call[object], str]] = [
        (creating(acme, name="Not A Name"), "name"),
        (creating(acme, name="shared-2\n"), "name"),
        (creating(acme, name="x", keys=[GroupKey("A\n")]), "keys[0].key"),
        (creating(acme, name="x", keys=[]), "keys"),
        (creating(acme, name="x", keys=[GroupKey("A"), GroupKey("A")]), "keys[1].key"),
        (creating(acme, name="x", keys=[GroupKey("1A")]), "keys[0].key"),
        (creating(acme, name="x", editor_role=Role.VIEWER), "editorRole"),
        (setting(acme, group.id, "Staging", {"NOT_A_KEY": "x"}), "entries[0].key"),
        (setting(acme, group.id, "Staging", {}), "entries"),
        (
            setting(acme, group.id, "Staging", {"GREETING": "x" * (64 * 1024 + 1)}),
            "entries[0].value",
        ),
    ]
    for call, field in invalid:
        refusal = await acme.refuses("admin", call, InvalidInput)
        assert refusal.field == field
    await acme.refuses("admin", creating(acme), Conflict)  # the name is taken

    # API_KEY is secret in the greeter's schema: a group may not hand it over in the clear.
    clear = await acme.run("admin", creating(acme, name="clear", keys=[GroupKey("API_KEY")]))
    refusal = await acme.refuses("admin", linking(clear.id, acme.integration_id), InvalidInput)
    assert "secret" in refusal.message
    # A key comes from one group.
    await acme.run("admin", linking(group.id, acme.integration_id))
    other = await acme.run("admin", creating(acme, name="other", keys=[GroupKey("GREETING")]))
    await acme.refuses("admin", linking(other.id, acme.integration_id), Conflict)
    await acme.refuses("admin", linking(group.id, acme.integration_id), Conflict)  # twice
    # Another organization's integration is not found.
    await acme.refuses("admin", linking(other.id, "int_01jzzzzzzzzzzzzzzzzzzzzzzz"), NotFound)


async def test_a_request_plan_masks_group_secrets_and_a_reviewed_rollback_runs_nothing_unseen(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Staging", "1.0", values=COMPLETE)
    await record_run(acme, "Staging", "2.0")
    await acme.protect("Staging")
    secrets = await acme.run(
        "admin", creating(acme, name="secrets", keys=[GroupKey("DB_PASSWORD", secret=True)])
    )
    files = await acme.run(
        "admin", creating(acme, name="files", keys=[GroupKey("TOKEN", secret=True)])
    )
    for group, mode in ((secrets, GroupLinkMode.ENVIRONMENT), (files, GroupLinkMode.FILE)):
        await acme.run("admin", linking(group.id, acme.integration_id, mode))
    await acme.run("admin", setting(acme, secrets.id, "Staging", {"DB_PASSWORD": "pw-4711"}))
    filed = await acme.run(
        "admin", setting(acme, files.id, "Staging", {"TOKEN": "tok-4711"}, restart=True)
    )
    [request] = filed.requests
    changes = {c.key: c for c in requested_changes(acme.box, request)}
    # Neither group secret is in the plan a reviewer (or any member) reads.
    for key in ("DB_PASSWORD", "groups/files.toml"):
        assert (changes[key].secret, changes[key].before, changes[key].after) == (True, None, None)
    await acme.run(
        "admin", lambda session, admin: cancel(session, actor=admin, promotion_id=request.id)
    )

    # A reviewed rollback runs what was reviewed or nothing: group values stored after the
    # request make it refuse, as own values do.
    deployment = await acme.deployment("Staging")
    rollback = await acme.run(
        "developer",
        lambda session, developer: changes_service.rollback(
            session, actor=developer, box=acme.box, deployment_id=deployment.id, revision=1
        ),
    )
    assert isinstance(rollback, Promotion)
    await acme.run(
        "approver", lambda session, user: approve(session, actor=user, promotion_id=rollback.id)
    )
    await acme.run("admin", setting(acme, secrets.id, "Staging", {"DB_PASSWORD": "changed"}))
    async with acme.session() as session:
        change = (
            await session.exec(
                select(DeploymentChange).where(DeploymentChange.promotion_id == rollback.id)
            )
        ).one()
        with pytest.raises(ChangeRefused, match="the configuration changed after the request"):
            await apply_configuration(session, acme.box, change)


def test_the_secrets_inside_a_group_file_are_masked_one_by_one() -> None:
    values = {"groups/files.toml": 'A = "1"\nB = "tok-4711"\n'}
    layout = {"groups/files.toml": {"secret": True, "file": True, "secret_keys": ["B"]}}
    assert _secrets_in_files(values, layout) == frozenset({"tok-4711"})


async def test_a_groups_values_take_the_types_of_a_linked_integrations_schema(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    # REPEAT is an INT in the greeter's schema.
    tuning = await acme.run("admin", creating(acme, name="tuning", keys=[GroupKey("REPEAT")]))
    await acme.run("admin", setting(acme, tuning.id, "Staging", {"REPEAT": "many"}))
    refused = await acme.refuses("admin", linking(tuning.id, acme.integration_id), InvalidInput)
    assert (refused.field, "REPEAT must be an integer" in refused.message) == ("groupId", True)
    await acme.run("admin", setting(acme, tuning.id, "Staging", {"REPEAT": "3"}))
    await acme.run("admin", linking(tuning.id, acme.integration_id))
    later = await acme.refuses(
        "admin", setting(acme, tuning.id, "Production", {"REPEAT": "lots"}), InvalidInput
    )
    assert later.field == "entries[0].value"
