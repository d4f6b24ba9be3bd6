"""Projects, integrations, their deployments and builds through the GraphQL API; and what a
user of another organization can see of them."""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Build, Deployment, Role, User
from tests.graphql.queries import (
    CREATE_BUILD,
    CREATE_INTEGRATION,
    CREATE_PROJECT,
    SET_CONFIGURATION,
    UPDATE_PIPELINE,
    build_world,
    check_roles,
    create_build,
    create_environment,
    create_integration,
    create_org,
    create_pipeline,
    create_project,
    deployments,
    ok,
    refused,
    snapshot,
)
from tests.support.graphql_client import GraphQLClient

BUILDS = """
query($id: ID!, $first: Int, $after: String) {
    integration(id: $id) {
        builds(first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage endCursor }
            edges { cursor node { version artifact commit } }
        }
    }
}
"""


def project_slugs(state: dict[str, Any]) -> list[str]:
    return [edge["node"]["slug"] for edge in state["projects"]["edges"]]


async def builds_page(
    api: GraphQLClient, as_user: User, integration_id: str, first: int, after: str | None = None
) -> dict[str, Any]:
    data = await api.execute(
        BUILDS, {"id": integration_id, "first": first, "after": after}, as_user=as_user
    )
    page: dict[str, Any] = data["integration"]["builds"]
    return page


# ---- projects -------------------------------------------------------------------------------


