"""Superseding through real processes: three builds deployed one after the other while a
worker sits on the first (then is killed). The second, still waiting when the third was
queued, never runs; the first, which the worker had taken, runs on once another worker takes
over; then the third. Each ran once: two revisions, nothing of the second build."""

from __future__ import annotations

from typing import Any

from tests.support.documents import DEPLOY
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import (
    Greeter,
    entries,
    greeter_artifact,
    greeting,
    new_greeter,
    revisions,
)
from tests.support.installations import Cluster

VALUES = {"GREETING": "Hello", "API_KEY": "dev-key"}


async def deploy(greeter: Greeter, version: str) -> dict[str, Any]:
    deployment: dict[str, Any] = await greeter.api.ok(
        DEPLOY,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "buildId": greeter.builds[version],
                "environmentId": greeter.environments["Development"],
                "configuration": entries(VALUES),
            }
        },
    )
    return deployment


async def test_a_newer_build_supersedes_the_waiting_one_and_the_taken_one_runs_on(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    await greeter.create_build("2.0.0", greeter_artifact("build two"))
    await greeter.create_build("3.0.0", greeter_artifact("build three"))

    paused = workers.start_worker(pause_after_step="QUEUED")
    await deploy(greeter, "1.0.0")
    paused.wait_for_log("pausing after QUEUED")  # it took 1.0.0's change, and sits there
    await deploy(greeter, "2.0.0")
    await deploy(greeter, "3.0.0")  # 2.0.0's change waits: superseded now
    paused.kill()

    workers.start_worker()  # takes over once the dead worker's lease expires
    deployment = await greeter.wait_revision("Development", 2, within=60)

    assert [r["build"]["version"] for r in revisions(deployment)] == ["1.0.0", "3.0.0"]
    assert deployment["build"]["version"] == "3.0.0"
    answered = await greeting(greeter.endpoint("dev"))
    assert answered["environment"] == "build three"
