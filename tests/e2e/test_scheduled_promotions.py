"""A scheduled promotion through real processes: promoted with a notBefore a few seconds
ahead, it is SCHEDULED and nothing runs in the target; when its time comes the API's schedule
sweep starts it by itself, the worker that took it is killed mid-way, another takes over, and
it SUCCEEDS with exactly one new revision, the build answering in the target."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter, revisions
from tests.support.installations import Cluster

DEV_VALUES = {"GREETING": "Hello from Development", "API_KEY": "dev-key"}
STAGING_VALUES = {"GREETING": "Hello from Staging", "API_KEY": "stg-key"}

NOT_BEFORE = "query($id: ID!) { promotion(id: $id) { status notBefore } }"


async def test_a_scheduled_promotion_starts_by_itself_once(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url, staging=True)
    first = workers.start_worker()
    await greeter.deploy(DEV_VALUES)
    first.stop()
    # The worker that will take the promotion's change, and sit on it until it is killed.
    paused = workers.start_worker(pause_after_step="QUEUED")

    when = datetime.now(UTC) + timedelta(seconds=3)
    promoted = await greeter.promote(
        "Development", "Staging", STAGING_VALUES, notBefore=when.isoformat()
    )
    assert promoted["status"] == "SCHEDULED", promoted
    shown = (await api.execute(NOT_BEFORE, {"id": promoted["id"]}))["promotion"]
    assert datetime.fromisoformat(shown["notBefore"]) == when

    # Before its time: nothing runs in Staging.
    await asyncio.sleep(1)
    assert (await greeter.promotion(promoted["id"]))["status"] == "SCHEDULED"
    staging = await greeter.deployment("Staging")
    assert staging["status"] == "NOT_DEPLOYED"
    assert staging["revision"] == 0

    # Its time comes: the sweep queues it, the paused worker takes it; killed there.
    paused.wait_for_log("pausing after QUEUED", timeout_s=30)
    assert datetime.now(UTC) >= when
    paused.kill()
    workers.start_worker()  # takes over once the dead worker's lease expires

    ended = await greeter.wait_promotion(promoted["id"], within=90)
    assert ended["status"] == "SUCCEEDED", ended
    statuses = [event["status"] for event in ended["events"]]
    assert statuses[:2] == ["SCHEDULED", "QUEUED"], statuses
    staging = await greeter.wait_revision("Staging", 1)
    assert [(r["revision"], r["cause"]) for r in revisions(staging)] == [(1, "PROMOTION")]
    answered = await greeting(greeter.endpoint("stg"))
    assert answered["greeting"] == "Hello from Staging"
