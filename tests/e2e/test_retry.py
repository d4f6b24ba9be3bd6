"""Retrying a failed promotion through real processes: Production's own configuration makes
the greeter crash, so the promotion FAILS and Production keeps nothing of it. Once the value is
removed, ``retryPromotion`` makes a new promotion of the same build with the same overrides,
linked to the first; the worker that takes it is killed half-way, another finishes it, and
Production runs the build once (one revision) with the overrides."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.documents import ERRORS, PROMOTION_FIELDS, SET_CONFIGURATION
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import entries, greeting, new_greeter
from tests.support.installations import Cluster

DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PRODUCTION = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}
RETRY = f"""mutation($id: ID!) {{ retryPromotion(id: $id) {{ {ERRORS}
    ... on Promotion {{ {PROMOTION_FIELDS} retryOf {{ id status }} }} }} }}"""


async def test_a_failed_promotion_is_retried_once_its_cause_is_fixed(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    worker = workers.start_worker()
    await greeter.deploy(DEVELOPMENT)
    crash = {
        "integrationId": greeter.integration_id,
        "environmentId": greeter.environments["Production"],
        "entries": entries({"GREETER_FAIL": "crash"}),
    }
    await api.ok(SET_CONFIGURATION, {"input": crash})
    first = await greeter.promote("Development", overrides=PRODUCTION)
    failed = await greeter.wait_promotion(first["id"], within=60)
    assert failed["status"] == "FAILED", failed

    # Retried while the cause is still there, it fails the same way: a retry fixes nothing.
    again = (await api.execute(RETRY, {"id": first["id"]}))["retryPromotion"]
    assert again["__typename"] == "Promotion", again
    assert (await greeter.wait_promotion(again["id"], within=60))["status"] == "FAILED"

    fixed = {**crash, "entries": entries({"GREETER_FAIL": None})}
    await api.ok(SET_CONFIGURATION, {"input": fixed})
    worker.kill()
    paused = workers.start_worker(pause_after_step="APPLYING_CONFIGURATION")
    result = await api.execute(RETRY, {"id": first["id"]})
    retry: dict[str, Any] = result["retryPromotion"]
    assert retry["__typename"] == "Promotion", retry
    assert retry["retryOf"] == {"id": first["id"], "status": "FAILED"}
    assert retry["build"]["version"] == "1.0.0"
    assert {o["key"] for o in retry["overrides"]} == {"GREETING", "API_KEY"}
    await asyncio.to_thread(paused.wait_for_log, "pausing after APPLYING_CONFIGURATION")
    paused.kill()
    workers.start_worker()

    done = await greeter.wait_promotion(retry["id"], within=60)
    assert done["status"] == "SUCCEEDED", done
    production = await greeter.wait_revision("Production", 1)
    assert production["history"]["totalCount"] == 1
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == PRODUCTION["GREETING"]

    # A promotion that succeeded is not retried.
    refused = await api.execute(RETRY, {"id": retry["id"]})
    assert refused["retryPromotion"]["__typename"] == "ConflictError", refused
