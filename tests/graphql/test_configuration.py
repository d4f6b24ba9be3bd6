"""Configuration over the API: the integration's schema decides which keys and values are valid,
each environment has its own values, and secret values never come back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import Environment, Membership, Organization, Role, User
from app.services.configuration import ConfigKey, ConfigType
from app.services.environments import create_environment
from app.services.projects import create_integration, create_project
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_organization, make_user

SCHEMA = [
    ConfigKey("WORKERS", ConfigType.INT),
    ConfigKey("API_URL"),
    ConfigKey("PASSWORD", secret=True),
    ConfigKey("RATIO", ConfigType.FLOAT, required=False),
    ConfigKey("DEBUG", ConfigType.BOOLEAN, default_value="false"),
    ConfigKey("PIN", ConfigType.INT, required=False, secret=True),
    ConfigKey("conf/app.yaml", ConfigType.FILE, required=False),
]
REQUIRED_WITHOUT_DEFAULT = ["WORKERS", "API_URL", "PASSWORD"]  # in schema order

SET_CONFIGURATION = """
mutation ($input: SetConfigurationInput!) {
  setConfiguration(input: $input) {
    __typename
    ... on Deployment {
      id status restartRequired missingConfiguration
      environment { name }
      configuration { key value secret updatedAt }
    }
    ... on Error { code message }
    ... on ValidationError { field }
  }
}
"""

DEPLOYMENTS = """
query ($id: ID!) {
  integration(id: $id) {
    configSchema { key type required secret defaultValue description }
    deployments {
      id status restartRequired missingConfiguration
      environment { name }
      configuration { key value secret updatedAt }
    }
  }
}
"""

CREATE_INTEGRATION = """
mutation ($input: CreateIntegrationInput!) {
  createIntegration(input: $input) {
    __typename
    ... on Integration { id configSchema { key type required secret defaultValue } }
    ... on Error { code message }
    ... on ValidationError { field }
  }
}
"""


@dataclass
class World:
    admin: User
    org: Organization
    project_id: str
    integration_id: str
    environments: dict[str, str]  # name -> id


@pytest.fixture
async def world(session: AsyncSession) -> World:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    project = await create_project(session, actor=admin, organization_id=org.id, name="Billing")
    integration = await create_integration(
        session, actor=admin, project_id=project.id, name="Invoices", config_schema=SCHEMA
    )
    await session.commit()
    environments = {
        env.name: env.id
        for env in (
            await session.exec(select(Environment).where(Environment.organization_id == org.id))
        ).all()
    }
    return World(admin, org, project.id, integration.id, environments)


async def member(session: AsyncSession, world: World, email: str, role: Role) -> User:
    user = await make_user(session, email)
    session.add(Membership(organization_id=world.org.id, user_id=user.id, role=role))
    await session.commit()
    return user


async def set_configuration(
    api: GraphQLClient,
    world: World,
    entries: dict[str, str | None],
    *,
    environment: str = "Development",
    as_user: User | None = None,
    restart: bool | None = None,
    environment_id: str | None = None,
) -> dict[str, Any]:
    """The whole response body (data and errors), so a test can search all of it."""
    variables: dict[str, Any] = {
        "input": {
            "integrationId": world.integration_id,
            "environmentId": environment_id or world.environments[environment],
            "entries": [{"key": k, "value": v} for k, v in entries.items()],
        }
    }
    if restart is not None:
        variables["input"]["restart"] = restart
    body = await api.raw(SET_CONFIGURATION, variables, as_user=as_user or world.admin)
    assert "errors" not in body, body["errors"]
    return body


def result(body: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = body["data"]["setConfiguration"]
    return value


async def deployments(api: GraphQLClient, world: World) -> dict[str, dict[str, Any]]:
    """The integration's deployments by environment name."""
    data = await api.execute(DEPLOYMENTS, {"id": world.integration_id}, as_user=world.admin)
    return {d["environment"]["name"]: d for d in data["integration"]["deployments"]}


def values(deployment: dict[str, Any]) -> dict[str, str | None]:
    return {c["key"]: c["value"] for c in deployment["configuration"]}


async def config_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        table = SQLModel.metadata.tables["config_values"]
        rows = await connection.execute(sa.select(table).order_by(table.c.key))
        return [dict(row) for row in rows.mappings().all()]


# ---- keys and values ----------------------------------------------------------------------


