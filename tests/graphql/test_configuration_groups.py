"""Configuration groups through the API: an ADMIN creates a group, sets its values per
environment (secrets write-only: never in any answer), links it to an integration, whose
missingConfiguration counts the group's keys; the group's editor role edits it, other roles
are refused, and bad input is a ValidationError naming the field; setting values with
restart answers what was restarted."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ChangeKind, ChangeStatus
from tests.graphql.governance import (
    World,
    expect,
    governed_world,
    make_active,
    production_changes,
    refused_without_change,
)
from tests.graphql.queries import call, create_integration, create_project, mutation
from tests.support.graphql_client import GraphQLClient

SECRET = "group-secret-value-4711"
NEEDS = [
    {"key": "GREETING", "type": "STRING", "required": True},
    {"key": "API_KEY", "type": "STRING", "required": True, "secret": True},
]
GROUP_FIELDS = """... on ConfigurationGroup {
    id name editorRole keys { key secret }
    values { key secret value environment { name } }
    links { mode integration { name } }
}
... on ValidationError { field }"""
CREATE = mutation(
    "$input: CreateConfigurationGroupInput!",
    "createConfigurationGroup(input: $input)",
    GROUP_FIELDS,
)
SET_VALUES = mutation(
    "$input: SetConfigurationGroupValuesInput!",
    "setConfigurationGroupValues(input: $input)",
    """... on ConfigurationGroupValuesSet { group { values { key value secret } }
        restarted { id } requests { id kind status } }
    ... on ValidationError { field }""",
)
LINK = mutation(
    "$input: LinkConfigurationGroupInput!", "linkConfigurationGroup(input: $input)", GROUP_FIELDS
)
GROUPS = """query($slug: String!) { organization(slug: $slug) {
    configurationGroups { name keys { key secret } values { key value secret } } } }"""
MISSING = """query($id: ID!) { integration(id: $id) {
    configurationGroups { name }
    deployments { environment { name } missingConfiguration } } }"""


async def create(api: GraphQLClient, world: World, **fields: Any) -> dict[str, Any]:
    user = fields.pop("as_user", world.admin)
    given = {
        "organizationId": world.org.id,
        "name": "shared",
        "keys": [{"key": "GREETING"}, {"key": "API_KEY", "secret": True}],
        **fields,
    }
    return await call(api, CREATE, {"input": given}, as_user=user)


async def set_values(
    api: GraphQLClient, world: World, group_id: str, entries: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    user = extra.pop("as_user", world.admin)
    given = {
        "groupId": group_id,
        "environmentId": world.production,
        "entries": entries,
        **extra,
    }
    return await call(api, SET_VALUES, {"input": given}, as_user=user)


async def test_a_group_fills_an_integrations_configuration_and_never_shows_its_secrets(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    group = expect(await create(api, world), "ConfigurationGroup")
    assert group["keys"] == [
        {"key": "GREETING", "secret": False},
        {"key": "API_KEY", "secret": True},
    ]
    done = await set_values(
        api,
        world,
        group["id"],
        [{"key": "GREETING", "value": "hello from the group"}, {"key": "API_KEY", "value": SECRET}],
    )
    assert expect(done, "ConfigurationGroupValuesSet")["group"]["values"] == [
        {"key": "API_KEY", "value": None, "secret": True},
        {"key": "GREETING", "value": "hello from the group", "secret": False},
    ]
    project = await create_project(api, world.org, "Groups")
    needy = await create_integration(api, world.org, project["id"], "Needy", config_schema=NEEDS)
    before = await api.execute(MISSING, {"id": needy}, as_user=world.admin)
    missing = {
        d["environment"]["name"]: d["missingConfiguration"]
        for d in before["integration"]["deployments"]
    }
    assert missing["Production"] == ["GREETING", "API_KEY"]
    linked = await call(
        api,
        LINK,
        {"input": {"groupId": group["id"], "integrationId": needy}},
        as_user=world.admin,
    )
    assert expect(linked, "ConfigurationGroup")["links"] == [
        {"mode": "ENVIRONMENT", "integration": {"name": "Needy"}}
    ]
    after = await api.execute(MISSING, {"id": needy}, as_user=world.admin)
    assert after["integration"]["configurationGroups"] == [{"name": "shared"}]
    missing = {
        d["environment"]["name"]: d["missingConfiguration"]
        for d in after["integration"]["deployments"]
    }
    assert missing == {"Development": ["GREETING", "API_KEY"], "Production": []}
    # No answer holds the secret, for any role.
    for user in [world.admin, *world.members.values()]:
        body = await api.raw(GROUPS, {"slug": world.org.slug}, as_user=user)
        assert SECRET not in json.dumps(body)
        assert body["data"]["organization"]["configurationGroups"][0]["name"] == "shared"


async def test_only_admins_and_the_editor_role_edit_and_bad_input_changes_nothing(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    group = expect(await create(api, world, editorRole="DEVELOPER"), "ConfigurationGroup")
    entry = [{"key": "GREETING", "value": "x"}]
    done = await set_values(api, world, group["id"], entry, as_user=world.developer)
    expect(done, "ConfigurationGroupValuesSet")
    await refused_without_change(
        api,
        world,
        [
            (
                "created by a developer",
                lambda: create(api, world, name="other", as_user=world.developer),
                "ForbiddenError",
                None,
            ),
            (
                "values by an approver",
                lambda: set_values(api, world, group["id"], entry, as_user=world.approver),
                "ForbiddenError",
                "only ADMINs and DEVELOPERs",
            ),
            (
                "another organization's group",
                lambda: set_values(api, world, group["id"], entry, as_user=world.outsider),
                "NotFoundError",
                None,
            ),
            ("a bad name", lambda: create(api, world, name="Bad Name"), "ValidationError", None),
            ("a taken name", lambda: create(api, world), "ConflictError", "shared"),
            (
                "an unknown key",
                lambda: set_values(api, world, group["id"], [{"key": "NOPE", "value": "x"}]),
                "ValidationError",
                None,
            ),
        ],
    )
    unknown = await set_values(api, world, group["id"], [{"key": "NOPE", "value": "x"}])
    assert unknown["field"] == "entries[0].key"


async def test_setting_values_with_restart_answers_what_was_restarted(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    invoices = world.invoices
    # Invoices runs in Production (with its values), so there is something to restart.
    production = await make_active(
        session,
        integration_id=invoices.id,
        environment_id=world.production,
        build_id=invoices.build_id,
    )
    group = expect(await create(api, world, keys=[{"key": "FEATURE_X"}]), "ConfigurationGroup")
    expect(
        await call(
            api,
            LINK,
            {"input": {"groupId": group["id"], "integrationId": invoices.id}},
            as_user=world.admin,
        ),
        "ConfigurationGroup",
    )
    done = await set_values(
        api, world, group["id"], [{"key": "FEATURE_X", "value": "on"}], restart=True
    )
    assert expect(done, "ConfigurationGroupValuesSet")["restarted"] == [{"id": production}]
    [change] = await production_changes(engine, world)
    assert (change.kind, change.status) == (ChangeKind.CONFIG_CHANGE, ChangeStatus.QUEUED)
