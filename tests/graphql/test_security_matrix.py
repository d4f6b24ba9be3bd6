"""Every query, mutation and subscription field that takes an ID, generated from schema.graphql
(so a new field cannot escape it), called with another organization's IDs by each role of the
caller's own organization: the object is not found (null, or NotFoundError, or a NOT_FOUND
error), never forbidden, and the other organization is unchanged.

Each field is called twice per role: with every ID the other organization's, and with one ID
the other organization's and the rest the caller's own (which catches a mutation that checks
one of its IDs and trusts the others).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
    get_named_type,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Role, User
from tests.graphql.governance import (
    CONFIG_SCHEMA,
    World,
    add_member,
    governed_world,
    make_active,
    promote,
    set_policy,
)
from tests.graphql.queries import Org, create_build, create_integration, create_project, snapshot
from tests.support.graphql_client import GraphQLClient

SCHEMA: GraphQLSchema = build_schema((Path(__file__).parents[2] / "schema.graphql").read_text())
ROLES = [Role.ADMIN, Role.DEVELOPER, Role.APPROVER, Role.VIEWER]

# What an argument or input field of type ID names, by its name.
KIND_OF_NAME = {
    "organizationId": "organization",
    "environmentId": "environment",
    "sourceEnvironmentId": "environment",
    "targetEnvironmentId": "environment",
    "environmentA": "environment",  # compare
    "environmentB": "environment",
    "environmentIds": "environment",
    "dataPlaneId": "dataPlane",
    "pipelineId": "pipeline",
    "projectId": "project",
    "integrationId": "integration",
    "buildId": "build",
    "deploymentId": "deployment",
    "userId": "user",
    "approverIds": "user",
    "groupId": "configurationGroup",
    "dependsOn": "integration",
}
# What a bare ``id`` names, by the field that takes it.
KIND_OF_ID = {
    "node": "integration",
    "environment": "environment",
    "project": "project",
    "integration": "integration",
    "deployment": "deployment",
    "promotion": "promotion",
    "revokeApiToken": "apiToken",
    "updateEnvironment": "environment",
    "deleteEnvironment": "environment",
    "updatePipeline": "pipeline",
    "deletePipeline": "pipeline",
    "restartDeployment": "deployment",
    "suspendDeployment": "deployment",
    "resumeDeployment": "deployment",
    "verifyDeployment": "deployment",
    "freezeEnvironment": "environment",
    "unfreezeEnvironment": "environment",
    "approvePromotion": "promotion",
    "rejectPromotion": "promotion",
    "cancelPromotion": "promotion",
    "retryPromotion": "promotion",
    "promotionStatus": "promotion",
    "deleteConfigurationGroup": "configurationGroup",
    "release": "release",
    "releaseStatus": "release",
}
# Values for the other arguments that pass every check a field makes before its IDs are looked
# up, so that what is tested is the lookup.
STRING_VALUES = {"name": "Matrix", "dnsPrefix": "mtx", "slug": "matrix", "email": "m@x.example"}


@dataclass
class Ids:
    """One object of each kind of an organization."""

    by_kind: dict[str, str]
    slug: str


@dataclass
class Matrix:
    api: GraphQLClient
    world: World
    callers: dict[Role, User]
    own: Ids
    foreign: Ids


def id_kinds(field_name: str, field: GraphQLField) -> Iterator[tuple[str, str]]:
    """(path, kind) of every ID the field takes, in its arguments and their input objects."""

    def walk(path: str, name: str, type_: GraphQLInputType) -> Iterator[tuple[str, str]]:
        named = get_named_type(type_)
        if isinstance(named, GraphQLScalarType) and named.name == "ID":
            kind = KIND_OF_ID.get(field_name) if name == "id" else KIND_OF_NAME.get(name)
            if kind is None:
                pytest.fail(f"classify {field_name}({path}) in KIND_OF_NAME or KIND_OF_ID")
            yield path, kind
        elif isinstance(named, GraphQLInputObjectType):
            for inner, inner_field in named.fields.items():
                yield from walk(f"{path}.{inner}", inner, inner_field.type)

    for arg_name, arg in field.args.items():
        yield from walk(arg_name, arg_name, arg.type)


def value_for(name: str, type_: GraphQLInputType, ids: dict[str, str]) -> Any:
    """An argument's value: IDs from ``ids`` (by path), everything else plausible."""
    nullable = not isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList):
        item = value_for(name, inner.of_type, ids)
        return None if item is None and nullable else [item] if item is not None else []
    if isinstance(inner, GraphQLInputObjectType):
        built = {
            field: value_for(f"{name}.{field}", spec.type, ids)
            for field, spec in inner.fields.items()
        }
        return {k: v for k, v in built.items() if v is not None}
    if isinstance(inner, GraphQLEnumType):
        return None if nullable else next(iter(inner.values))
    assert isinstance(inner, GraphQLScalarType)
    if inner.name == "ID":
        return ids.get(name)
    if nullable:
        return None
    leaf = name.rsplit(".", 1)[-1]
    return {
        "String": STRING_VALUES.get(leaf, "matrix"),
        "Int": 1,
        "Float": 1.0,
        "Boolean": False,
        "JSON": {},
    }.get(inner.name, "matrix")


