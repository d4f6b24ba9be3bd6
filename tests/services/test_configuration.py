"""The configuration service: what a schema may declare, how values parse, and how one
environment's values are set, encrypted and removed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.models import Deployment, Environment, Integration, Membership, Role, User
from app.services.configuration import (
    MAX_SCHEMA_KEYS,
    MAX_VALUE_LENGTH,
    ConfigEntry,
    ConfigKey,
    ConfigType,
    parse_value,
    schema_of,
    set_configuration,
    validate_schema,
)
from app.services.environments import create_environment
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.projects import create_integration, create_project
from tests.conftest import make_organization, make_user

SCHEMA = [
    ConfigKey("WORKERS", ConfigType.INT),
    ConfigKey("API_URL"),
    ConfigKey("PASSWORD", secret=True),
    ConfigKey("RATIO", ConfigType.FLOAT, required=False),
    ConfigKey("DEBUG", ConfigType.BOOLEAN, default_value="false"),
]

# ---- parsing values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "given", "stored"),
    [
        (ConfigType.INT, "42", "42"),
        (ConfigType.INT, " -7 ", "-7"),
        (ConfigType.INT, "007", "7"),
        (ConfigType.FLOAT, "1", "1.0"),
        (ConfigType.FLOAT, " 2.50 ", "2.5"),
        (ConfigType.FLOAT, "1e3", "1000.0"),
        (ConfigType.BOOLEAN, "TRUE", "true"),
        (ConfigType.BOOLEAN, " False ", "false"),
        (ConfigType.STRING, " kept as given ", " kept as given "),
        (ConfigType.STRING, "", ""),
        (ConfigType.FILE, "line 1\nline 2\n", "line 1\nline 2\n"),
    ],
)
def test_values_are_stored_in_their_normal_form(type_: ConfigType, given: str, stored: str) -> None:
    assert parse_value(ConfigKey("K", type_), given, field="f") == stored


@pytest.mark.parametrize(
    ("type_", "given"),
    [
        (ConfigType.INT, "ten"),
        (ConfigType.INT, "1.5"),
        (ConfigType.INT, ""),
        (ConfigType.FLOAT, "fast"),
        (ConfigType.FLOAT, "nan"),
        (ConfigType.FLOAT, "inf"),
        (ConfigType.FLOAT, "-inf"),
        (ConfigType.FLOAT, ""),
        (ConfigType.BOOLEAN, "yes"),
        (ConfigType.BOOLEAN, "1"),
        (ConfigType.BOOLEAN, ""),
    ],
)
def test_a_value_that_does_not_parse_is_invalid(type_: ConfigType, given: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_value(ConfigKey("K", type_), given, field="entries[3].value")
    assert refused.value.field == "entries[3].value"
    assert "K" in refused.value.message


def test_a_value_has_a_size_limit() -> None:
    key = ConfigKey("K")
    assert parse_value(key, "x" * MAX_VALUE_LENGTH, field="f") == "x" * MAX_VALUE_LENGTH
    with pytest.raises(InvalidInput):
        parse_value(key, "x" * (MAX_VALUE_LENGTH + 1), field="f")


# ---- the schema an integration declares ---------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ([ConfigKey("PORT"), ConfigKey("PORT", ConfigType.INT)], "configSchema[1].key"),
        ([ConfigKey("A"), ConfigKey("1PORT")], "configSchema[1].key"),
        ([ConfigKey("API-URL")], "configSchema[0].key"),
        ([ConfigKey("HAS SPACE")], "configSchema[0].key"),
        ([ConfigKey("")], "configSchema[0].key"),
        ([ConfigKey("conf/app.yaml")], "configSchema[0].key"),  # a path, but not a FILE key
        ([ConfigKey("../secrets", ConfigType.FILE)], "configSchema[0].key"),
        ([ConfigKey("conf//app.yaml", ConfigType.FILE)], "configSchema[0].key"),
        ([ConfigKey("TOKEN", secret=True, default_value="abc")], "configSchema[0].defaultValue"),
        ([ConfigKey("PORT", ConfigType.INT, default_value="80.5")], "configSchema[0].defaultValue"),
        ([ConfigKey("R", ConfigType.FLOAT, default_value="nan")], "configSchema[0].defaultValue"),
        ([ConfigKey("ON", ConfigType.BOOLEAN, default_value="on")], "configSchema[0].defaultValue"),
    ],
)
def test_a_bad_schema_is_invalid(keys: list[ConfigKey], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_schema(keys)
    assert refused.value.field == field


def test_a_schema_is_bounded() -> None:
    keys = [ConfigKey(f"K{i}") for i in range(MAX_SCHEMA_KEYS)]
    assert len(validate_schema(keys)) == MAX_SCHEMA_KEYS
    with pytest.raises(InvalidInput):
        validate_schema([*keys, ConfigKey("ONE_MORE")])


def test_a_valid_schema_keeps_its_order_and_normalizes_defaults() -> None:
    keys = validate_schema(
        [
            ConfigKey("ZED", ConfigType.BOOLEAN, default_value="TRUE"),
            ConfigKey("PORT", ConfigType.INT, default_value=" 80 "),
            ConfigKey("conf/app.yaml", ConfigType.FILE, required=False),
            ConfigKey("/etc/app.conf", ConfigType.FILE, description="  trimmed  "),
            ConfigKey("_private"),
        ]
    )
    assert [(k.key, k.default_value) for k in keys] == [
        ("ZED", "true"),
        ("PORT", "80"),
        ("conf/app.yaml", None),
        ("/etc/app.conf", None),
        ("_private", None),
    ]
    assert keys[3].description == "trimmed"


# ---- setting values -----------------------------------------------------------------------


@dataclass
class World:
    admin_id: str
    organization_id: str
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
    return World(admin.id, org.id, integration.id, environments)


async def config_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The config_values table as the database has it (not through the test's session)."""
    async with engine.connect() as connection:
        table = SQLModel.metadata.tables["config_values"]
        deployments = SQLModel.metadata.tables["deployments"]
        environments = SQLModel.metadata.tables["environments"]
        rows = await connection.execute(
            sa.select(table, environments.c.name.label("environment"))
            .join(deployments, deployments.c.id == table.c.deployment_id)
            .join(environments, environments.c.id == deployments.c.environment_id)
            .order_by(environments.c.name, table.c.key)
        )
        return [dict(row) for row in rows.mappings().all()]


