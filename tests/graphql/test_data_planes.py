"""Data planes belong to their organization: a CONTAINER data plane's settings are checked when
it is created, a build for containers names an image, and the commands of a deployment are
routed by its data plane's id (only the installation's own local data plane routes to
``local``), so that two organizations' data planes of one name never share workers."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DataPlane, OutboxMessage
from tests.graphql.queries import (
    CREATE_BUILD,
    CREATE_DATA_PLANE,
    Org,
    create_environment,
    create_integration,
    create_org,
    create_pipeline,
    create_project,
    mutation,
    ok,
    refused,
    snapshot,
)
from tests.support.graphql_client import GraphQLClient

DEPLOY = mutation(
    "$input: DeployInput!",
    "deploy(input: $input)",
    "... on Deployment { id status }",
)


async def container_plane(
    api: GraphQLClient, org: Org, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    return await ok(
        api,
        CREATE_DATA_PLANE,
        {
            "input": {
                "organizationId": org.id,
                "name": "containers",
                "runtime": "CONTAINER",
                "settings": settings or {},
            }
        },
        as_user=org.admin,
        typename="DataPlane",
    )


async def test_a_container_data_plane_takes_its_limits_and_refuses_settings_it_cannot_use(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    for settings, mentions in (
        ({"memoryGb": 1}, "settings.memoryGb"),
        ({"memoryMb": 1}, "settings.memoryMb"),
        ({"cpus": 0}, "settings.cpus"),
        ({"pids": "many"}, "settings.pids"),
        ({"user": "0:0"}, "never run as root"),
        ({"user": "root"}, "numeric uid"),
        ({"user": "9999999999:1"}, "between 1 and 1899999999"),
        ({"user": "1900000001"}, "between 1 and 1899999999"),
        ({"memoryMb": 100_000}, "settings.memoryMb"),
        ({"stopGraceSeconds": 3600}, "settings.stopGraceSeconds"),
        ({"dockerHost": "tcp://10.0.0.5:2375"}, "unix:///path socket"),
        ({"dockerHost": "ssh://admin@engine"}, "unix:///path socket"),
    ):
        result = await refused(
            api,
            CREATE_DATA_PLANE,
            {
                "input": {
                    "organizationId": org.id,
                    "name": "containers",
                    "runtime": "CONTAINER",
                    "settings": settings,
                }
            },
            as_user=org.admin,
            error="ValidationError",
            mentions=mentions,
        )
        assert result["field"] == "settings"
    assert await snapshot(api, org) == before

    plane = await container_plane(
        api,
        org,
        {"memoryMb": 512, "cpus": 0.5, "pids": 64, "user": "20001:20001", "port": 9000},
    )
    assert plane["runtime"] == "CONTAINER"
    async with session.begin():
        row = await session.get(DataPlane, plane["id"])
        assert row is not None
        assert row.installation_local is False
        assert row.settings["memoryMb"] == 512


async def test_a_build_of_a_project_that_runs_containers_names_an_image(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    plane = await container_plane(api, org)
    await create_environment(api, org, "Edge", "edge", dataPlaneId=plane["id"])
    pipeline = await create_pipeline(api, org, "Edge", ["Development", "Edge"])
    project = await create_project(api, org, "Billing", pipeline_id=pipeline)
    integration = await create_integration(api, org, project["id"], "Greeter")

    def build(version: str, artifact: str) -> dict[str, Any]:
        return {"input": {"integrationId": integration, "version": version, "artifact": artifact}}

    for artifact in ("python3 /srv/app.py", "Greeter:1", "greeter:", "a//b", "-v"):
        result = await refused(
            api,
            CREATE_BUILD,
            build("1.0.0", artifact),
            as_user=org.admin,
            error="ValidationError",
            mentions="container image reference",
        )
        assert result["field"] == "artifact"
    for version, artifact in (
        ("1.0.0", "greeter:1.0.0"),
        ("1.0.1", "registry.example.com:5000/team/greeter:1.0.1"),
        ("1.0.2", "greeter@sha256:" + "ab" * 32),
    ):
        created = await ok(
            api, CREATE_BUILD, build(version, artifact), as_user=org.admin, typename="Build"
        )
        assert created["artifact"] == artifact

    # A project on local processes only keeps its command lines.
    local = await create_project(api, org, "Scripts")
    script = await create_integration(api, org, local["id"], "Script")
    await ok(
        api,
        CREATE_BUILD,
        {"input": {"integrationId": script, "version": "1", "artifact": "python3 /srv/app.py"}},
        as_user=org.admin,
        typename="Build",
    )


async def test_commands_are_routed_by_the_data_planes_id_never_its_name(
    api: GraphQLClient, session: AsyncSession
) -> None:
    routes = {}
    for slug in ("acme", "globex"):
        org = await create_org(api, session, slug)
        plane = await container_plane(api, org)
        await create_environment(api, org, "Edge", "edge", dataPlaneId=plane["id"])
        pipeline = await create_pipeline(api, org, "Edge", ["Edge"])
        project = await create_project(api, org, "Billing", pipeline_id=pipeline)
        integration = await create_integration(api, org, project["id"], "Greeter")
        build = await ok(
            api,
            CREATE_BUILD,
            {"input": {"integrationId": integration, "version": "1", "artifact": "greeter:1"}},
            as_user=org.admin,
            typename="Build",
        )
        deployment = await ok(
            api,
            DEPLOY,
            {
                "input": {
                    "integrationId": integration,
                    "buildId": build["id"],
                    "environmentId": org.environments["Edge"],
                }
            },
            as_user=org.admin,
            typename="Deployment",
        )
        routes[slug] = (plane["id"], deployment["id"])

    async with session.begin():
        commands = (
            await session.exec(
                select(OutboxMessage).where(col(OutboxMessage.exchange) == "command")
            )
        ).all()
    routed = {m.body["deployment_id"]: m.routing_key for m in commands}
    # The same data plane name, two data planes, two routing keys: their ids.
    for plane_id, deployment_id in routes.values():
        assert routed[deployment_id] == plane_id
    assert routes["acme"][0] != routes["globex"][0]
