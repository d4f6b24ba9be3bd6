"""DataLoaders: an organization's dashboard costs the same number of SQL statements whether it
shows 5 integrations or 50, and its pending approvals whether 3 requests wait or 30."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    Environment,
    Project,
    PromotionStatus,
    Review,
    ReviewDecision,
    Role,
    User,
)
from app.services.configuration import ConfigEntry, ConfigKey, set_configuration
from app.services.members import add_member
from app.services.projects import create_build, create_integration, create_project
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_organization, make_user
from tests.support.promotions import promotion_of_new_integration
from tests.support.statements import statements

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


async def acme(session: AsyncSession) -> tuple[User, list[Project], Environment]:
    """Ada, the admin of acme, its two projects and its Development environment."""
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
    return admin, projects, development


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
    admin, projects, development = await acme(session)

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


COUNTED = """
fragment Counted on IntegrationConnection { totalCount }
{
  organization(slug: "acme") {
    projects { totalCount edges { node { name integrations { ...Counted } } } }
  }
}
"""


def counts(sent: list[str]) -> list[str]:
    return [statement for statement in sent if "count(" in statement.lower()]


async def test_total_counts_are_read_only_when_asked_for(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    admin, projects, development = await acme(session)
    await add_integrations(session, box, admin, projects, development.id, range(5))

    _, sent = await dashboard(api, engine, admin)
    assert counts(sent) == [], "\n".join(sent)

    await api.execute("{ viewer { user { id } } }", as_user=admin)
    with statements(engine) as sent:
        data = await api.execute(COUNTED, as_user=admin)
    connection = data["organization"]["projects"]
    assert connection["totalCount"] == 2
    # Asked for through a fragment: counted too, one statement for the projects' lists.
    assert sorted(edge["node"]["integrations"]["totalCount"] for edge in connection["edges"]) == [
        2,
        3,
    ]
    assert len(counts(sent)) == 2, "\n".join(sent)


PENDING = """
{
  organization(slug: "acme") {
    pendingApprovals(first: 100) { totalCount edges { node { id requestedBy { email } } } }
  }
}
"""


async def file_requests(
    session: AsyncSession, box: SecretBox, admin: User, project: Project, names: range
) -> list[str]:
    """A new integration per name, each with a pending request to promote its build to
    Production."""
    filed = [
        await promotion_of_new_integration(
            session,
            box,
            admin=admin,
            project=project,
            name=f"Requested {number}",
            status=PromotionStatus.PENDING_APPROVAL,
            required_approvals=1,
            approval_rule={"roles": ["APPROVER"], "approver_ids": [], "allow_self_approval": False},
        )
        for number in names
    ]
    await session.commit()
    return [promotion.id for promotion in filed]


async def test_pending_approvals_cost_the_same_statements_for_3_and_30_requests(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    approver = await make_user(session, "rita@example.com")
    await add_member(
        session,
        actor=admin,
        organization_id=org.id,
        email=approver.email,
        name=None,
        role=Role.APPROVER,
    )
    project = await create_project(session, actor=admin, organization_id=org.id, name="Billing")
    await session.commit()

    async def pending(viewer: User) -> tuple[set[str], int, list[str]]:
        await api.execute("{ viewer { user { id } } }", as_user=viewer)
        with statements(engine) as sent:
            data = await api.execute(PENDING, as_user=viewer)
        connection = data["organization"]["pendingApprovals"]
        ids = {edge["node"]["id"] for edge in connection["edges"]}
        return ids, connection["totalCount"], sent

    few = await file_requests(session, box, admin, project, range(3))
    # The approver reviewed one already: it no longer waits for them (it does for an ADMIN).
    session.add(
        Review(promotion_id=few[0], reviewer_id=approver.id, decision=ReviewDecision.APPROVED)
    )
    await session.commit()
    admin_few, admin_total, admin_sent_few = await pending(admin)
    theirs_few, theirs_total, theirs_sent_few = await pending(approver)
    assert (admin_few, admin_total) == (set(few), 3)
    assert (theirs_few, theirs_total) == (set(few[1:]), 2)

    many = few + await file_requests(session, box, admin, project, range(3, 30))
    admin_many, _, admin_sent_many = await pending(admin)
    theirs_many, _, theirs_sent_many = await pending(approver)
    assert admin_many == set(many) and theirs_many == set(many[1:])
    assert len(admin_sent_many) == len(admin_sent_few), "\n".join(admin_sent_many)
    assert len(theirs_sent_many) == len(theirs_sent_few), "\n".join(theirs_sent_many)
