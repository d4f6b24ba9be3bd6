"""DataLoaders: an organization's dashboard costs the same number of SQL statements whether it
shows 5 integrations or 50."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import Environment, Project, User
from app.services.configuration import ConfigEntry, ConfigKey, set_configuration
from app.services.projects import create_build, create_integration, create_project
from tests.conftest import GraphQLClient, make_organization, make_user

DASHBOARD = """
{
  organization(slug: "acme") {
    environments { name }
    projects {
      edges { node {
        name
        integrations { edges { node {
          name
          builds { edges { node { version } } }
          deployments {
            status
            environment { name }
            build { version }
            configuration { key }
            missingConfiguration
          }
        } } }
      } }
    }
  }
}
"""

SCHEMA = [ConfigKey("GREETING"), ConfigKey("API_KEY", secret=True)]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (connection, cursor, statement, parameters, context, many)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def add_integrations(
    session: AsyncSession,
    box: SecretBox,
    admin: User,
    projects: list[Project],
    development_id: str,
    names: range,
) -> None:
    """Integrations spread over the projects, each with two builds and a value set in its first
    environment."""
    for number in names:
        project = projects[number % len(projects)]
        integration = await create_integration(
            session,
            actor=admin,
            project_id=project.id,
            name=f"Integration {number}",
            config_schema=SCHEMA,
        )
        for version in ("1.0", "1.1"):
            await create_build(
                session,
                actor=admin,
                integration_id=integration.id,
                version=version,
                artifact="python -m greeter",
            )
        await set_configuration(
            session,
            actor=admin,
            box=box,
            integration_id=integration.id,
            environment_id=development_id,
            entries=[ConfigEntry("GREETING", f"Hello {number}")],
        )
    await session.commit()


async def dashboard(
    api: GraphQLClient, engine: AsyncEngine, admin: User
) -> tuple[dict[str, Any], list[str]]:
    # A request first, so that the token's lastUsedAt is fresh and the measured request's
    # authentication does the same (read-only) work each time.
    await api.execute("{ viewer { user { id } } }", as_user=admin)
    with statements(engine) as sent:
        data = await api.execute(DASHBOARD, as_user=admin)
    return data, sent


def shape(data: dict[str, Any]) -> tuple[int, int, int, int]:
    """Integrations, builds, deployments and configuration values on the dashboard."""
    integrations = [
        edge["node"]
        for project in data["organization"]["projects"]["edges"]
        for edge in project["node"]["integrations"]["edges"]
    ]
    deployments = [d for i in integrations for d in i["deployments"]]
    return (
        len(integrations),
        sum(len(i["builds"]["edges"]) for i in integrations),
        len(deployments),
        sum(len(d["configuration"]) for d in deployments),
    )


async def test_the_dashboard_costs_the_same_statements_for_5_and_50_integrations(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    projects = [
        await create_project(session, actor=admin, organization_id=org.id, name=name)
        for name in ("Billing", "Shipping")
    ]
    await session.commit()
    development = (
        await session.exec(
            select(Environment).where(
                Environment.organization_id == org.id, Environment.name == "Development"
            )
        )
    ).one()

    await add_integrations(session, box, admin, projects, development.id, range(5))
    small, few = await dashboard(api, engine, admin)
    assert shape(small) == (5, 10, 10, 5)

    await add_integrations(session, box, admin, projects, development.id, range(5, 50))
    large, many = await dashboard(api, engine, admin)
    assert shape(large) == (50, 100, 100, 50)
    deployment = large["organization"]["projects"]["edges"][0]["node"]["integrations"]["edges"][0][
        "node"
    ]["deployments"]
    assert [d["environment"]["name"] for d in deployment] == ["Development", "Production"]
    assert deployment[0]["missingConfiguration"] == ["API_KEY"]
    assert deployment[1]["missingConfiguration"] == ["GREETING", "API_KEY"]

    assert len(many) == len(few), "\n".join(["5 integrations:", *few, "50 integrations:", *many])