async def set_values(
    engine: AsyncEngine,
    box: SecretBox,
    world: World,
    values: dict[str, str | None],
    *,
    environment: str = "Development",
    actor_id: str | None = None,
    environment_id: str | None = None,
) -> Deployment:
    """Set values in a unit of work of their own, as a request does: committed when accepted,
    rolled back when refused."""
    async with create_session_factory(engine)() as session:
        actor = await session.get(User, actor_id or world.admin_id)
        assert actor is not None
        try:
            deployment = await set_configuration(
                session,
                actor=actor,
                box=box,
                integration_id=world.integration_id,
                environment_id=environment_id or world.environments[environment],
                entries=[ConfigEntry(key=k, value=v) for k, v in values.items()],
            )
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        return deployment


def plain(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(row["environment"], row["key"]): row["value"] for row in rows}


async def test_values_are_stored_normalized_per_environment(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    await set_values(engine, box, world, {"WORKERS": " 4 ", "DEBUG": "TRUE"})
    await set_values(engine, box, world, {"WORKERS": "8"}, environment="Production")
    assert plain(await config_rows(engine)) == {
        ("Development", "DEBUG"): "true",
        ("Development", "WORKERS"): "4",
        ("Production", "WORKERS"): "8",
    }


async def test_a_secret_is_sealed_with_the_installation_key(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    await set_values(engine, box, world, {"PASSWORD": "hunter2-plaintext", "API_URL": "u"})
    rows = {row["key"]: row for row in await config_rows(engine)}
    sealed = rows["PASSWORD"]
    assert sealed["secret"] is True
    assert "hunter2-plaintext" not in sealed["value"]
    assert box.open(sealed["value"]) == "hunter2-plaintext"
    assert rows["API_URL"]["secret"] is False
    assert rows["API_URL"]["value"] == "u"
    # Another installation's key cannot open it.
    other = SecretBox(Fernet.generate_key().decode())
    with pytest.raises(ValueError, match="cannot be decrypted"):
        other.open(sealed["value"])


async def test_null_removes_a_value(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    await set_values(engine, box, world, {"API_URL": "u", "RATIO": "0.5"})
    await set_values(engine, box, world, {"API_URL": None, "PASSWORD": None})
    assert plain(await config_rows(engine)) == {("Development", "RATIO"): "0.5"}


INVALID_ENTRIES: list[tuple[dict[str, str | None], str]] = [
    ({"API_URL": "u", "NOPE": "1"}, "entries[1].key"),
    ({"api_url": "u"}, "entries[0].key"),  # keys are case-sensitive
    ({"WORKERS": "ten"}, "entries[0].value"),
    ({"API_URL": "u", "RATIO": "fast"}, "entries[1].value"),
    ({"DEBUG": "yes"}, "entries[0].value"),
    ({}, "entries"),
]


async def test_invalid_entries_change_nothing(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    await set_values(engine, box, world, {"API_URL": "before", "WORKERS": "1"})
    before = await config_rows(engine)
    for values, field in INVALID_ENTRIES:
        with pytest.raises(InvalidInput) as refused:
            await set_values(engine, box, world, values)
        assert refused.value.field == field, values
        assert await config_rows(engine) == before


async def test_an_environment_outside_the_pipeline_is_invalid(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    admin = await session.get(User, world.admin_id)
    assert admin is not None
    staging = await create_environment(
        session,
        actor=admin,
        organization_id=world.organization_id,
        name="Staging",
        dns_prefix="stg",
    )
    await session.commit()
    with pytest.raises(InvalidInput) as refused:
        await set_values(engine, box, world, {"API_URL": "u"}, environment_id=staging.id)
    assert refused.value.field == "environmentId"
    assert await config_rows(engine) == []


async def test_another_organizations_environment_is_not_found(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    other = await make_user(session, "bert@b.example")
    org_b = await make_organization(session, other, "b")
    env_b = (
        await session.exec(select(Environment).where(Environment.organization_id == org_b.id))
    ).first()
    assert env_b is not None
    with pytest.raises(NotFound):
        await set_values(engine, box, world, {"API_URL": "u"}, environment_id=env_b.id)
    assert await config_rows(engine) == []


async def test_a_role_without_develop_is_forbidden(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    for role in (Role.VIEWER, Role.APPROVER):
        user = await make_user(session, f"{role.value.lower()}@example.com")
        session.add(Membership(organization_id=world.organization_id, user_id=user.id, role=role))
        await session.commit()
        with pytest.raises(Forbidden):
            await set_values(engine, box, world, {"API_URL": "u"}, actor_id=user.id)
    assert await config_rows(engine) == []


async def test_a_developer_may_set_values(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    dev = await make_user(session, "dev@example.com")
    session.add(
        Membership(organization_id=world.organization_id, user_id=dev.id, role=Role.DEVELOPER)
    )
    await session.commit()
    await set_values(engine, box, world, {"API_URL": "u"}, actor_id=dev.id)
    assert plain(await config_rows(engine)) == {("Development", "API_URL"): "u"}


async def test_another_organizations_user_gets_not_found(
    session: AsyncSession, box: SecretBox, engine: AsyncEngine, world: World
) -> None:
    outsider = await make_user(session, "eve@example.com")
    await make_organization(session, outsider, "evil")
    with pytest.raises(NotFound):
        await set_values(engine, box, world, {"API_URL": "u"}, actor_id=outsider.id)
    assert await config_rows(engine) == []


async def test_the_schema_is_stored_as_declared(session: AsyncSession, world: World) -> None:
    integration = await session.get(Integration, world.integration_id)
    assert integration is not None
    assert list(schema_of(integration)) == [key.key for key in SCHEMA]
    assert schema_of(integration)["DEBUG"].default_value == "false"
