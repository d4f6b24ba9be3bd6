"""Shared GraphQL documents and small helpers for the API tests of the domain.

Every mutation document selects ``__typename`` and the error fields, so a test can assert the
contract's error type of a refusal. ``snapshot`` reads everything the mutations of this issue
can change, so a test can assert that a refusal changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, DeploymentStatus, Role, User
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_user

ERROR_FIELDS = """
    __typename
    ... on Error { code message }
    ... on ValidationError { field }
    ... on NotFoundError { missingId: id }
"""

ERROR_TYPES = ("ValidationError", "NotFoundError", "ForbiddenError", "ConflictError")


def mutation(signature: str, call: str, selection: str) -> str:
    """A one-field mutation document whose result selects the errors and ``selection``."""
    return f"mutation({signature}) {{ {call} {{ {ERROR_FIELDS} {selection} }} }}"


ENVIRONMENT_FIELDS = """
    ... on Environment {
        id name description dnsPrefix critical position dataPlane { id name }
    }
"""
PIPELINE_FIELDS = """
    ... on DeploymentPipeline { id name isDefault environments { id name } }
"""
PROJECT_FIELDS = """
    ... on Project { id name slug pipeline { id name } }
"""

CREATE_ORGANIZATION = mutation(
    "$slug: String!, $name: String!",
    "createOrganization(slug: $slug, name: $name)",
    "... on Organization { id slug name }",
)
ADD_MEMBER = mutation(
    "$input: AddMemberInput!", "addMember(input: $input)", "... on Membership { role }"
)
CREATE_DATA_PLANE = mutation(
    "$input: CreateDataPlaneInput!",
    "createDataPlane(input: $input)",
    "... on DataPlane { id name runtime }",
)
CREATE_ENVIRONMENT = mutation(
    "$input: CreateEnvironmentInput!", "createEnvironment(input: $input)", ENVIRONMENT_FIELDS
)
UPDATE_ENVIRONMENT = mutation(
    "$input: UpdateEnvironmentInput!", "updateEnvironment(input: $input)", ENVIRONMENT_FIELDS
)
DELETE_ENVIRONMENT = mutation(
    "$id: ID!, $confirmName: String!",
    "deleteEnvironment(id: $id, confirmName: $confirmName)",
    "... on Deleted { id }",
)
REORDER_ENVIRONMENTS = mutation(
    "$organizationId: ID!, $environmentIds: [ID!]!",
    "reorderEnvironments(organizationId: $organizationId, environmentIds: $environmentIds)",
    "... on Organization { environments { id name position } }",
)
CREATE_PIPELINE = mutation(
    "$input: CreatePipelineInput!", "createPipeline(input: $input)", PIPELINE_FIELDS
)
UPDATE_PIPELINE = mutation(
    "$input: UpdatePipelineInput!", "updatePipeline(input: $input)", PIPELINE_FIELDS
)
DELETE_PIPELINE = mutation("$id: ID!", "deletePipeline(id: $id)", "... on Deleted { id }")
SET_PROJECT_PIPELINE = mutation(
    "$projectId: ID!, $pipelineId: ID!",
    "setProjectPipeline(projectId: $projectId, pipelineId: $pipelineId)",
    PROJECT_FIELDS,
)
CREATE_PROJECT = mutation(
    "$input: CreateProjectInput!", "createProject(input: $input)", PROJECT_FIELDS
)
CREATE_INTEGRATION = mutation(
    "$input: CreateIntegrationInput!",
    "createIntegration(input: $input)",
    "... on Integration { id name slug }",
)
CREATE_BUILD = mutation(
    "$input: CreateBuildInput!",
    "createBuild(input: $input)",
    "... on Build { id version artifact commit }",
)
SET_CONFIGURATION = mutation(
    "$input: SetConfigurationInput!",
    "setConfiguration(input: $input)",
    "... on Deployment { id configuration { key value } }",
)

ORGANIZATION_IDS = """
query($slug: String!) {
    organization(slug: $slug) {
        id
        environments { id name }
        dataPlanes { id name }
        pipelines { id name isDefault }
    }
}
"""

SNAPSHOT = """
query($slug: String!) {
    organization(slug: $slug) {
        id slug name
        members { role user { email } }
        environments {
            id name description dnsPrefix critical position dataPlane { name }
        }
        dataPlanes { id name runtime environments { name } }
        pipelines { id name isDefault environments { name } projects { slug } }
        projects(first: 100) {
            totalCount
            edges { node {
                id name slug pipeline { name }
                integrations(first: 100) {
                    totalCount
                    edges { node {
                        id name slug
                        builds(first: 100) { totalCount edges { node { version artifact } } }
                        deployments {
                            environment { name } status revision
                            configuration { key value }
                        }
                    } }
                }
            } }
        }
    }
}
"""

DEPLOYMENTS = """
query($id: ID!) {
    integration(id: $id) {
        deployments {
            status revision endpointUrl build { id }
            environment { id name }
            configuration { key value }
        }
    }
}
"""


@dataclass
class Org:
    """An organization made through createOrganization, with the ids tests need."""

    id: str
    slug: str
    admin: User
    environments: dict[str, str]  # name -> id, as created
    pipelines: dict[str, str]  # name -> id
    data_planes: dict[str, str]  # name -> id

    @property
    def default_pipeline(self) -> str:
        return self.pipelines["Default"]

    def env(self, *names: str) -> list[str]:
        return [self.environments[name] for name in names]


async def call(
    api: GraphQLClient, query: str, variables: dict[str, Any] | None = None, *, as_user: User
) -> dict[str, Any]:
    """The value of the document's one top-level field; fails on GraphQL errors."""
    data = await api.execute(query, variables, as_user=as_user)
    assert len(data) == 1, data
    value: dict[str, Any] = next(iter(data.values()))
    return value