def document(kind: str, field_name: str, field: GraphQLField) -> str:
    variables = ", ".join(f"${n}: {a.type}" for n, a in field.args.items())
    arguments = ", ".join(f"{n}: ${n}" for n in field.args)
    returned = get_named_type(field.type)
    if isinstance(returned, GraphQLUnionType):
        selection = "{ __typename ... on Error { code message } }"
    elif isinstance(returned, GraphQLObjectType) or hasattr(returned, "fields"):
        selection = "{ __typename }"
    else:
        selection = ""
    head = f"{kind}({variables})" if variables else kind
    call = f"{field_name}({arguments})" if arguments else field_name
    return f"{head} {{ {call} {selection} }}"


def calls(field_name: str, field: GraphQLField, own: Ids, foreign: Ids) -> Iterator[dict[str, Any]]:
    """The variables of each call: every ID foreign, then each one foreign alone."""
    paths = list(id_kinds(field_name, field))

    def variables(foreign_paths: set[str]) -> dict[str, Any]:
        ids = {
            path: (foreign if path in foreign_paths else own).by_kind[kind] for path, kind in paths
        }
        return {n: value_for(n, a.type, ids) for n, a in field.args.items()}

    everything = {path for path, _ in paths}
    yield variables(everything)
    if len(paths) > 1:
        for path in everything:
            yield variables({path})


def fields_with_ids(root: GraphQLObjectType | None) -> list[tuple[str, GraphQLField]]:
    assert root is not None
    return [(name, field) for name, field in root.fields.items() if list(id_kinds(name, field))]


