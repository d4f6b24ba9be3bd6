"""Scheduled promotions and deployment windows through the API: notBefore is validated and
shown, a future one is SCHEDULED; only an admin sets an environment's windows, which are
validated and shown; outside them a promotion is SCHEDULED for the next window start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.graphql.governance import governed_world, promote
from tests.graphql.queries import call, mutation
from tests.support.graphql_client import GraphQLClient

SET_WINDOWS = mutation(
    "$input: SetDeploymentWindowsInput!",
    "setDeploymentWindows(input: $input)",
    "... on Environment { id deploymentWindows { days start end timeZone } }",
)
NOT_BEFORE = "query($id: ID!) { promotion(id: $id) { status notBefore } }"


async def test_not_before_is_validated_and_a_future_one_is_scheduled(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    naive = await promote(api, world, notBefore="2030-01-01T12:00:00")
    assert naive["__typename"] == "ValidationError", naive
    assert naive["field"] == "notBefore"
    when = datetime.now(UTC) + timedelta(hours=3)
    scheduled = await promote(api, world, notBefore=when.isoformat())
    assert scheduled["status"] == "SCHEDULED", scheduled
    shown = await call(api, NOT_BEFORE, {"id": scheduled["id"]}, as_user=world.developer)
    assert datetime.fromisoformat(shown["notBefore"]) == when


async def test_only_an_admin_sets_windows_and_outside_them_a_promotion_waits(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    starts = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    ends = starts + timedelta(hours=1)
    wanted = {
        "days": [1, 2, 3, 4, 5, 6, 7],
        "start": f"{starts:%H:%M}",
        "end": f"{ends:%H:%M}",
        "timeZone": "UTC",
    }
    variables = {"input": {"environmentId": world.production, "windows": [wanted]}}
    refused = await call(api, SET_WINDOWS, variables, as_user=world.developer)
    assert refused["__typename"] == "ForbiddenError", refused
    bad = {"input": {"environmentId": world.production, "windows": [wanted | {"timeZone": "X"}]}}
    invalid = await call(api, SET_WINDOWS, bad, as_user=world.admin)
    assert (invalid["__typename"], invalid["field"]) == ("ValidationError", "timeZone")

    environment = await call(api, SET_WINDOWS, variables, as_user=world.admin)
    assert environment["deploymentWindows"] == [wanted]
    promoted = await promote(api, world)
    assert promoted["status"] == "SCHEDULED", promoted
    shown = await call(api, NOT_BEFORE, {"id": promoted["id"]}, as_user=world.developer)
    assert datetime.fromisoformat(shown["notBefore"]) == starts

    cleared = {"input": {"environmentId": world.production, "windows": []}}
    assert (await call(api, SET_WINDOWS, cleared, as_user=world.admin))["deploymentWindows"] == []