async def ok(
    api: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    *,
    as_user: User,
    typename: str,
) -> dict[str, Any]:
    """Run a mutation that must succeed, with a result of ``typename``."""
    result = await call(api, query, variables, as_user=as_user)
    assert result["__typename"] == typename, result
    return result


async def refused(
    api: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    *,
    as_user: User,
    error: str,
    mentions: str | None = None,
) -> dict[str, Any]:
    """Run a mutation that must be refused with the contract's error type ``error``, and a
    message that names what is in the way (``mentions``), so the user knows what to change."""
    assert error in ERROR_TYPES
    result = await call(api, query, variables, as_user=as_user)
    assert result["__typename"] == error, result
    assert result["message"], result
    if mentions is not None:
        assert mentions in result["message"], result
    return result


async def snapshot(api: GraphQLClient, org: Org) -> dict[str, Any]:
    """Everything of the organization the mutations under test can change, read as its admin."""
    data = await api.execute(SNAPSHOT, {"slug": org.slug}, as_user=org.admin)
    state: dict[str, Any] = data["organization"]
    assert state is not None
    return state


async def create_org(api: GraphQLClient, session: AsyncSession, slug: str) -> Org:
    """A new user creates the organization ``slug`` through the API and is its admin."""
    admin = await make_user(session, f"admin@{slug}.example.com")
    await ok(
        api,
        CREATE_ORGANIZATION,
        {"slug": slug, "name": slug.title()},
        as_user=admin,
        typename="Organization",
    )
    return await load_org(api, admin, slug)


async def load_org(api: GraphQLClient, admin: User, slug: str) -> Org:
    data = await api.execute(ORGANIZATION_IDS, {"slug": slug}, as_user=admin)
    org = data["organization"]
    return Org(
        id=org["id"],
        slug=slug,
        admin=admin,
        environments={e["name"]: e["id"] for e in org["environments"]},
        pipelines={p["name"]: p["id"] for p in org["pipelines"]},
        data_planes={d["name"]: d["id"] for d in org["dataPlanes"]},
    )


async def add_member(api: GraphQLClient, session: AsyncSession, org: Org, role: Role) -> User:
    """A new user, added to the organization with ``role`` by its admin through addMember."""
    user = await make_user(session, f"{role.value.lower()}@{org.slug}.example.com")
    result = await ok(
        api,
        ADD_MEMBER,
        {"input": {"organizationId": org.id, "email": user.email, "role": role.value}},
        as_user=org.admin,
        typename="Membership",
    )
    assert result["role"] == role.value
    return user


async def create_environment(
    api: GraphQLClient, org: Org, name: str, dns_prefix: str, **fields: Any
) -> str:
    result = await ok(
        api,
        CREATE_ENVIRONMENT,
        {"input": {"organizationId": org.id, "name": name, "dnsPrefix": dns_prefix, **fields}},
        as_user=org.admin,
        typename="Environment",
    )
    org.environments[name] = result["id"]
    return str(result["id"])


async def create_pipeline(
    api: GraphQLClient, org: Org, name: str, environments: list[str], *, is_default: bool = False
) -> str:
    result = await ok(
        api,
        CREATE_PIPELINE,
        {
            "input": {
                "organizationId": org.id,
                "name": name,
                "environmentIds": org.env(*environments),
                "isDefault": is_default,
            }
        },
        as_user=org.admin,
        typename="DeploymentPipeline",
    )
    assert [e["name"] for e in result["environments"]] == environments
    org.pipelines[name] = result["id"]
    return str(result["id"])


