"""``Project.deliveryMetrics`` through the GraphQL API: the figures of a short history for a
member, nothing for another organization, a bad window refused naming its argument. What the
figures count is tested at length in tests/services/test_delivery_metrics.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ChangeKind, ChangeStatus, Role
from tests.graphql.queries import World, build_world, create_project
from tests.support.delivery_history import add_build, add_change, deployment_of
from tests.support.graphql_client import GraphQLClient
from tests.support.statements import statements

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SINCE, UNTIL = T0.isoformat(), (T0 + timedelta(days=2)).isoformat()

METRICS = """
query($id: ID!, $env: ID, $since: DateTime, $until: DateTime) {
  project(id: $id) {
    deliveryMetrics(environmentId: $env, since: $since, until: $until) {
      environment { name }
      since until changes deployments deploymentsPerDay failedChanges changeFailureRate
      leadTimeSeconds { median p90 } timeToRestoreSeconds { median p90 } unrestoredFailures
    }
  }
}
"""
ALL_PROJECTS = """
query($slug: String!, $since: DateTime, $until: DateTime) {
  organization(slug: $slug) { projects { edges { node {
    name deliveryMetrics(since: $since, until: $until) { environment { name } deployments }
  } } } }
}
"""


def empty(name: str) -> dict[str, Any]:
    return {
        "environment": {"name": name},
        "since": "2026-11-01T00:00:00+00:00",
        "until": "2026-11-03T00:00:00+00:00",
        "changes": 0,
        "deployments": 0,
        "deploymentsPerDay": 0.0,
        "failedChanges": 0,
        "changeFailureRate": None,
        "leadTimeSeconds": {"median": None, "p90": None},
        "timeToRestoreSeconds": {"median": None, "p90": None},
        "unrestoredFailures": 0,
    }


@pytest.fixture
async def world(api: GraphQLClient, session: AsyncSession) -> World:
    """acme's Billing, and in Production: a build made at T0, deployed at 1 h (lead 3600 s),
    a promotion FAILED at 2 h, a restart SUCCEEDED at 4 h (restored in 7200 s)."""
    world = await build_world(api, session)
    build = add_build(session, integration_id=world.integration_id, version="m1", created_at=T0)
    await session.flush()
    production = await deployment_of(
        session,
        integration_id=world.integration_id,
        environment_id=world.org.environments["Production"],
    )
    for kind, status, hours, revision in (
        (ChangeKind.DEPLOY, ChangeStatus.SUCCEEDED, 1, 1),
        (ChangeKind.PROMOTION, ChangeStatus.FAILED, 2, None),
        (ChangeKind.RESTART, ChangeStatus.SUCCEEDED, 4, 2),
    ):
        await add_change(
            session,
            production,
            kind,
            status,
            build=build,
            finished_at=T0 + timedelta(hours=hours),
            revision=revision,
        )
    await session.commit()
    return world


async def test_a_member_reads_each_environment_of_the_pipeline(
    api: GraphQLClient, world: World
) -> None:
    variables = {"id": world.project_id, "since": SINCE, "until": UNTIL}
    # 3 changes ended, 2 succeeded over 2 days: 1 a day; 1 of 3 failed.
    production = {
        **empty("Production"),
        "changes": 3,
        "deployments": 2,
        "deploymentsPerDay": 1.0,
        "failedChanges": 1,
        "changeFailureRate": pytest.approx(1 / 3),
        "leadTimeSeconds": {"median": pytest.approx(3600), "p90": pytest.approx(3600)},
        "timeToRestoreSeconds": {"median": pytest.approx(7200), "p90": pytest.approx(7200)},
    }
    for member in (world.org.admin, world.members[Role.VIEWER]):
        data = await api.execute(METRICS, variables, as_user=member)
        assert data["project"]["deliveryMetrics"] == [
            empty("Development"),
            empty("Staging"),
            production,
        ]
    only = await api.execute(
        METRICS, {**variables, "env": world.org.environments["Production"]}, as_user=world.org.admin
    )
    assert only["project"]["deliveryMetrics"] == [production]


async def test_the_projects_of_an_organization_are_read_together(
    api: GraphQLClient, world: World, engine: AsyncEngine
) -> None:
    await create_project(api, world.org, "Payroll")
    # The default window (the 30 days until the request's now) is one key for both projects.
    with statements(engine) as sent:
        await api.execute(ALL_PROJECTS, {"slug": world.org.slug}, as_user=world.org.admin)
    assert len([s for s in sent if "ranked_lead" in s]) == 1
    data = await api.execute(
        ALL_PROJECTS,
        {"slug": world.org.slug, "since": SINCE, "until": UNTIL},
        as_user=world.org.admin,
    )
    answers = {
        edge["node"]["name"]: [
            (m["environment"]["name"], m["deployments"]) for m in edge["node"]["deliveryMetrics"]
        ]
        for edge in data["organization"]["projects"]["edges"]
    }
    assert answers == {
        "Billing": [("Development", 0), ("Staging", 0), ("Production", 2)],
        # The default pipeline of a new organization: Development, Production.
        "Payroll": [("Development", 0), ("Production", 0)],
    }


async def test_another_organization_sees_nothing(api: GraphQLClient, world: World) -> None:
    outsider = world.outsider
    data = await api.execute(
        METRICS, {"id": world.project_id, "since": SINCE, "until": UNTIL}, as_user=outsider
    )
    assert data == {"project": None}
    # The outsider's own project, asked about acme's environment: not in its pipeline.
    own = await create_project(api, world.other, "Spy")
    data = await api.execute(
        METRICS,
        {"id": own["id"], "env": world.org.environments["Production"]},
        as_user=outsider,
    )
    assert data == {"project": {"deliveryMetrics": []}}


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        (UNTIL, SINCE, "until"),
        (SINCE, SINCE, "until"),
        ("2025-01-01T00:00:00+00:00", UNTIL, "since"),
    ],
)
async def test_a_bad_window_is_a_validation_error_naming_the_argument(
    api: GraphQLClient, world: World, since: str, until: str, field: str
) -> None:
    body = await api.raw(
        METRICS,
        {"id": world.project_id, "since": since, "until": until},
        as_user=world.org.admin,
    )
    assert body["data"] == {"project": None}, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": field}, error
    assert error["path"] == ["project", "deliveryMetrics"]
    assert field in error["message"]