async def test_values_are_set_and_read_back_normalized(api: GraphQLClient, world: World) -> None:
    body = await set_configuration(
        api,
        world,
        {
            "WORKERS": " 8 ",
            "API_URL": " https://billing.example ",
            "RATIO": "1",
            "DEBUG": "TRUE",
            "conf/app.yaml": "a: 1\nb: 2\n",
        },
    )
    assert result(body)["__typename"] == "Deployment"
    expected = {
        "WORKERS": "8",
        "API_URL": " https://billing.example ",  # a string is kept as given
        "RATIO": "1.0",
        "DEBUG": "true",
        "conf/app.yaml": "a: 1\nb: 2\n",
    }
    assert values(result(body)) == expected
    assert values((await deployments(api, world))["Development"]) == expected
    # In the schema's order, whatever the order they were set in.
    assert [c["key"] for c in result(body)["configuration"]] == [
        "WORKERS",
        "API_URL",
        "RATIO",
        "DEBUG",
        "conf/app.yaml",
    ]


async def test_a_key_outside_the_schema_is_refused_and_nothing_is_stored(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    body = await set_configuration(api, world, {"API_URL": "https://x.example", "NOPE": "1"})
    refused = result(body)
    assert refused["__typename"] == "ValidationError"
    assert refused["field"] == "entries[1].key"
    assert "NOPE" in refused["message"]
    assert await config_rows(engine) == []
    assert values((await deployments(api, world))["Development"]) == {}


BAD_VALUES = [
    ("WORKERS", "ten"),
    ("WORKERS", "1.5"),
    ("WORKERS", ""),
    ("RATIO", "fast"),
    ("RATIO", "nan"),
    ("RATIO", "inf"),
    ("DEBUG", "yes"),
    ("DEBUG", "1"),
]


async def test_a_value_that_does_not_parse_is_refused_and_nothing_changes(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    await set_configuration(api, world, {"WORKERS": "4", "RATIO": "0.5", "DEBUG": "true"})
    before = await config_rows(engine)
    for key, bad in BAD_VALUES:
        body = await set_configuration(api, world, {"API_URL": "https://x.example", key: bad})
        refused = result(body)
        assert refused["__typename"] == "ValidationError", (key, bad)
        assert refused["field"] == "entries[1].value"
        assert key in refused["message"]
        assert await config_rows(engine) == before


async def test_a_null_value_removes_the_key(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    await set_configuration(api, world, {"API_URL": "https://x.example", "RATIO": "2.5"})
    body = await set_configuration(api, world, {"API_URL": None, "WORKERS": None})
    assert values(result(body)) == {"RATIO": "2.5"}
    assert "API_URL" in result(body)["missingConfiguration"]
    assert [row["key"] for row in await config_rows(engine)] == ["RATIO"]


async def test_missing_configuration_lists_required_keys_without_value_or_default(
    api: GraphQLClient, world: World
) -> None:
    # DEBUG is required but has a default; RATIO and PIN are optional: none of them is missing.
    initial = await deployments(api, world)
    assert initial["Development"]["missingConfiguration"] == REQUIRED_WITHOUT_DEFAULT
    assert initial["Production"]["missingConfiguration"] == REQUIRED_WITHOUT_DEFAULT

    body = await set_configuration(api, world, {"API_URL": "https://x.example"})
    assert result(body)["missingConfiguration"] == ["WORKERS", "PASSWORD"]
    body = await set_configuration(api, world, {"PASSWORD": "s3cret"})
    assert result(body)["missingConfiguration"] == ["WORKERS"]
    body = await set_configuration(api, world, {"WORKERS": "2"})
    assert result(body)["missingConfiguration"] == []
    assert (await deployments(api, world))["Development"]["missingConfiguration"] == []


async def test_a_key_with_a_default_is_never_missing(api: GraphQLClient, world: World) -> None:
    await set_configuration(api, world, {"DEBUG": "true"})
    body = await set_configuration(api, world, {"DEBUG": None})
    assert "DEBUG" not in result(body)["missingConfiguration"]
    schema = (await api.execute(DEPLOYMENTS, {"id": world.integration_id}, as_user=world.admin))[
        "integration"
    ]["configSchema"]
    debug = next(k for k in schema if k["key"] == "DEBUG")
    assert debug == {
        "key": "DEBUG",
        "type": "BOOLEAN",
        "required": True,
        "secret": False,
        "defaultValue": "false",
        "description": None,
    }


async def test_restart_is_not_required_while_not_deployed(api: GraphQLClient, world: World) -> None:
    body = await set_configuration(api, world, {"API_URL": "https://x.example"})
    assert result(body)["status"] == "NOT_DEPLOYED"
    assert result(body)["restartRequired"] is False
    assert all(d["restartRequired"] is False for d in (await deployments(api, world)).values())


async def test_configuration_belongs_to_one_environment(api: GraphQLClient, world: World) -> None:
    await set_configuration(api, world, {"API_URL": "https://dev.example", "WORKERS": "1"})
    await set_configuration(
        api, world, {"API_URL": "https://prod.example"}, environment="Production"
    )
    by_env = await deployments(api, world)
    assert values(by_env["Development"]) == {"WORKERS": "1", "API_URL": "https://dev.example"}
    assert values(by_env["Production"]) == {"API_URL": "https://prod.example"}
    assert by_env["Production"]["missingConfiguration"] == ["WORKERS", "PASSWORD"]

    await set_configuration(api, world, {"API_URL": None}, environment="Production")
    by_env = await deployments(api, world)
    assert values(by_env["Development"])["API_URL"] == "https://dev.example"
    assert values(by_env["Production"]) == {}


# ---- secrets -------------------------------------------------------------------------------


async def test_a_secret_is_stored_encrypted_and_never_returned(
    api: GraphQLClient, world: World, engine: AsyncEngine, box: SecretBox
) -> None:
    password = "hunter2-plaintext-7c1f"
    pin = "918273645"
    responses: list[dict[str, Any]] = []

    body = await set_configuration(api, world, {"PASSWORD": password, "PIN": pin})
    responses.append(body)
    assert result(body)["__typename"] == "Deployment"
    secrets = {c["key"]: c for c in result(body)["configuration"]}
    assert secrets["PASSWORD"]["value"] is None and secrets["PASSWORD"]["secret"] is True
    assert secrets["PIN"]["value"] is None and secrets["PIN"]["secret"] is True

    # Encrypted at rest, and the installation's key opens it.
    rows = {row["key"]: row for row in await config_rows(engine)}
    for key, plaintext in (("PASSWORD", password), ("PIN", pin)):
        assert rows[key]["secret"] is True
        assert plaintext not in rows[key]["value"]
        assert box.open(rows[key]["value"]) == plaintext

    # Not in any answer: reads, refusals that carry the secret, messages of errors.
    responses.append(await api.raw(DEPLOYMENTS, {"id": world.integration_id}, as_user=world.admin))
    dev_id = next(
        d["id"]
        for d in responses[-1]["data"]["integration"]["deployments"]
        if d["environment"]["name"] == "Development"
    )
    responses.append(
        await api.raw(
            "query ($id: ID!) { node(id: $id) { ... on Deployment { configuration "
            "{ key value secret } } } deployment(id: $id) { configuration { value } } }",
            {"id": dev_id},
            as_user=world.admin,
        )
    )
    responses.append(await set_configuration(api, world, {"PASSWORD": password, "NOPE": "x"}))
    responses.append(await set_configuration(api, world, {"PIN": password}))  # not an INT
    responses.append(await set_configuration(api, world, {"PASSWORD": password}, restart=True))
    assert [result(r)["__typename"] for r in responses[-3:]] == ["ValidationError"] * 3
    text = json.dumps(responses)
    assert password not in text
    assert pin not in text
    # The refusals left the stored secret alone.
    assert box.open((await config_rows(engine))[0]["value"]) == password


async def test_a_new_secret_value_replaces_the_old_one(
    api: GraphQLClient, world: World, engine: AsyncEngine, box: SecretBox
) -> None:
    await set_configuration(api, world, {"PASSWORD": "first"})
    await set_configuration(api, world, {"PASSWORD": "second"})
    (row,) = await config_rows(engine)
    assert box.open(row["value"]) == "second"


# ---- refusals -----------------------------------------------------------------------------


async def test_restart_is_refused_and_nothing_is_stored(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    body = await set_configuration(api, world, {"API_URL": "https://x.example"}, restart=True)
    assert result(body)["__typename"] == "ValidationError"
    assert result(body)["field"] == "restart"
    assert await config_rows(engine) == []
    body = await set_configuration(api, world, {"API_URL": "https://x.example"}, restart=False)
    assert result(body)["__typename"] == "Deployment"


async def test_an_environment_outside_the_pipeline_is_refused(
    api: GraphQLClient, world: World, session: AsyncSession, engine: AsyncEngine
) -> None:
    staging = await create_environment(
        session, actor=world.admin, organization_id=world.org.id, name="Staging", dns_prefix="stg"
    )
    await session.commit()
    body = await set_configuration(
        api, world, {"API_URL": "https://x.example"}, environment_id=staging.id
    )
    assert result(body)["__typename"] == "ValidationError"
    assert result(body)["field"] == "environmentId"
    assert await config_rows(engine) == []


async def test_another_organizations_environment_is_not_found(
    api: GraphQLClient, world: World, session: AsyncSession, engine: AsyncEngine
) -> None:
    other = await make_user(session, "bert@b.example")
    await make_organization(session, other, "b")
    other_env = (
        await api.execute('{ organization(slug: "b") { environments { id } } }', as_user=other)
    )["organization"]["environments"][0]["id"]
    body = await set_configuration(
        api, world, {"API_URL": "https://x.example"}, environment_id=other_env
    )
    assert result(body)["__typename"] == "NotFoundError"
    assert await config_rows(engine) == []


async def test_a_role_without_develop_is_forbidden(
    api: GraphQLClient, world: World, session: AsyncSession, engine: AsyncEngine
) -> None:
    for role in (Role.VIEWER, Role.APPROVER):
        user = await member(session, world, f"{role.value.lower()}@example.com", role)
        body = await set_configuration(api, world, {"API_URL": "https://x.example"}, as_user=user)
        assert result(body)["__typename"] == "ForbiddenError", role
    assert await config_rows(engine) == []


async def test_a_developer_sets_configuration(
    api: GraphQLClient, world: World, session: AsyncSession
) -> None:
    dev = await member(session, world, "dev@example.com", Role.DEVELOPER)
    body = await set_configuration(api, world, {"API_URL": "https://x.example"}, as_user=dev)
    assert values(result(body)) == {"API_URL": "https://x.example"}


async def test_another_organizations_user_gets_not_found(
    api: GraphQLClient, world: World, session: AsyncSession, engine: AsyncEngine
) -> None:
    outsider = await make_user(session, "eve@example.com")
    await make_organization(session, outsider, "evil")
    body = await set_configuration(api, world, {"API_URL": "https://x.example"}, as_user=outsider)
    assert result(body)["__typename"] == "NotFoundError"
    assert await config_rows(engine) == []


# ---- the schema an integration declares ----------------------------------------------------


BAD_SCHEMAS: list[tuple[list[dict[str, Any]], str]] = [
    ([{"key": "PORT"}, {"key": "PORT", "type": "INT"}], "configSchema[1].key"),
    ([{"key": "1PORT"}], "configSchema[0].key"),
    ([{"key": "API-URL"}], "configSchema[0].key"),
    ([{"key": "HAS SPACE"}], "configSchema[0].key"),
    ([{"key": ""}], "configSchema[0].key"),
    ([{"key": "conf/../etc/passwd", "type": "FILE"}], "configSchema[0].key"),
    ([{"key": "TOKEN", "secret": True, "defaultValue": "abc"}], "configSchema[0].defaultValue"),
    (
        [{"key": "PORT", "type": "INT", "defaultValue": "eighty"}],
        "configSchema[0].defaultValue",
    ),
    ([{"key": "RATE", "type": "FLOAT", "defaultValue": "x"}], "configSchema[0].defaultValue"),
    ([{"key": "ON", "type": "BOOLEAN", "defaultValue": "yes"}], "configSchema[0].defaultValue"),
]


async def test_create_integration_refuses_a_bad_schema(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    for schema, field in BAD_SCHEMAS:
        data = await api.execute(
            CREATE_INTEGRATION,
            {"input": {"projectId": world.project_id, "name": "Second", "configSchema": schema}},
            as_user=world.admin,
        )
        refused = data["createIntegration"]
        assert refused["__typename"] == "ValidationError", schema
        assert refused["field"] == field, schema
    async with engine.connect() as connection:
        table = SQLModel.metadata.tables["integrations"]
        names = (await connection.execute(sa.select(table.c.name))).scalars().all()
    assert names == ["Invoices"]


async def test_create_integration_normalizes_defaults(api: GraphQLClient, world: World) -> None:
    data = await api.execute(
        CREATE_INTEGRATION,
        {
            "input": {
                "projectId": world.project_id,
                "name": "Second",
                "configSchema": [
                    {"key": "ON", "type": "BOOLEAN", "defaultValue": "TRUE"},
                    {"key": "PORT", "type": "INT", "defaultValue": " 80 "},
                    {"key": "conf/app.yaml", "type": "FILE", "required": False},
                ],
            }
        },
        as_user=world.admin,
    )
    assert data["createIntegration"]["configSchema"] == [
        {"key": "ON", "type": "BOOLEAN", "required": True, "secret": False, "defaultValue": "true"},
        {"key": "PORT", "type": "INT", "required": True, "secret": False, "defaultValue": "80"},
        {
            "key": "conf/app.yaml",
            "type": "FILE",
            "required": False,
            "secret": False,
            "defaultValue": None,
        },
    ]