async def create_project(
    api: GraphQLClient,
    org: Org,
    name: str,
    *,
    pipeline_id: str | None = None,
    as_user: User | None = None,
) -> dict[str, Any]:
    return await ok(
        api,
        CREATE_PROJECT,
        {"input": {"organizationId": org.id, "name": name, "pipelineId": pipeline_id}},
        as_user=as_user or org.admin,
        typename="Project",
    )


async def create_integration(
    api: GraphQLClient,
    org: Org,
    project_id: str,
    name: str,
    *,
    config_schema: list[dict[str, Any]] | None = None,
) -> str:
    result = await ok(
        api,
        CREATE_INTEGRATION,
        {"input": {"projectId": project_id, "name": name, "configSchema": config_schema or []}},
        as_user=org.admin,
        typename="Integration",
    )
    return str(result["id"])


async def create_build(
    api: GraphQLClient, org: Org, integration_id: str, version: str
) -> dict[str, Any]:
    return await ok(
        api,
        CREATE_BUILD,
        {
            "input": {
                "integrationId": integration_id,
                "version": version,
                "artifact": f"registry.example.com/app:{version}",
            }
        },
        as_user=org.admin,
        typename="Build",
    )


async def deployments(api: GraphQLClient, org: Org, integration_id: str) -> list[dict[str, Any]]:
    data = await api.execute(DEPLOYMENTS, {"id": integration_id}, as_user=org.admin)
    rows: list[dict[str, Any]] = data["integration"]["deployments"]
    return rows


async def set_deployment_status(
    session: AsyncSession, *, integration_id: str, environment_id: str, status: DeploymentStatus
) -> None:
    """Put a deployment in ``status`` directly in the database.

    There is no deploy mutation yet (deploying comes with the promotion issue), so this is the
    only way to get something running in an environment for the rules that depend on it.
    """
    result = await session.exec(
        update(Deployment)
        .where(
            col(Deployment.integration_id) == integration_id,
            col(Deployment.environment_id) == environment_id,
        )
        .values(status=status)
    )
    assert result.rowcount == 1
    await session.commit()


# ---- a populated organization, for the role checks ----------------------------------------


@dataclass
class World:
    """``acme`` with Staging, a pipeline Development -> Staging -> Production used by a project
    with an integration and a build, an unused pipeline, an environment in no pipeline, one
    member per non-admin role; and ``globex``, whose admin is the outsider."""

    org: Org
    other: Org
    members: dict[Role, User]
    project_id: str
    integration_id: str

    @property
    def outsider(self) -> User:
        return self.other.admin


async def build_world(api: GraphQLClient, session: AsyncSession) -> World:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    members = {
        role: await add_member(api, session, org, role)
        for role in (Role.DEVELOPER, Role.APPROVER, Role.VIEWER)
    }
    await create_environment(api, org, "Staging", "stg", position=1)
    await create_environment(api, org, "Scratch", "scratch")
    full = await create_pipeline(api, org, "Full", ["Development", "Staging", "Production"])
    await create_pipeline(api, org, "Spare", ["Development"])
    project = await create_project(api, org, "Billing", pipeline_id=full)
    integration_id = await create_integration(
        api,
        org,
        project["id"],
        "Invoices",
        config_schema=[{"key": "GREETING", "type": "STRING", "required": False}],
    )
    await create_build(api, org, integration_id, "1.0.0")
    return World(
        org=org,
        other=other,
        members=members,
        project_id=project["id"],
        integration_id=integration_id,
    )


async def check_roles(
    api: GraphQLClient,
    world: World,
    label: str,
    query: str,
    variables: dict[str, Any],
    *,
    admin_only: bool,
    success: str,
) -> None:
    """VIEWER and APPROVER get ForbiddenError, and so does DEVELOPER when ``admin_only``; a user
    of another organization gets NotFoundError, never ForbiddenError; none of them changes
    anything. Then the least role that may do it does it, which proves that the refusals were
    about who asked, not about the input."""
    refused_roles = [Role.VIEWER, Role.APPROVER] + ([Role.DEVELOPER] if admin_only else [])
    before = await snapshot(api, world.org)
    for role in refused_roles:
        result = await call(api, query, variables, as_user=world.members[role])
        assert result["__typename"] == "ForbiddenError", (label, role, result)
    result = await call(api, query, variables, as_user=world.outsider)
    assert result["__typename"] == "NotFoundError", (label, "outsider", result)
    assert await snapshot(api, world.org) == before, label
    allowed = world.org.admin if admin_only else world.members[Role.DEVELOPER]
    result = await call(api, query, variables, as_user=allowed)
    assert result["__typename"] == success, (label, result)
