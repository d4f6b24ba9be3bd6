"""Soak time through real processes: Staging requires a build to have run healthy in
Development for a few seconds. A promotion right after the deploy is refused NOT_SOAKED, the
plan saying until when; with waitForSoak it is SCHEDULED for that moment, starts by itself,
survives the worker that took it being killed, and SUCCEEDS once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter, revisions
from tests.support.installations import Cluster

DEV_VALUES = {"GREETING": "Hello from Development", "API_KEY": "dev-key"}
STAGING_VALUES = {"GREETING": "Hello from Staging", "API_KEY": "stg-key"}
SOAK_S = 4

REQUIRE_SOAK = """mutation($id: ID!, $soak: Int!) {
    updateEnvironment(input: {id: $id, requiredSoakSeconds: $soak}) {
        __typename ... on Error { code message } ... on Environment { requiredSoakSeconds } } }"""
PLAN = """query($input: PromoteInput!) { promotionPlan(input: $input) { blockers soakedAt } }"""
NOT_BEFORE = "query($id: ID!) { promotion(id: $id) { status notBefore } }"


async def test_a_promotion_waits_for_its_soak_and_starts_by_itself(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url, staging=True)
    required = await api.ok(REQUIRE_SOAK, {"id": greeter.environments["Staging"], "soak": SOAK_S})
    assert required["requiredSoakSeconds"] == SOAK_S
    first = workers.start_worker()
    await greeter.deploy(DEV_VALUES)
    first.stop()

    refused = await greeter.promote("Development", "Staging", STAGING_VALUES)
    assert refused["__typename"] == "PromotionBlockedError", refused
    assert refused["blockers"] == ["NOT_SOAKED"]
    plan = await api.execute(PLAN, greeter.promote_input("Development", "Staging", STAGING_VALUES))
    soaked_at = datetime.fromisoformat(plan["promotionPlan"]["soakedAt"])
    assert 0 < (soaked_at - datetime.now(UTC)).total_seconds() <= SOAK_S

    paused = workers.start_worker(pause_after_step="QUEUED")
    promoted = await greeter.promote("Development", "Staging", STAGING_VALUES, waitForSoak=True)
    assert promoted["status"] == "SCHEDULED", promoted
    shown = (await api.execute(NOT_BEFORE, {"id": promoted["id"]}))["promotion"]
    assert datetime.fromisoformat(shown["notBefore"]) == soaked_at
    await asyncio.sleep(0.5)
    assert (await greeter.deployment("Staging"))["status"] == "NOT_DEPLOYED"

    await asyncio.to_thread(paused.wait_for_log, "pausing after QUEUED", 30)
    assert datetime.now(UTC) >= soaked_at
    paused.kill()
    workers.start_worker()

    ended = await greeter.wait_promotion(promoted["id"], within=90)
    assert ended["status"] == "SUCCEEDED", ended
    staging = await greeter.wait_revision("Staging", 1)
    assert [(r["revision"], r["cause"]) for r in revisions(staging)] == [(1, "PROMOTION")]
    assert (await greeting(greeter.endpoint("stg")))["greeting"] == "Hello from Staging"
