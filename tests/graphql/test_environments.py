"""Organizations, data planes and environments through the GraphQL API, as users rely on them."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DeploymentStatus
from tests.graphql.queries import (
    CREATE_DATA_PLANE,
    CREATE_ENVIRONMENT,
    CREATE_ORGANIZATION,
    DELETE_ENVIRONMENT,
    REORDER_ENVIRONMENTS,
    UPDATE_ENVIRONMENT,
    UPDATE_PIPELINE,
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
from tests.support.organizations import make_user

VIEWER_ORGANIZATIONS = """
{ viewer { memberships { role organization { slug name } } } }
"""

NEW_ORGANIZATION = """
query($slug: String!) {
    organization(slug: $slug) {
        slug name
        environments { name dnsPrefix critical position dataPlane { name runtime } }
        dataPlanes { name runtime }
        pipelines { name isDefault environments { name } }
    }
}
"""

ENVIRONMENT = """
query($id: ID!) { environment(id: $id) { id name position } }
"""


def env_names(state: dict[str, Any]) -> list[str]:
    return [e["name"] for e in state["environments"]]


# ---- createOrganization ---------------------------------------------------------------------


async def test_new_organization_starts_ready_to_promote(
    api: GraphQLClient, session: AsyncSession
) -> None:
    user = await make_user(session, "ada@example.com")
    result = await ok(
        api,
        CREATE_ORGANIZATION,
        {"slug": "acme", "name": "Acme Corp"},
        as_user=user,
        typename="Organization",
    )
    assert (result["slug"], result["name"]) == ("acme", "Acme Corp")

    org = (await api.execute(NEW_ORGANIZATION, {"slug": "acme"}, as_user=user))["organization"]
    local = {"name": "local", "runtime": "LOCAL_PROCESS"}
    assert org["environments"] == [
        {
            "name": "Development",
            "dnsPrefix": "dev",
            "critical": False,
            "position": 0,
            "dataPlane": local,
        },
        {
            "name": "Production",
            "dnsPrefix": "prod",
            "critical": True,
            "position": 1,
            "dataPlane": local,
        },
    ]
    assert org["dataPlanes"] == [local]
    assert org["pipelines"] == [
        {
            "name": "Default",
            "isDefault": True,
            "environments": [{"name": "Development"}, {"name": "Production"}],
        }
    ]
    viewer = await api.execute(VIEWER_ORGANIZATIONS, as_user=user)
    assert viewer["viewer"]["memberships"] == [
        {"role": "ADMIN", "organization": {"slug": "acme", "name": "Acme Corp"}}
    ]


async def test_organization_slug_must_be_a_dns_label(
    api: GraphQLClient, session: AsyncSession
) -> None:
    user = await make_user(session, "ada@example.com")
    for slug in ["-acme", "acme-", "acme corp", "acme_1", "a" * 64, "", "acmé"]:
        result = await refused(
            api,
            CREATE_ORGANIZATION,
            {"slug": slug, "name": "Acme"},
            as_user=user,
            error="ValidationError",
        )
        assert result["field"] == "slug", slug
    viewer = await api.execute(VIEWER_ORGANIZATIONS, as_user=user)
    assert viewer["viewer"]["memberships"] == []


async def test_organization_slug_is_unique(api: GraphQLClient, session: AsyncSession) -> None:
    first = await create_org(api, session, "acme")
    before = await snapshot(api, first)
    second = await make_user(session, "bob@example.com")
    await refused(
        api,
        CREATE_ORGANIZATION,
        {"slug": "acme", "name": "Another Acme"},
        as_user=second,
        error="ConflictError",
        mentions="acme",
    )
    viewer = await api.execute(VIEWER_ORGANIZATIONS, as_user=second)
    assert viewer["viewer"]["memberships"] == []
    assert await snapshot(api, first) == before
    # The longest DNS label is a fine slug: the refusal above was about the clash.
    await ok(
        api,
        CREATE_ORGANIZATION,
        {"slug": "a" * 63, "name": "Another Acme"},
        as_user=second,
        typename="Organization",
    )


# ---- createEnvironment ----------------------------------------------------------------------


async def test_create_environment_at_a_position(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    result = await ok(
        api,
        CREATE_ENVIRONMENT,
        {
            "input": {
                "organizationId": org.id,
                "name": "Staging",
                "dnsPrefix": "stg",
                "description": "pre-production",
                "position": 1,
            }
        },
        as_user=org.admin,
        typename="Environment",
    )
    assert result["name"] == "Staging"
    assert result["dnsPrefix"] == "stg"
    assert result["description"] == "pre-production"
    assert result["critical"] is False
    assert result["position"] == 1
    assert result["dataPlane"]["name"] == "local"
    state = await snapshot(api, org)
    assert [(e["name"], e["position"]) for e in state["environments"]] == [
        ("Development", 0),
        ("Staging", 1),
        ("Production", 2),
    ]
    # Without a position it goes last.
    await create_environment(api, org, "Sandbox", "sandbox")
    state = await snapshot(api, org)
    assert env_names(state) == ["Development", "Staging", "Production", "Sandbox"]
    assert [e["position"] for e in state["environments"]] == [0, 1, 2, 3]


async def test_environment_names_are_unique_ignoring_case(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg")
    before = await snapshot(api, org)
    for name in ["Staging", "staging", "STAGING", "  Staging  ", "development"]:
        await refused(
            api,
            CREATE_ENVIRONMENT,
            {"input": {"organizationId": org.id, "name": name, "dnsPrefix": "other"}},
            as_user=org.admin,
            error="ConflictError",
            mentions=name.strip().title(),  # the name it clashes with
        )
    assert await snapshot(api, org) == before


async def test_same_environment_name_and_prefix_in_another_organization(
    api: GraphQLClient, session: AsyncSession
) -> None:
    acme = await create_org(api, session, "acme")
    globex = await create_org(api, session, "globex")
    await create_environment(api, acme, "Staging", "stg")
    await create_environment(api, globex, "Staging", "stg")
    assert env_names(await snapshot(api, globex)) == ["Development", "Production", "Staging"]


async def test_dns_prefix_must_be_a_dns_label(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    for prefix in ["-dev", "dev-", "Dev", "a" * 64, "dev_1", "", "dev.eu", "dév", " "]:
        result = await refused(
            api,
            CREATE_ENVIRONMENT,
            {"input": {"organizationId": org.id, "name": "Staging", "dnsPrefix": prefix}},
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == "dnsPrefix", prefix
    assert await snapshot(api, org) == before


async def test_dns_prefix_accepts_every_shape_of_dns_label(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    for number, prefix in enumerate(["a", "0", "a" * 63, "eu-west-1", "1st"]):
        await create_environment(api, org, f"Env {number}", prefix)
    state = await snapshot(api, org)
    assert [e["dnsPrefix"] for e in state["environments"]][2:] == [
        "a",
        "0",
        "a" * 63,
        "eu-west-1",
        "1st",
    ]


async def test_dns_prefix_is_unique_per_organization(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    await refused(
        api,
        CREATE_ENVIRONMENT,
        {"input": {"organizationId": org.id, "name": "Dev 2", "dnsPrefix": "dev"}},
        as_user=org.admin,
        error="ConflictError",
        mentions="Development",  # the environment that has the prefix
    )
    assert await snapshot(api, org) == before


async def test_position_out_of_range(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    for position in [-1, 3, 100]:
        result = await refused(
            api,
            CREATE_ENVIRONMENT,
            {
                "input": {
                    "organizationId": org.id,
                    "name": "Staging",
                    "dnsPrefix": "stg",
                    "position": position,
                }
            },
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == "position", position
    assert await snapshot(api, org) == before
    # The ends of the range are fine: last (2) and first (0).
    await create_environment(api, org, "Staging", "stg", position=2)
    await create_environment(api, org, "Sandbox", "sandbox", position=0)
    assert env_names(await snapshot(api, org)) == [
        "Sandbox",
        "Development",
        "Production",
        "Staging",
    ]


async def test_environment_on_a_data_plane(api: GraphQLClient, session: AsyncSession) -> None:
    acme = await create_org(api, session, "acme")
    globex = await create_org(api, session, "globex")
    before = await snapshot(api, acme)
    foreign_plane = globex.data_planes["local"]
    result = await refused(
        api,
        CREATE_ENVIRONMENT,
        {
            "input": {
                "organizationId": acme.id,
                "name": "Staging",
                "dnsPrefix": "stg",
                "dataPlaneId": foreign_plane,
            }
        },
        as_user=acme.admin,
        error="NotFoundError",
    )
    assert result["missingId"] == foreign_plane
    assert await snapshot(api, acme) == before

    plane = await ok(
        api,
        CREATE_DATA_PLANE,
        {"input": {"organizationId": acme.id, "name": "k8s-eu", "runtime": "KUBERNETES"}},
        as_user=acme.admin,
        typename="DataPlane",
    )
    await create_environment(api, acme, "Staging", "stg", dataPlaneId=plane["id"])
    state = await snapshot(api, acme)
    assert state["environments"][-1]["dataPlane"] == {"name": "k8s-eu"}
    assert {p["name"]: [e["name"] for e in p["environments"]] for p in state["dataPlanes"]} == {
        "local": ["Development", "Production"],
        "k8s-eu": ["Staging"],
    }


# ---- createDataPlane ------------------------------------------------------------------------


async def test_data_plane_name_must_be_a_dns_label(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    before = await snapshot(api, org)
    for name in ["K8s", "-edge", "edge-", "k8s_prod", "", "a" * 64, "eu west"]:
        result = await refused(
            api,
            CREATE_DATA_PLANE,
            {"input": {"organizationId": org.id, "name": name, "runtime": "KUBERNETES"}},
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == "name", name
    assert await snapshot(api, org) == before


async def test_data_plane_names_are_unique_per_organization(
    api: GraphQLClient, session: AsyncSession
) -> None:
    acme = await create_org(api, session, "acme")
    globex = await create_org(api, session, "globex")
    variables = {"input": {"organizationId": acme.id, "name": "k8s", "runtime": "KUBERNETES"}}
    await ok(api, CREATE_DATA_PLANE, variables, as_user=acme.admin, typename="DataPlane")
    before = await snapshot(api, acme)
    for name in ("k8s", "local"):
        variables["input"]["name"] = name
        await refused(
            api,
            CREATE_DATA_PLANE,
            variables,
            as_user=acme.admin,
            error="ConflictError",
            mentions=name,
        )
    assert await snapshot(api, acme) == before
    await ok(
        api,
        CREATE_DATA_PLANE,
        {"input": {"organizationId": globex.id, "name": "k8s", "runtime": "KUBERNETES"}},
        as_user=globex.admin,
        typename="DataPlane",
    )
    state = await snapshot(api, globex)
    assert [(p["name"], p["runtime"]) for p in state["dataPlanes"]] == [
        ("local", "LOCAL_PROCESS"),
        ("k8s", "KUBERNETES"),
    ]


# ---- updateEnvironment ----------------------------------------------------------------------


async def test_rename_environment(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg")
    result = await ok(
        api,
        UPDATE_ENVIRONMENT,
        {"input": {"id": staging, "name": "QA", "critical": True}},
        as_user=org.admin,
        typename="Environment",
    )
    assert (result["name"], result["critical"], result["dnsPrefix"]) == ("QA", True, "stg")
    # Changing only the case of its own name is no clash.
    await ok(
        api,
        UPDATE_ENVIRONMENT,
        {"input": {"id": staging, "name": "qa"}},
        as_user=org.admin,
        typename="Environment",
    )
    assert env_names(await snapshot(api, org)) == ["Development", "Production", "qa"]


async def test_rename_clashing_ignoring_case(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg")
    before = await snapshot(api, org)
    for name in ["Production", "production", " PRODUCTION "]:
        await refused(
            api,
            UPDATE_ENVIRONMENT,
            {"input": {"id": staging, "name": name}},
            as_user=org.admin,
            error="ConflictError",
            mentions="Production",
        )
    assert await snapshot(api, org) == before


# ---- reorderEnvironments --------------------------------------------------------------------


async def test_reorder_environments(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    await create_environment(api, org, "Staging", "stg", position=1)
    result = await ok(
        api,
        REORDER_ENVIRONMENTS,
        {
            "organizationId": org.id,
            "environmentIds": org.env("Production", "Staging", "Development"),
        },
        as_user=org.admin,
        typename="Organization",
    )
    expected = [("Production", 0), ("Staging", 1), ("Development", 2)]
    assert [(e["name"], e["position"]) for e in result["environments"]] == expected
    state = await snapshot(api, org)
    assert [(e["name"], e["position"]) for e in state["environments"]] == expected
    # The display order is not the promotion order: the default pipeline is unchanged.
    assert [e["name"] for e in state["pipelines"][0]["environments"]] == [
        "Development",
        "Production",
    ]


async def test_reorder_must_list_every_environment_once(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    await create_environment(api, org, "Staging", "stg", position=1)
    every = org.env("Production", "Staging", "Development")
    cases = [
        ("missing", every[:2], "ValidationError"),
        ("duplicate", [*every, every[0]], "ValidationError"),
        ("repeated instead of one", [every[0], every[0], every[1]], "ValidationError"),
        ("empty", [], "ValidationError"),
        ("foreign", [*every, other.environments["Development"]], "NotFoundError"),
        (
            "foreign instead of one",
            [*every[:2], other.environments["Development"]],
            "NotFoundError",
        ),
        ("unknown", [*every[:2], "env_doesnotexist"], "NotFoundError"),
    ]
    before = await snapshot(api, org)
    for case, ids, error in cases:
        result = await call(
            api,
            REORDER_ENVIRONMENTS,
            {"organizationId": org.id, "environmentIds": ids},
            as_user=org.admin,
        )
        assert result["__typename"] == error, (case, result)
    assert await snapshot(api, org) == before


# ---- deleteEnvironment ----------------------------------------------------------------------


async def test_delete_needs_the_name_confirmed(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg")
    before = await snapshot(api, org)
    for confirm in ["staging", "Stag", "", "Staging ", "Production"]:
        result = await refused(
            api,
            DELETE_ENVIRONMENT,
            {"id": staging, "confirmName": confirm},
            as_user=org.admin,
            error="ValidationError",
        )
        assert result["field"] == "confirmName", confirm
    assert await snapshot(api, org) == before


async def test_delete_refused_while_a_pipeline_includes_it(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg")
    await create_pipeline(api, org, "Full", ["Development", "Staging", "Production"])
    before = await snapshot(api, org)
    for name in ("Development", "Staging"):
        await refused(
            api,
            DELETE_ENVIRONMENT,
            {"id": org.environments[name], "confirmName": name},
            as_user=org.admin,
            error="ConflictError",
            mentions="Full",  # the pipeline that includes it
        )
    assert await snapshot(api, org) == before
    # Out of every pipeline, it can go.
    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": org.pipelines["Full"], "environmentIds": org.env("Development")}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    await ok(
        api,
        DELETE_ENVIRONMENT,
        {"id": staging, "confirmName": "Staging"},
        as_user=org.admin,
        typename="Deleted",
    )


async def test_delete_refused_while_anything_is_deployed_there(
    api: GraphQLClient, session: AsyncSession
) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg", position=1)
    full = await create_pipeline(api, org, "Full", ["Development", "Staging", "Production"])
    project = await create_project(api, org, "Billing", pipeline_id=full)
    integration = await create_integration(api, org, project["id"], "Invoices")
    # Staging leaves the pipeline while nothing runs there; its deployment row stays.
    await ok(
        api,
        UPDATE_PIPELINE,
        {"input": {"id": full, "environmentIds": org.env("Development", "Production")}},
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    for status in [
        DeploymentStatus.ACTIVE,
        DeploymentStatus.IN_PROGRESS,
        DeploymentStatus.SUSPENDED,
        DeploymentStatus.ERROR,
    ]:
        # No deploy mutation exists yet (it comes with the promotion issue): put the
        # integration's Staging deployment in this status straight in the database.
        await set_deployment_status(
            session, integration_id=integration, environment_id=staging, status=status
        )
        before = await snapshot(api, org)
        await refused(
            api,
            DELETE_ENVIRONMENT,
            {"id": staging, "confirmName": "Staging"},
            as_user=org.admin,
            error="ConflictError",
        )
        assert await snapshot(api, org) == before, status
        assert (await api.execute(ENVIRONMENT, {"id": staging}, as_user=org.admin))["environment"]
    # The deployment was the only reason: once nothing runs there, the environment can go.
    await set_deployment_status(
        session,
        integration_id=integration,
        environment_id=staging,
        status=DeploymentStatus.NOT_DEPLOYED,
    )
    await ok(
        api,
        DELETE_ENVIRONMENT,
        {"id": staging, "confirmName": "Staging"},
        as_user=org.admin,
        typename="Deleted",
    )
    assert [d["environment"]["name"] for d in await deployments(api, org, integration)] == [
        "Development",
        "Production",
    ]


async def test_delete_environment(api: GraphQLClient, session: AsyncSession) -> None:
    org = await create_org(api, session, "acme")
    staging = await create_environment(api, org, "Staging", "stg", position=1)
    result = await ok(
        api,
        DELETE_ENVIRONMENT,
        {"id": staging, "confirmName": "Staging"},
        as_user=org.admin,
        typename="Deleted",
    )
    assert result["id"] == staging
    state = await snapshot(api, org)
    assert [(e["name"], e["position"]) for e in state["environments"]] == [
        ("Development", 0),
        ("Production", 1),
    ]
    assert (await api.execute(ENVIRONMENT, {"id": staging}, as_user=org.admin)) == {
        "environment": None
    }
    # The name and the prefix are free again.
    await create_environment(api, org, "Staging", "stg")


# ---- roles ----------------------------------------------------------------------------------


async def test_only_admins_manage_environments_and_data_planes(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await build_world(api, session)
    org = world.org
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "reorderEnvironments",
            REORDER_ENVIRONMENTS,
            {
                "organizationId": org.id,
                "environmentIds": list(reversed(org.environments.values())),
            },
            "Organization",
        ),
        (
            "createDataPlane",
            CREATE_DATA_PLANE,
            {"input": {"organizationId": org.id, "name": "edge", "runtime": "KUBERNETES"}},
            "DataPlane",
        ),
        (
            "createEnvironment",
            CREATE_ENVIRONMENT,
            {"input": {"organizationId": org.id, "name": "QA", "dnsPrefix": "qa"}},
            "Environment",
        ),
        (
            "updateEnvironment",
            UPDATE_ENVIRONMENT,
            {"input": {"id": org.environments["Staging"], "name": "Pre", "critical": True}},
            "Environment",
        ),
        (
            "deleteEnvironment",
            DELETE_ENVIRONMENT,
            {"id": org.environments["Scratch"], "confirmName": "Scratch"},
            "Deleted",
        ),
    ]
    for label, query, variables, success in cases:
        await check_roles(api, world, label, query, variables, admin_only=True, success=success)
