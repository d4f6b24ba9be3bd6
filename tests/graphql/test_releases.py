"""Releases through the API: the plan of the whole set in dependency order, a release into a
protected environment as one request in the reviewers' pendingApprovals, bad input as typed
errors that change nothing, and a cycle of dependencies refused."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.graphql.governance import (
    PENDING_APPROVALS,
    World,
    expect,
    governed_world,
    refused_without_change,
    set_policy,
)
from tests.graphql.queries import call, mutation
from tests.support.graphql_client import GraphQLClient

PLAN = """query($input: CreateReleaseInput!) { releasePlan(input: $input) {
    requiresApproval blockers
    members { integration { name } plan { build { version } targetEnvironment { name } } } } }"""
CREATE = mutation(
    "$input: CreateReleaseInput!",
    "createRelease(input: $input)",
    """... on Release { id name status request { id kind status message release { id }
        configurationChanges { key } } members { position
        integration { name } promotion { id } } }
    ... on ValidationError { field }
    ... on PromotionBlockedError { blockers }""",
)
DEPEND = mutation(
    "$i: ID!, $on: [ID!]!",
    "setIntegrationDependencies(integrationId: $i, dependsOn: $on)",
    "... on Integration { name dependsOn { name } }",
)


def release_input(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "name": "spring",
        "sourceEnvironmentId": world.development,
        "members": [
            {"integrationId": world.invoices.id},
            {"integrationId": world.payments.id},
        ],
        **extra,
    }


async def test_one_plan_and_into_a_protected_environment_one_request(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    # Invoices depends on payments: payments goes first.
    depends = await call(
        api, DEPEND, {"i": world.invoices.id, "on": [world.payments.id]}, as_user=world.developer
    )
    assert expect(depends, "Integration")["dependsOn"] == [{"name": world.payments.name}]
    cycle = await call(
        api, DEPEND, {"i": world.payments.id, "on": [world.invoices.id]}, as_user=world.developer
    )
    assert expect(cycle, "ValidationError", "cycle")["field"] == "dependsOn"

    await set_policy(api, world)
    plan = (await api.execute(PLAN, {"input": release_input(world)}, as_user=world.developer))[
        "releasePlan"
    ]
    assert plan["requiresApproval"] is True and plan["blockers"] == []
    assert [m["integration"]["name"] for m in plan["members"]] == [
        world.payments.name,
        world.invoices.name,
    ]
    assert {m["plan"]["targetEnvironment"]["name"] for m in plan["members"]} == {"Production"}

    made = expect(
        await call(api, CREATE, {"input": release_input(world)}, as_user=world.developer),
        "Release",
    )
    assert made["status"] == "PENDING_APPROVAL"
    assert made["request"]["kind"] == "RELEASE"
    # The reviewers see the whole release: its members' builds, each member's keys by name.
    assert made["request"]["release"] == {"id": made["id"]}
    assert world.payments.name in made["request"]["message"]
    assert world.invoices.name in made["request"]["message"]
    assert [m["promotion"] for m in made["members"]] == [None, None]  # nothing runs yet
    pending = await api.execute(PENDING_APPROVALS, {"slug": world.org.slug}, as_user=world.approver)
    ids = [e["node"]["id"] for e in pending["organization"]["pendingApprovals"]["edges"]]
    assert made["request"]["id"] in ids


async def test_bad_releases_are_typed_errors_that_change_nothing(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)

    def attempt(**extra: Any) -> Any:
        return lambda: call(
            api, CREATE, {"input": release_input(world, **extra)}, as_user=world.developer
        )

    twice = [{"integrationId": world.invoices.id}, {"integrationId": world.invoices.id}]
    await refused_without_change(
        api,
        world,
        [
            ("a blank name", attempt(name="  "), "ValidationError", "name"),
            ("no members", attempt(members=[]), "ValidationError", "members"),
            ("a member twice", attempt(members=twice), "ValidationError", "once"),
            (
                "by a viewer",
                lambda: call(
                    api, CREATE, {"input": release_input(world)}, as_user=world.members["viewer"]
                ),
                "ForbiddenError",
                None,
            ),
            (
                "from Production, the last environment",
                attempt(sourceEnvironmentId=world.production),
                "PromotionBlockedError",
                None,
            ),
        ],
    )
    outsider = await call(api, CREATE, {"input": release_input(world)}, as_user=world.outsider)
    assert outsider["__typename"] == "NotFoundError"
