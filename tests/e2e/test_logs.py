"""A real ``promenade worker``'s log, its stderr a file: JSON lines, each line of a change's work
naming the change's organization, deployment, change and promotion; and no secret value that
the worker applied, anywhere in it."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from sqlmodel import select

from app.db import create_engine, create_session_factory
from app.models import DeploymentChange
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter
from tests.support.installations import Cluster

PAUSED = "pausing after ROUTED"


def json_lines(log: str) -> list[dict[str, Any]]:
    """The log's JSON lines (a server process also prints a few plain lines as it starts)."""
    lines = []
    for line in log.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def change_of(cluster: Cluster, promotion_id: str) -> DeploymentChange:
    engine = create_engine(cluster.env["PROMENADE_DATABASE_URL"])
    try:
        async with create_session_factory(engine)() as session:
            [change] = (
                await session.exec(
                    select(DeploymentChange).where(DeploymentChange.promotion_id == promotion_id)
                )
            ).all()
            return change
    finally:
        await engine.dispose()


async def test_a_workers_lines_of_a_promotion_name_it_and_show_no_secret_value(
    api: GraphQLClient, workers: Cluster
) -> None:
    canary = f"canary-{secrets.token_hex(16)}"
    greeter = await new_greeter(api, workers.gateway_url, live_on="logs")
    assert greeter.live_plane is not None
    deployer = workers.start_worker()
    await greeter.deploy({"GREETING": "Hello from Development", "API_KEY": f"{canary}-dev"})
    # The worker of Live stops for good once the promotion's instance runs and is routed: the
    # one line a change's work writes at a known point (see PROMENADE_PAUSE_AFTER_STEP).
    promoter = workers.start_worker(data_plane=greeter.live_plane, pause_after_step="ROUTED")
    promoted = await greeter.promote(
        "Development", "Live", {"GREETING": "Hello from Live", "API_KEY": canary}
    )
    assert promoted["__typename"] == "Promotion", promoted
    try:
        await asyncio.to_thread(promoter.wait_for_log, PAUSED)
        # The secret went in: the instance runs with it, routed.
        answered = await greeting(greeter.endpoint("live"))
    finally:
        promoter.kill()
    live = await greeter.deployment("Live")
    organization = await api.execute(
        "query($slug: String!) { organization(slug: $slug) { id } }",
        {"slug": greeter.organization},
    )
    change = await change_of(workers, promoted["id"])

    [paused] = [line for line in json_lines(promoter.log()) if PAUSED in line["message"]]
    assert {k: paused.get(k) for k in ("level", "logger")} == {
        "level": "WARNING",
        "logger": "workers.steps.machine",
    }
    assert paused["time"].endswith("Z")
    assert {
        k: paused.get(k) for k in ("organization_id", "deployment_id", "change_id", "promotion_id")
    } == {
        "organization_id": organization["organization"]["id"],
        "deployment_id": live["id"],
        "change_id": change.id,
        "promotion_id": promoted["id"],
    }
    assert (answered["greeting"], answered["has_api_key"]) == ("Hello from Live", True)
    # ...and into no line of either worker.
    for worker in (deployer, promoter):
        log = worker.log()
        assert json_lines(log), log
        assert canary not in log