async def test_project_slug_is_derived_from_the_name_and_unique_in_the_organization(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    first = await create_project(api, org, "Billing Sync!")
    assert (first["name"], first["slug"]) == ("Billing Sync!", "billing-sync")
    second = await create_project(api, org, "Billing Sync!")
    assert (second["name"], second["slug"]) == ("Billing Sync!", "billing-sync-2")
    third = await create_project(api, org, "  billing   SYNC ")
    assert third["slug"] == "billing-sync-3"
    elsewhere = await create_project(api, other, "Billing Sync!")
    assert elsewhere["slug"] == "billing-sync"
    assert project_slugs(await snapshot(api, org)) == [
        "billing-sync",
        "billing-sync-2",
        "billing-sync-3",
    ]


async def test_project_name_is_required(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    for name in ["", "   ", "x" * 101]:
        result = await refused(
            api,
            CREATE_PROJECT,
            {"input": {"organizationId": org.id, "name": name}},
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == "name", name
    assert await snapshot(api, org) == before


async def test_project_pipeline_defaults_to_the_default_pipeline(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    project = await create_project(api, org, "Billing")
    assert project["pipeline"] == {"id": org.default_pipeline, "name": "Default"}
    hotfix = await create_pipeline(api, org, "Hotfix", ["Production"])
    explicit = await create_project(api, org, "Explicit", pipeline_id=hotfix)
    assert explicit["pipeline"]["name"] == "Hotfix"
    await create_pipeline(api, org, "Full", ["Development", "Production"], is_default=True)
    assert (await create_project(api, org, "Later"))["pipeline"]["name"] == "Full"

    before = await snapshot(api, org)
    for pipeline in (other.default_pipeline, "pip_doesnotexist"):
        result = await refused(
            api,
            CREATE_PROJECT,
            {"input": {"organizationId": org.id, "name": "Foreign", "pipelineId": pipeline}},
            as_user=org.admin,
            error="NotFoundError",
        )
        assert result["missingId"] == pipeline
    assert await snapshot(api, org) == before


# ---- integrations and their deployments -----------------------------------------------------


async def test_integration_slug_is_unique_in_its_project(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    billing = await create_project(api, org, "Billing")
    shipping = await create_project(api, org, "Shipping")
    slugs = []
    for project, name in [
        (billing, "Order Feed"),
        (billing, "order feed"),
        (shipping, "Order Feed"),
    ]:
        result = await ok(
            api,
            CREATE_INTEGRATION,
            {"input": {"projectId": project["id"], "name": name}},
            as_user=org.admin,
            typename="Integration",
        )
        slugs.append(result["slug"])
    assert slugs == ["order-feed", "order-feed-2", "order-feed"]


async def test_integration_deployments_follow_the_pipeline(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    # Staging is shown last, but promoted through between Development and Production.
    await create_environment(api, org, "Staging", "stg")
    await ok(
        api,
        UPDATE_PIPELINE,
        {
            "input": {
                "id": org.default_pipeline,
                "environmentIds": org.env("Development", "Staging", "Production"),
            }
        },
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    project = await create_project(api, org, "Billing")
    integration = await create_integration(api, org, project["id"], "Invoices")
    await create_build(api, org, integration, "1.0.0")
    rows = await deployments(api, org, integration)
    assert [
        (d["environment"]["id"], d["status"], d["revision"], d["endpointUrl"], d["build"])
        for d in rows
    ] == [
        (org.environments[name], "NOT_DEPLOYED", 0, None, None)
        for name in ("Development", "Staging", "Production")
    ]
    # One row each in the database too: nothing else is hiding behind the list.
    stored = (
        await session.exec(select(Deployment).where(Deployment.integration_id == integration))
    ).all()
    await session.commit()
    assert sorted(d.environment_id for d in stored) == sorted(
        org.env("Development", "Staging", "Production")
    )


# ---- builds ---------------------------------------------------------------------------------


async def test_build_versions_are_unique_per_integration(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    project = await create_project(api, org, "Billing")
    invoices = await create_integration(api, org, project["id"], "Invoices")
    receipts = await create_integration(api, org, project["id"], "Receipts")
    build = await create_build(api, org, invoices, "1.0.0")
    assert (build["version"], build["artifact"], build["commit"]) == (
        "1.0.0",
        "registry.example.com/app:1.0.0",
        None,
    )
    before = await snapshot(api, org)
    for version in ["1.0.0", " 1.0.0 "]:
        await refused(
            api,
            CREATE_BUILD,
            {"input": {"integrationId": invoices, "version": version, "artifact": "other:1"}},
            as_user=org.admin,
            error="ConflictError",
            mentions="1.0.0",
        )
    assert await snapshot(api, org) == before
    # Another integration has versions of its own.
    await create_build(api, org, receipts, "1.0.0")
    assert (await builds_page(api, org.admin, receipts, 10))["totalCount"] == 1
    assert (await builds_page(api, org.admin, invoices, 10))["totalCount"] == 1


async def test_build_needs_an_artifact_and_a_version(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    project = await create_project(api, org, "Billing")
    integration = await create_integration(api, org, project["id"], "Invoices")
    before = await snapshot(api, org)
    for version, artifact, field in [
        ("1.0.0", "", "artifact"),
        ("1.0.0", "   ", "artifact"),
        ("", "registry.example.com/app:1", "version"),
        ("  ", "registry.example.com/app:1", "version"),
    ]:
        result = await refused(
            api,
            CREATE_BUILD,
            {"input": {"integrationId": integration, "version": version, "artifact": artifact}},
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == field, (version, artifact)
    assert await snapshot(api, org) == before
    stored = (await session.exec(select(Build))).all()
    await session.commit()
    assert stored == []


async def test_builds_are_newest_first_in_pages(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    project = await create_project(api, org, "Billing")
    integration = await create_integration(api, org, project["id"], "Invoices")
    for number in range(1, 6):
        await create_build(api, org, integration, f"1.0.{number}")

    versions: list[list[str]] = []
    after = None
    while True:
        page = await builds_page(api, org.admin, integration, 2, after)
        assert page["totalCount"] == 5
        versions.append([edge["node"]["version"] for edge in page["edges"]])
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert versions == [["1.0.5", "1.0.4"], ["1.0.3", "1.0.2"], ["1.0.1"]]

    everything = await builds_page(api, org.admin, integration, 100)
    assert [edge["node"]["version"] for edge in everything["edges"]] == [
        "1.0.5",
        "1.0.4",
        "1.0.3",
        "1.0.2",
        "1.0.1",
    ]
    assert everything["pageInfo"]["hasNextPage"] is False
    # Exactly one page's worth: no next page.
    assert (await builds_page(api, org.admin, integration, 5))["pageInfo"]["hasNextPage"] is False
    after_last = await builds_page(
        api, org.admin, integration, 2, everything["pageInfo"]["endCursor"]
    )
    assert after_last["edges"] == []
    assert after_last["pageInfo"] == {"hasNextPage": False, "endCursor": None}


async def test_page_size_is_capped(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    project = await create_project(api, org, "Billing")
    integration = await create_integration(api, org, project["id"], "Invoices")
    await create_build(api, org, integration, "1.0.0")
    for first in (101, -1):
        body = await api.raw(
            BUILDS, {"id": integration, "first": first, "after": None}, as_user=org.admin
        )
        messages = [error["message"] for error in body["errors"]]
        assert messages == ["first must be between 0 and 100"], body
    body = await api.raw(
        BUILDS, {"id": integration, "first": 1, "after": "garbage"}, as_user=org.admin
    )
    assert [error["message"] for error in body["errors"]] == [
        "after is not a cursor this API gave out"
    ], body


# ---- roles and other organizations ----------------------------------------------------------


async def test_developers_make_projects_integrations_builds_and_configuration(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await build_world(api, session)
    org = world.org
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "createProject",
            CREATE_PROJECT,
            {"input": {"organizationId": org.id, "name": "Shipping"}},
            "Project",
        ),
        (
            "createIntegration",
            CREATE_INTEGRATION,
            {"input": {"projectId": world.project_id, "name": "Receipts"}},
            "Integration",
        ),
        (
            "createBuild",
            CREATE_BUILD,
            {
                "input": {
                    "integrationId": world.integration_id,
                    "version": "2.0.0",
                    "artifact": "registry.example.com/invoices:2.0.0",
                }
            },
            "Build",
        ),
        (
            "setConfiguration",
            SET_CONFIGURATION,
            {
                "input": {
                    "integrationId": world.integration_id,
                    "environmentId": org.environments["Development"],
                    "entries": [{"key": "GREETING", "value": "hello"}],
                }
            },
            "Deployment",
        ),
    ]
    for label, query, variables, success in cases:
        await check_roles(api, world, label, query, variables, admin_only=False, success=success)


READ_BY_ID = """
query($id: ID!) {
    environment(id: $id) { id }
    project(id: $id) { id }
    integration(id: $id) { id }
    deployment(id: $id) { id }
    node(id: $id) { id }
}
"""

IDS = """
query($slug: String!) {
    organization(slug: $slug) {
        id
        dataPlanes { id }
        environments { id }
        pipelines { id }
        projects { edges { node { id integrations { edges { node {
            id
            deployments { id }
            builds { edges { node { id } } }
        } } } } } }
    }
}
"""


async def test_another_organization_sees_nothing(api: GraphQLClient, session: AsyncSession) -> None:
    world = await build_world(api, session)
    data = (await api.execute(IDS, {"slug": "acme"}, as_user=world.org.admin))["organization"]
    project = data["projects"]["edges"][0]["node"]
    integration = project["integrations"]["edges"][0]["node"]
    ids = {
        "organization": [data["id"]],
        "dataPlane": [p["id"] for p in data["dataPlanes"]],
        "environment": [e["id"] for e in data["environments"]],
        "pipeline": [p["id"] for p in data["pipelines"]],
        "project": [project["id"]],
        "integration": [integration["id"]],
        "deployment": [d["id"] for d in integration["deployments"]],
        "build": [b["node"]["id"] for b in integration["builds"]["edges"]],
    }
    typed_field = {
        "environment": "environment",
        "project": "project",
        "integration": "integration",
        "deployment": "deployment",
    }
    for kind, kind_ids in ids.items():
        assert kind_ids, kind
        for object_id in kind_ids:
            seen = await api.execute(READ_BY_ID, {"id": object_id}, as_user=world.outsider)
            assert seen == dict.fromkeys(
                ["environment", "project", "integration", "deployment", "node"]
            ), (kind, seen)
            # A viewer of acme sees the same object: the ids are real.
            member = await api.execute(
                READ_BY_ID, {"id": object_id}, as_user=world.members[Role.VIEWER]
            )
            assert member["node"] == {"id": object_id}, (kind, member)
            if kind in typed_field:
                assert member[typed_field[kind]] == {"id": object_id}, (kind, member)
    assert (await api.execute(IDS, {"slug": "acme"}, as_user=world.outsider)) == {
        "organization": None
    }