async def ids_of(api: GraphQLClient, session: AsyncSession, org: Org, world: World) -> Ids:
    """One object of each kind in the organization: a project with an integration ACTIVE in
    Development, a build, a promotion request pending into Production, the admin's token, a
    configuration group, a release."""
    project = await create_project(api, org, "Matrix")
    integration = await create_integration(
        api, org, project["id"], "Matrix", config_schema=CONFIG_SCHEMA
    )
    build = await create_build(api, org, integration, "1.0.0")
    deployment = await make_active(
        session,
        integration_id=integration,
        environment_id=org.environments["Development"],
        build_id=build["id"],
    )
    # A release of the integration, before Production is protected: its member is queued.
    release = await api.execute(
        """mutation($input: CreateReleaseInput!) {
            createRelease(input: $input) { __typename ... on Release { id } } }""",
        {
            "input": {
                "name": "matrix",
                "sourceEnvironmentId": org.environments["Development"],
                "members": [
                    {"integrationId": integration, "overrides": [{"key": "GREETING", "value": "x"}]}
                ],
            }
        },
        as_user=org.admin,
    )
    assert release["createRelease"]["__typename"] == "Release", release
    await set_policy(api, world, as_user=org.admin, environment_id=org.environments["Production"])
    request = await promote(
        api,
        world,
        as_user=org.admin,
        integration=type(world.invoices)(id=integration, name="Matrix", build_id=build["id"]),
        overrides=[{"key": "GREETING", "value": "x"}],
        sourceEnvironmentId=org.environments["Development"],
    )
    assert request["__typename"] == "Promotion", request
    tokens = await api.execute("{ viewer { apiTokens { id } } }", as_user=org.admin)
    group = await api.execute(
        """mutation($input: CreateConfigurationGroupInput!) {
            createConfigurationGroup(input: $input) { ... on ConfigurationGroup { id } } }""",
        {"input": {"organizationId": org.id, "name": "matrix", "keys": [{"key": "GREETING"}]}},
        as_user=org.admin,
    )
    return Ids(
        by_kind={
            "organization": org.id,
            "environment": org.environments["Development"],
            "dataPlane": org.data_planes["local"],
            "pipeline": org.default_pipeline,
            "project": project["id"],
            "integration": integration,
            "build": build["id"],
            "deployment": deployment,
            "promotion": request["id"],
            "user": org.admin.id,
            "apiToken": tokens["viewer"]["apiTokens"][0]["id"],
            "configurationGroup": group["createConfigurationGroup"]["id"],
            "release": release["createRelease"]["id"],
        },
        slug=org.slug,
    )


@pytest.fixture
async def matrix(api: GraphQLClient, session: AsyncSession) -> Matrix:
    world = await governed_world(api, session)
    callers = {Role.ADMIN: world.admin}
    for role in (Role.DEVELOPER, Role.APPROVER, Role.VIEWER):
        callers[role] = await add_member(api, session, world.org, f"matrix-{role.value}", role)
    own = await ids_of(api, session, world.org, world)
    other_world = World(
        org=world.other,
        other=world.org,
        members={},
        integrations=world.integrations,
        development=world.other.environments["Development"],
        production=world.other.environments["Production"],
    )
    foreign = await ids_of(api, session, world.other, other_world)
    return Matrix(api, world, callers, own, foreign)


def not_found(result: dict[str, Any], field_name: str, body: dict[str, Any]) -> bool:
    """What the contract says another organization's object looks like."""
    errors = body.get("errors") or []
    if errors:
        return all(e.get("extensions", {}).get("code") == "NOT_FOUND" for e in errors)
    value = (body.get("data") or {}).get(field_name)
    if value is None:
        return True
    return isinstance(value, dict) and value.get("__typename") == "NotFoundError"


async def test_another_organizations_ids_are_not_found_by_any_role(matrix: Matrix) -> None:
    api = matrix.api
    before = await snapshot(api, matrix.world.other)
    failures = []
    for root_kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        for field_name, field in fields_with_ids(root):
            query = document(root_kind, field_name, field)
            for variables in calls(field_name, field, matrix.own, matrix.foreign):
                for role, caller in matrix.callers.items():
                    body = await api.raw(query, variables, as_user=caller)
                    if body["status_code"] >= 500 or not not_found({}, field_name, body):
                        failures.append(
                            f"{role.value} {field_name}({json.dumps(variables)}): "
                            f"{json.dumps({k: v for k, v in body.items() if k != 'status_code'})}"
                        )
    assert not failures, "\n".join(failures)
    assert await snapshot(api, matrix.world.other) == before


async def test_another_organization_is_not_found_by_slug(matrix: Matrix) -> None:
    for caller in matrix.callers.values():
        data = await matrix.api.execute(
            "query($s: String!) { organization(slug: $s) { id } }",
            {"s": matrix.foreign.slug},
            as_user=caller,
        )
        assert data == {"organization": None}


def test_every_subscription_with_an_id_is_in_the_websocket_matrix() -> None:
    """Subscriptions are called over a websocket (tests/graphql/test_subscription_matrix.py):
    the ones that take IDs are exactly those it covers."""
    from tests.graphql.test_subscription_matrix import COVERED

    assert {name for name, _ in fields_with_ids(SCHEMA.subscription_type)} == COVERED
