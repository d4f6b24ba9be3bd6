"""Pipelines, and the pipeline of a project, through the GraphQL API."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DeploymentStatus
from tests.graphql.queries import (
    CREATE_PIPELINE,
    DELETE_PIPELINE,
    SET_CONFIGURATION,
    SET_PROJECT_PIPELINE,
    UPDATE_PIPELINE,
    Org,
    build_world,
    call,
    check_roles,
    create_environment,
    create_integration,
    create_org,
    create_pipeline,
    create_project,
    deployments,
    ok,
    refused,
    set_deployment_status,
    snapshot,
)
from tests.support.graphql_client import GraphQLClient

GREETING_SCHEMA = [{"key": "GREETING", "type": "STRING", "required": True}]


def pipelines_of(state: dict[str, Any]) -> dict[str, tuple[bool, list[str]]]:
    """name -> (isDefault, environment names in promotion order)."""
    return {
        p["name"]: (p["isDefault"], [e["name"] for e in p["environments"]])
        for p in state["pipelines"]
    }


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str | None]]]:
    """(environment, status, configuration) of each deployment, in the order given."""
    return [
        (
            d["environment"]["name"],
            d["status"],
            {c["key"]: c["value"] for c in d["configuration"]},
        )
        for d in rows
    ]


async def set_greeting(
    api: GraphQLClient, org: Org, integration_id: str, environment: str, value: str
) -> None:
    await ok(
        api,
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": integration_id,
                "environmentId": org.environments[environment],
                "entries": [{"key": "GREETING", "value": value}],
            }
        },
        as_user=org.admin,
        typename="Deployment",
    )


# ---- createPipeline -------------------------------------------------------------------------


async def test_create_pipeline(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg")  # last in display order
    result = await ok(
        api,
        CREATE_PIPELINE,
        {
            "input": {
                "organizationId": org.id,
                "name": "Full",
                "environmentIds": org.env("Development", "Staging", "Production"),
            }
        },
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    assert result["name"] == "Full"
    assert result["isDefault"] is False
    assert [e["name"] for e in result["environments"]] == ["Development", "Staging", "Production"]
    await create_pipeline(api, org, "Hotfix", ["Production"])
    assert pipelines_of(await snapshot(api, org)) == {
        "Default": (True, ["Development", "Production"]),
        "Full": (False, ["Development", "Staging", "Production"]),
        "Hotfix": (False, ["Production"]),
    }


async def test_pipeline_environments_are_its_own_each_once_at_least_one(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    dev, prod = org.env("Development", "Production")
    foreign = other.environments["Development"]
    cases = [
        ("foreign", [dev, foreign, prod], "NotFoundError"),
        ("only foreign", [foreign], "NotFoundError"),
        ("unknown", [dev, "env_doesnotexist"], "NotFoundError"),
        ("twice", [dev, prod, dev], "ValidationError"),
        ("twice in a row", [dev, dev], "ValidationError"),
        ("none", [], "ValidationError"),
    ]
    before = await snapshot(api, org)
    other_before = await snapshot(api, other)
    for case, ids, error in cases:
        created = await call(
            api,
            CREATE_PIPELINE,
            {"input": {"organizationId": org.id, "name": "Full", "environmentIds": ids}},
            as_user=org.admin,
        )
        assert created["__typename"] == error, ("create", case, created)
        updated = await call(
            api,
            UPDATE_PIPELINE,
            {"input": {"id": org.default_pipeline, "environmentIds": ids}},
            as_user=org.admin,
        )
        assert updated["__typename"] == error, ("update", case, updated)
    assert await snapshot(api, org) == before
    assert await snapshot(api, other) == other_before


async def test_pipeline_names_are_unique_ignoring_case(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    full = await create_pipeline(api, org, "Full", ["Development", "Production"])
    before = await snapshot(api, org)
    for name in ["Default", "default", " DEFAULT "]:
        await refused(
            api,
            CREATE_PIPELINE,
            {
                "input": {
                    "organizationId": org.id,
                    "name": name,
                    "environmentIds": org.env("Production"),
                }
            },
            as_user=org.admin,
            error="ConflictError",
            mentions="Default",
        )
        await refused(
            api,
            UPDATE_PIPELINE,
            {"input": {"id": full, "name": name}},
            as_user=org.admin,
            error="ConflictError",
            mentions="Default",
        )
    assert await snapshot(api, org) == before
    # Its own name in another case is no clash, and other organizations have their own names.
    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": full, "name": "FULL"}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    await create_pipeline(api, other, "Full", ["Production"])
    assert set(pipelines_of(await snapshot(api, org))) == {"Default", "FULL"}


# ---- the default pipeline -------------------------------------------------------------------


async def test_exactly_one_pipeline_is_the_default(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    full = await create_pipeline(api, org, "Full", ["Development", "Production"], is_default=True)
    state = await snapshot(api, org)
    assert {name: flag for name, (flag, _) in pipelines_of(state).items()} == {
        "Default": False,
        "Full": True,
    }

    before = state
    result = await refused(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": full, "isDefault": False, "name": "Renamed"}},
        as_user=org.admin,
        error="ValidationError",
    )
    assert result["field"] == "isDefault"
    assert await snapshot(api, org) == before
    # Setting isDefault false on a pipeline that is not the default is a no-op.
    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": org.default_pipeline, "isDefault": False}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    assert await snapshot(api, org) == before

    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": org.default_pipeline, "isDefault": True}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    assert {name: flag for name, (flag, _) in pipelines_of(await snapshot(api, org)).items()} == {
        "Default": True,
        "Full": False,
    }


async def test_delete_pipeline(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    used = await create_pipeline(api, org, "Used", ["Development"])
    unused = await create_pipeline(api, org, "Unused", ["Production"])
    project = await create_project(api, org, "Billing", pipeline_id=used)
    before = await snapshot(api, org)
    # Refused, with a message that says why: the default, the projects that use it.
    for pipeline, reason in ((org.default_pipeline, "default"), (used, "Billing")):
        await refused(
            api,
            DELETE_PIPELINE,
            {"id": pipeline},
            as_user=org.admin,
            error="ConflictError",
            mentions=reason,
        )
    assert await snapshot(api, org) == before

    result = await ok(api, DELETE_PIPELINE, {"id": unused}, as_user=org.admin, typename="Deleted")
    assert result["id"] == unused
    assert set(pipelines_of(await snapshot(api, org))) == {"Default", "Used"}
    await refused(api, DELETE_PIPELINE, {"id": unused}, as_user=org.admin, error="NotFoundError")

    # Once no project uses it, it can go; once it is not the default, so can the old default.
    await ok(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": org.default_pipeline},
        as_user=org.admin,
        typename="Project",
    )
    await ok(api, DELETE_PIPELINE, {"id": used}, as_user=org.admin, typename="Deleted")
    hotfix = await create_pipeline(api, org, "Hotfix", ["Production"], is_default=True)
    await ok(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": hotfix},
        as_user=org.admin,
        typename="Project",
    )
    await ok(
        api, DELETE_PIPELINE, {"id": org.default_pipeline}, as_user=org.admin, typename="Deleted"
    )
    assert pipelines_of(await snapshot(api, org)) == {"Hotfix": (True, ["Production"])}


# ---- changing a pipeline's environments -----------------------------------------------------


async def test_adding_an_environment_adds_deployments_to_its_projects(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg")
    short = await create_pipeline(api, org, "Short", ["Development"])
    billing = await create_project(api, org, "Billing")
    invoices = await create_integration(
        api, org, billing["id"], "Invoices", config_schema=GREETING_SCHEMA
    )
    receipts = await create_integration(api, org, billing["id"], "Receipts")
    other = await create_project(api, org, "Other", pipeline_id=short)
    untouched = await create_integration(api, org, other["id"], "Untouched")
    await set_greeting(api, org, invoices, "Development", "hello")

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
    assert summary(await deployments(api, org, invoices)) == [
        ("Development", "NOT_DEPLOYED", {"GREETING": "hello"}),
        ("Staging", "NOT_DEPLOYED", {}),
        ("Production", "NOT_DEPLOYED", {}),
    ]
    assert summary(await deployments(api, org, receipts)) == [
        ("Development", "NOT_DEPLOYED", {}),
        ("Staging", "NOT_DEPLOYED", {}),
        ("Production", "NOT_DEPLOYED", {}),
    ]
    # A project on another pipeline is not affected.
    assert summary(await deployments(api, org, untouched)) == [
        ("Development", "NOT_DEPLOYED", {}),
    ]


async def test_an_environment_cannot_leave_while_something_runs_there(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    project = await create_project(api, org, "Billing")
    integration = await create_integration(api, org, project["id"], "Invoices")
    # No deploy mutation exists yet (it comes with the promotion issue): put the integration
    # in Development straight in the database.
    await set_deployment_status(
        session,
        integration_id=integration,
        environment_id=org.environments["Development"],
        status=DeploymentStatus.ACTIVE,
    )
    before = await snapshot(api, org)
    await refused(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": org.default_pipeline, "environmentIds": org.env("Production")}},
        as_user=org.admin,
        error="ConflictError",
    )
    assert await snapshot(api, org) == before
    # Production, where nothing runs, may leave.
    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": org.default_pipeline, "environmentIds": org.env("Development")}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    assert summary(await deployments(api, org, integration)) == [
        ("Development", "ACTIVE", {}),
    ]


# ---- setProjectPipeline ---------------------------------------------------------------------


async def test_switching_pipeline_keeps_configuration_of_environments_that_stay(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg")
    full = await create_pipeline(api, org, "Full", ["Development", "Staging", "Production"])
    late = await create_pipeline(api, org, "Late", ["Staging", "Production"])
    project = await create_project(api, org, "Billing")
    integration = await create_integration(
        api, org, project["id"], "Invoices", config_schema=GREETING_SCHEMA
    )
    await set_greeting(api, org, integration, "Development", "hello")
    await set_greeting(api, org, integration, "Production", "bonjour")

    result = await ok(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": full},
        as_user=org.admin,
        typename="Project",
    )
    assert result["pipeline"] == {"id": full, "name": "Full"}
    rows = await deployments(api, org, integration)
    assert summary(rows) == [
        ("Development", "NOT_DEPLOYED", {"GREETING": "hello"}),
        ("Staging", "NOT_DEPLOYED", {}),
        ("Production", "NOT_DEPLOYED", {"GREETING": "bonjour"}),
    ]

    await ok(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": late},
        as_user=org.admin,
        typename="Project",
    )
    assert summary(await deployments(api, org, integration)) == [
        ("Staging", "NOT_DEPLOYED", {}),
        ("Production", "NOT_DEPLOYED", {"GREETING": "bonjour"}),
    ]


async def test_switching_pipeline_refused_while_something_runs_where_it_leaves(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg")
    full = await create_pipeline(api, org, "Full", ["Development", "Staging", "Production"])
    wide = await create_pipeline(api, org, "Wide", ["Staging", "Development", "Production"])
    project = await create_project(api, org, "Billing", pipeline_id=full)
    integration = await create_integration(api, org, project["id"], "Invoices")
    # No deploy mutation exists yet: put the integration in Staging straight in the database.
    await set_deployment_status(
        session,
        integration_id=integration,
        environment_id=org.environments["Staging"],
        status=DeploymentStatus.ACTIVE,
    )
    before = await snapshot(api, org)
    await refused(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": org.default_pipeline},
        as_user=org.admin,
        error="ConflictError",
    )
    assert await snapshot(api, org) == before
    # A pipeline that keeps Staging is fine, whatever its order.
    await ok(
        api,
        SET_PROJECT_PIPELINE,
        {"projectId": project["id"], "pipelineId": wide},
        as_user=org.admin,
        typename="Project",
    )
    assert [
        (d["environment"]["name"], d["status"]) for d in await deployments(api, org, integration)
    ] == [
        ("Staging", "ACTIVE"),
        ("Development", "NOT_DEPLOYED"),
        ("Production", "NOT_DEPLOYED"),
    ]


async def test_switching_to_a_pipeline_of_another_organization(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    project = await create_project(api, org, "Billing")
    before = await snapshot(api, org)
    for pipeline in (other.default_pipeline, "pip_doesnotexist"):
        result = await refused(
            api,
            SET_PROJECT_PIPELINE,
            {"projectId": project["id"], "pipelineId": pipeline},
            as_user=org.admin,
            error="NotFoundError",
        )
        assert result["missingId"] == pipeline
    assert await snapshot(api, org) == before


# ---- roles ----------------------------------------------------------------------------------


async def test_only_admins_manage_pipelines_and_developers_choose_them(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await build_world(api, session)
    org = world.org
    spare = org.pipelines["Spare"]
    cases: list[tuple[str, str, dict[str, Any], bool, str]] = [
        (
            "createPipeline",
            CREATE_PIPELINE,
            {
                "input": {
                    "organizationId": org.id,
                    "name": "Hotfix",
                    "environmentIds": org.env("Production"),
                    "isDefault": True,
                }
            },
            True,
            "DeploymentPipeline",
        ),
        (
            "updatePipeline",
            UPDATE_PIPELINE,
            {
                "input": {
                    "id": spare,
                    "name": "Spare 2",
                    "environmentIds": org.env("Development", "Staging"),
                }
            },
            True,
            "DeploymentPipeline",
        ),
        (
            "setProjectPipeline",
            SET_PROJECT_PIPELINE,
            {"projectId": world.project_id, "pipelineId": org.default_pipeline},
            False,
            "Project",
        ),
        ("deletePipeline", DELETE_PIPELINE, {"id": spare}, True, "Deleted"),
    ]
    for label, query, variables, admin_only, success in cases:
        await check_roles(
            api, world, label, query, variables, admin_only=admin_only, success=success
        )
