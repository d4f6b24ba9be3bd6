"""compare through the API: what a member reads, what another organization's ids and an
environment outside the pipeline answer, and that no secret value is in the response."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import User
from tests.graphql.governance import (
    CONFIG_SCHEMA,
    SECRET_KEY,
    SET_CONFIGURATION,
    World,
    expect,
    governed_world,
    make_active,
)
from tests.graphql.queries import create_build, create_environment, create_integration
from tests.support.graphql_client import GraphQLClient
from tests.support.statements import statements

COMPARE = """
query($project: ID!, $a: ID!, $b: ID!) {
    compare(projectId: $project, environmentA: $a, environmentB: $b) {
        __typename
        ... on Error { code message }
        ... on ValidationError { field }
        ... on NotFoundError { id }
        ... on EnvironmentComparison {
            project { name }
            environmentA { name }
            environmentB { name }
            driftedIntegrations
            integrations {
                integration { name }
                statusA statusB
                buildA { version } buildB { version }
                sameBuild differs
                configuration { key secret kind valueA valueB }
            }
        }
    }
}
"""
DEVELOPMENT_SECRET = "dev-secret-guess-4711"
PRODUCTION_SECRET = "prod-secret-value-0815"


async def project_of(api: GraphQLClient, world: World) -> str:
    data = await api.execute(
        "query($id: ID!) { integration(id: $id) { project { id } } }",
        {"id": world.invoices.id},
        as_user=world.admin,
    )
    return str(data["integration"]["project"]["id"])


async def configure(
    api: GraphQLClient, world: World, environment: str, entries: dict[str, str]
) -> None:
    result = await api.execute(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": world.invoices.id,
                "environmentId": environment,
                "entries": [{"key": k, "value": v} for k, v in entries.items()],
            }
        },
        as_user=world.developer,
    )
    expect(result["setConfiguration"], "Deployment")


async def compare_raw(
    api: GraphQLClient, project: str, a: str, b: str, *, as_user: User
) -> tuple[str, dict[str, Any]]:
    """The response's body as sent, and its compare result."""
    token = await api.token_for(as_user)
    response = await api.http.post(
        "/graphql",
        json={"query": COMPARE, "variables": {"project": project, "a": a, "b": b}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return response.text, body["data"]["compare"]


async def test_a_member_reads_the_drift_and_no_secret_value(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    project = await project_of(api, world)
    # Invoices: 1.0.0 in Development, 2.0.0 in Production; Payments NOT_DEPLOYED there.
    newer = await create_build(api, world.org, world.invoices.id, "2.0.0")
    await make_active(
        session,
        integration_id=world.invoices.id,
        environment_id=world.production,
        build_id=newer["id"],
    )
    await configure(
        api, world, world.development, {"GREETING": "hello", SECRET_KEY: DEVELOPMENT_SECRET}
    )
    await configure(
        api, world, world.production, {"GREETING": "bonjour", SECRET_KEY: PRODUCTION_SECRET}
    )

    text, result = await compare_raw(
        api, project, world.development, world.production, as_user=world.members["viewer"]
    )
    assert DEVELOPMENT_SECRET not in text and PRODUCTION_SECRET not in text
    assert result["__typename"] == "EnvironmentComparison", result
    assert (result["environmentA"]["name"], result["environmentB"]["name"]) == (
        "Development",
        "Production",
    )
    assert result["driftedIntegrations"] == 2
    invoices, payments = result["integrations"]
    assert invoices == {
        "integration": {"name": "Invoices"},
        "statusA": "ACTIVE",
        "statusB": "ACTIVE",
        "buildA": {"version": "1.0.0"},
        "buildB": {"version": "2.0.0"},
        "sameBuild": False,
        "differs": True,
        "configuration": [
            {
                "key": "GREETING",
                "secret": False,
                "kind": "DIFFERENT",
                "valueA": "hello",
                "valueB": "bonjour",
            },
            {
                "key": SECRET_KEY,
                "secret": True,
                "kind": "SECRET_NOT_COMPARED",
                "valueA": None,
                "valueB": None,
            },
        ],
    }
    assert payments == {
        "integration": {"name": "Payments"},
        "statusA": "ACTIVE",
        "statusB": "NOT_DEPLOYED",
        "buildA": {"version": "1.0.0"},
        "buildB": None,
        "sameBuild": False,
        "differs": True,
        "configuration": [],
    }

    # The developer guesses Production's secret right: the answer does not change.
    await configure(api, world, world.development, {SECRET_KEY: PRODUCTION_SECRET})
    text, guessed = await compare_raw(
        api, project, world.development, world.production, as_user=world.developer
    )
    assert PRODUCTION_SECRET not in text
    assert guessed == result


async def test_another_organizations_ids_are_not_found(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    project = await project_of(api, world)
    foreign = world.other.environments["Production"]
    for a, b in ((foreign, world.production), (world.development, foreign)):
        _, result = await compare_raw(api, project, a, b, as_user=world.admin)
        assert result["__typename"] == "NotFoundError", result
        assert (result["code"], result["id"]) == ("NOT_FOUND", foreign)
    # Their own project and environments, asked by someone of another organization.
    _, result = await compare_raw(
        api, project, world.development, world.production, as_user=world.outsider
    )
    assert (result["__typename"], result["id"]) == ("NotFoundError", project)


async def test_an_environment_outside_the_pipeline_is_a_validation_error_naming_it(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    project = await project_of(api, world)
    sandbox = await create_environment(api, world.org, "Sandbox", "sbx")
    for a, b, field in (
        (sandbox, world.production, "environmentA"),
        (world.development, sandbox, "environmentB"),
    ):
        _, result = await compare_raw(api, project, a, b, as_user=world.developer)
        assert result["__typename"] == "ValidationError", result
        assert result["field"] == field
        assert "Sandbox" in result["message"]


async def test_a_comparison_needs_a_token(api: GraphQLClient, session: AsyncSession) -> None:
    world = await governed_world(api, session)
    body = await api.raw(
        COMPARE,
        {"project": await project_of(api, world), "a": world.development, "b": world.production},
    )
    assert body["status_code"] == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert json.dumps(body).count("Invoices") == 0


async def test_a_comparison_costs_the_same_statements_for_2_and_12_integrations(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    project = await project_of(api, world)

    async def sent() -> tuple[int, list[str]]:
        # A request first, so that the measured one's authentication does the same work.
        await api.execute("{ viewer { user { id } } }", as_user=world.admin)
        with statements(engine) as statements_sent:
            _, result = await compare_raw(
                api, project, world.development, world.production, as_user=world.admin
            )
        return len(result["integrations"]), statements_sent

    few = await sent()
    for number in range(10):
        integration = await create_integration(
            api, world.org, project, f"Extra {number}", config_schema=CONFIG_SCHEMA
        )
        build = await create_build(api, world.org, integration, "1.0.0")
        await make_active(
            session,
            integration_id=integration,
            environment_id=world.production,
            build_id=build["id"],
        )
    many = await sent()
    assert (few[0], many[0]) == (2, 12)
    assert len(many[1]) == len(few[1]), "\n".join(["2:", *few[1], "12:", *many[1]])
