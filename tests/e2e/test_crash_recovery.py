"""A worker killed with SIGKILL in the middle of a promotion: once a worker runs again, the
promotion ends SUCCEEDED with exactly one new revision, and nothing was applied twice.

Each worker runs with PROMENADE_PAUSE_AFTER_STEP, so that it stops for good right after the step
under test and the kill lands at a known point. A killed worker's lease on the deployment
expires after workers.leases.LEASE_TTL (10 s), which is most of this module's time; so the four
crashes are set up one after the other, the four paused workers are killed together, and new
workers recover all four promotions at once, while each pause point is asserted by a test of its
own. Each crash promotes to an environment on a data plane of its own, served by its paused
worker alone (a worker announces every unfinished change of its data plane again when it
starts; with one shared data plane, the paused workers would take each other's). All of it on
both runtimes: LOCAL_PROCESS (Development -> Live) and CONTAINER (Test -> Live, both on the
CONTAINER data plane, the build an image).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import pytest

from tests.processes import instance_processes
from tests.support.docker import greeter_image
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import Greeter, answer, greeting, new_greeter, revisions
from tests.support.installations import Cluster

PAUSE_POINTS = ["QUEUED", "APPLYING_CONFIGURATION", "STARTED", "ROUTED"]
RUNTIMES = ["LOCAL_PROCESS", "CONTAINER"]
CRASHES = [(runtime, step) for runtime in RUNTIMES for step in PAUSE_POINTS]
# The promotion's status while the worker sits at each pause point.
STATUS_AT_PAUSE = {
    "QUEUED": "APPLYING_CONFIGURATION",
    "APPLYING_CONFIGURATION": "RESTARTING",
    "STARTED": "RESTARTING",
    "ROUTED": "RESTARTING",
}
DEV_VALUES = {"GREETING": "Hello from Development", "API_KEY": "dev-key"}


def data_plane(step: str) -> str:
    return "crash-" + step.lower().replace("_", "-")


def instances(
    cluster: Cluster, docker_engine: docker.DockerClient, runtime: str, target: str
) -> list[str]:
    """What runs for the deployment: process ids, or container ids."""
    if runtime == "LOCAL_PROCESS":
        return [str(pid) for pid in instance_processes(cluster.runtime_dir, target)]
    running = docker_engine.containers.list(filters={"label": f"promenade.deployment={target}"})
    return sorted(str(container.id) for container in running)


def target_values(step: str) -> dict[str, str]:
    return {"GREETING": f"Hello after a crash at {step}", "API_KEY": "prod-key"}


@dataclass
class Crash:
    """A promotion whose worker was killed right after ``step``, and what was seen then."""

    runtime: str
    step: str
    greeter: Greeter
    promotion_id: str
    target_id: str
    # Seen while the worker sat at the pause point, before the kill:
    status_at_pause: str
    instances_at_pause: list[str]
    endpoint_at_pause: tuple[int, Any]  # HTTP status, body


@pytest.fixture(scope="module")
def crashes(
    cluster: Cluster, docker_engine: docker.DockerClient
) -> Iterator[dict[tuple[str, str], Crash]]:
    """For each runtime and pause point: a greeter ACTIVE in the pipeline's first environment,
    its promotion to Live taken by a worker that paused after that step; then every paused
    worker is killed with SIGKILL and a normal worker is started for each data plane."""
    image = greeter_image(docker_engine)

    async def crash(greeter: Greeter, runtime: str, step: str) -> Crash:
        target = await greeter.deployment("Live")
        assert (target["status"], target["revision"]) == ("NOT_DEPLOYED", 0)
        assert greeter.live_plane is not None
        paused = cluster.start_worker(data_plane=greeter.live_plane, pause_after_step=step)
        promoted = await greeter.promote(greeter.first, "Live", target_values(step))
        assert promoted["__typename"] == "Promotion", promoted
        await asyncio.to_thread(paused.wait_for_log, f"pausing after {step}")
        endpoint = await answer(greeter.endpoint("live"))
        return Crash(
            runtime=runtime,
            step=step,
            greeter=greeter,
            promotion_id=promoted["id"],
            target_id=target["id"],
            status_at_pause=(await greeter.promotion(promoted["id"]))["status"],
            instances_at_pause=instances(cluster, docker_engine, runtime, target["id"]),
            endpoint_at_pause=(
                endpoint.status_code,
                endpoint.json() if endpoint.status_code == 200 else endpoint.text,
            ),
        )

    async def setup() -> dict[tuple[str, str], Crash]:
        async with httpx.AsyncClient(
            base_url=cluster.api_url,
            headers={"Authorization": f"Bearer {cluster.token}"},
            timeout=60,
            trust_env=False,
        ) as http:
            api = GraphQLClient(http)
            greeters = [
                await new_greeter(
                    api,
                    cluster.gateway_url,
                    live_on=data_plane(step),
                    image=image if runtime == "CONTAINER" else None,
                )
                for runtime, step in CRASHES
            ]
            # Deployed by a worker that is gone before the paused ones start.
            deployer = cluster.start_worker(
                data_plane=["local", *(str(g.live_plane) for g in greeters)]
            )
            try:
                await asyncio.gather(*(greeter.deploy(DEV_VALUES) for greeter in greeters))
            finally:
                deployer.stop()
                cluster.workers.remove(deployer)
            return {
                (runtime, step): await crash(greeter, runtime, step)
                for (runtime, step), greeter in zip(CRASHES, greeters, strict=True)
            }

    crashes = asyncio.run(setup())
    for worker in cluster.workers:
        worker.kill()
    cluster.workers.clear()
    cluster.start_workers([str(crash.greeter.live_plane) for crash in crashes.values()])
    yield crashes
    cluster.stop_workers()


@pytest.mark.parametrize(("runtime", "step"), CRASHES)
async def test_a_worker_killed_after_a_step_leaves_work_the_next_one_finishes(
    runtime: str,
    step: str,
    crashes: dict[tuple[str, str], Crash],
    cluster: Cluster,
    docker_engine: docker.DockerClient,
    api: GraphQLClient,
) -> None:
    crash = crashes[(runtime, step)]
    greeter = dataclasses.replace(crash.greeter, api=api)
    values = target_values(step)

    # Before the kill, the database showed the step reached and no further.
    assert crash.status_at_pause == STATUS_AT_PAUSE[step]
    if step in ("QUEUED", "APPLYING_CONFIGURATION"):
        assert crash.instances_at_pause == []
    else:
        assert len(crash.instances_at_pause) == 1, crash.instances_at_pause
    if step == "ROUTED":
        status, body = crash.endpoint_at_pause
        assert status == 200
        assert body["greeting"] == values["GREETING"]
    else:
        assert crash.endpoint_at_pause[0] == 404

    # The lease of the killed worker expires after 10 s; then the new worker finishes.
    finished = await greeter.wait_promotion(crash.promotion_id, within=45)
    assert finished["status"] == "SUCCEEDED", finished
    # Each step recorded once: nothing was applied twice.
    assert [e["status"] for e in finished["events"]] == [
        "QUEUED",
        "APPLYING_CONFIGURATION",
        "RESTARTING",
        "SUCCEEDED",
    ]

    target = await greeter.wait_revision("Live", 1)
    assert target["history"]["totalCount"] == 1
    assert [(r["revision"], r["cause"], r["promotion"]) for r in revisions(target)] == [
        (1, "PROMOTION", {"id": crash.promotion_id})
    ]
    assert {c["key"]: c["value"] for c in target["configuration"]} == {
        "GREETING": values["GREETING"],
        "API_KEY": None,
    }
    live = await greeting(greeter.endpoint("live"))
    assert live["greeting"] == values["GREETING"]
    assert live["has_api_key"] is True
    # One instance runs, and an instance started before the kill is the one kept.
    running = instances(cluster, docker_engine, runtime, crash.target_id)
    assert len(running) == 1, running
    if runtime == "LOCAL_PROCESS":
        assert running == [str(live["pid"])]
    if crash.instances_at_pause:
        assert running == crash.instances_at_pause
