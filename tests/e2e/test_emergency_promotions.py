"""Break-glass through real processes: Production is frozen, an ADMIN promotes into it with
``emergency: {reason}``, and the worker that took the change is killed half-way. Another worker
finishes it, once: Production runs the build (one revision), the freeze still holds for every
other promotion, and the audit log says who went past it and why."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter
from tests.support.installations import Cluster

REASON = "INC-4711: the callback drops orders"
DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PRODUCTION = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}
PAUSED = "pausing after APPLYING_CONFIGURATION"

FREEZE = """mutation($id: ID!, $reason: String!) { freezeEnvironment(id: $id, reason: $reason) {
    __typename ... on Error { code message } ... on Environment { id frozen } } }"""
AUDIT = """query($slug: String!) { organization(slug: $slug) {
    auditLog(first: 50) { edges { node { action subjectId detail } } } } }"""


async def test_an_emergency_promotion_runs_through_a_freeze_once_with_a_worker_killed(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    first = workers.start_worker()
    await greeter.deploy(DEVELOPMENT)
    first.kill()
    frozen = await api.ok(FREEZE, {"id": greeter.environments["Production"], "reason": "audit"})
    assert frozen["frozen"] is True

    refused = await greeter.promote("Development", overrides=PRODUCTION)
    assert refused["__typename"] == "PromotionBlockedError", refused

    paused = workers.start_worker(pause_after_step="APPLYING_CONFIGURATION")
    promotion: dict[str, Any] = await greeter.promote(
        "Development", overrides=PRODUCTION, emergency={"reason": REASON}
    )
    assert promotion["__typename"] == "Promotion", promotion
    assert promotion["status"] == "QUEUED"
    await asyncio.to_thread(paused.wait_for_log, PAUSED)  # the freeze did not hold it back
    paused.kill()
    workers.start_worker()  # takes over once the dead worker's lease expires

    finished = await greeter.wait_promotion(promotion["id"], within=60)
    assert finished["status"] == "SUCCEEDED", finished
    assert finished["events"][0]["detail"].startswith(f"EMERGENCY ({REASON})")
    production = await greeter.wait_revision("Production", 1)
    assert production["history"]["totalCount"] == 1  # applied once
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == PRODUCTION["GREETING"]

    # The freeze still holds for everything else.
    again = await greeter.promote("Development", overrides=PRODUCTION)
    assert again["__typename"] == "PromotionBlockedError", again
    assert "TARGET_FROZEN" in again["blockers"]
    log = await api.execute(AUDIT, {"slug": greeter.organization})
    entries = [e["node"] for e in log["organization"]["auditLog"]["edges"]]
    [emergency] = [e for e in entries if e["action"] == "promotion.emergency"]
    assert emergency["subjectId"] == promotion["id"]
    assert emergency["detail"]["reason"] == REASON
    assert emergency["detail"]["passed"] == ["TARGET_FROZEN"]
