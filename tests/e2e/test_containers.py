"""Integrations in containers, end to end: real ``promenade api``, ``gateway`` and ``worker``
processes on PostgreSQL and RabbitMQ, a real Docker Engine, the greeter image. What a user sees
through the API and at the endpoint, on a CONTAINER data plane (Test -> Live)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import docker
import httpx
import pytest

from tests.processes import PromenadeProcess
from tests.support.docker import greeter_image
from tests.support.documents import RESTART, RESUME, ROLLBACK, SET_CONFIGURATION, SUSPEND
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import Greeter, answer, entries, greeting, new_greeter, revisions
from tests.support.installations import Cluster

TEST_VALUES = {"GREETING": "Hello from a container", "REPEAT": "2", "API_KEY": "test-key-71ab"}
LIVE_VALUES = {"GREETING": "Hello from Live", "API_KEY": "live-key-93cd"}
# Small enough that the greeter's memory failure mode meets it at once.
PLANE_SETTINGS = {"memoryMb": 96, "pids": 64}


@pytest.fixture(scope="module")
def image(docker_engine: docker.DockerClient) -> str:
    return greeter_image(docker_engine)


@pytest.fixture
async def greeter(
    api: GraphQLClient, cluster: Cluster, image: str
) -> AsyncIterator[tuple[Greeter, PromenadeProcess]]:
    """The greeter image on a CONTAINER data plane of a new organization, with a worker for
    that data plane, ACTIVE in Test."""
    greeter = await new_greeter(
        api, cluster.gateway_url, image=image, plane_settings=PLANE_SETTINGS
    )
    assert greeter.live_plane is not None
    worker = cluster.start_worker(data_plane=greeter.live_plane)
    try:
        await greeter.deploy(TEST_VALUES)
        yield greeter, worker
    finally:
        worker.stop()
        cluster.workers.remove(worker)


async def configure(
    greeter: Greeter, environment: str, values: Mapping[str, str | None], *, restart: bool = False
) -> None:
    await greeter.api.ok(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "environmentId": greeter.environments[environment],
                "entries": entries(values),
                "restart": restart,
            }
        },
    )


def containers_of(docker_engine: docker.DockerClient, deployment_id: str) -> list[Any]:
    return list(
        docker_engine.containers.list(
            all=True, filters={"label": f"promenade.deployment={deployment_id}"}
        )
    )


async def test_deploy_promote_restart_rollback_suspend_resume_in_containers(
    greeter: tuple[Greeter, PromenadeProcess], docker_engine: docker.DockerClient
) -> None:
    greeter_, _ = greeter
    test = await greeter_.deployment("Test")
    assert test["endpointUrl"] == greeter_.endpoint("test")
    answered = await greeting(greeter_.endpoint("test"))
    assert (answered["greeting"], answered["repeat"], answered["has_api_key"]) == (
        "Hello from a container",
        2,
        True,
    )
    assert answered["secret_files"] == ["API_KEY"]
    (test_container,) = containers_of(docker_engine, test["id"])
    assert test_container.attrs["HostConfig"]["NetworkMode"] == "none"

    # The same image to Live, with Live's own values; Test keeps its own.
    promoted = await greeter_.promote("Test", "Live", LIVE_VALUES)
    assert promoted["__typename"] == "Promotion", promoted
    assert (await greeter_.wait_promotion(promoted["id"]))["status"] == "SUCCEEDED"
    live = await greeter_.wait_revision("Live", 1)
    assert live["build"]["version"] == test["build"]["version"]
    assert (await greeting(greeter_.endpoint("live")))["greeting"] == "Hello from Live"
    assert (await greeting(greeter_.endpoint("test")))["greeting"] == "Hello from a container"

    # A configuration change with a restart: a new container, the old one removed.
    (before,) = containers_of(docker_engine, live["id"])
    await configure(greeter_, "Live", {"GREETING": "Hello again"}, restart=True)
    await greeter_.wait_revision("Live", 2)
    assert (await greeting(greeter_.endpoint("live")))["greeting"] == "Hello again"
    (after,) = containers_of(docker_engine, live["id"])
    assert after.id != before.id

    await greeter_.api.ok(RESTART, {"id": live["id"]})
    restarted = await greeter_.wait_revision("Live", 3)
    assert [r["cause"] for r in revisions(restarted)] == ["PROMOTION", "CONFIG_CHANGE", "RESTART"]

    await greeter_.api.ok(ROLLBACK, {"input": {"deploymentId": live["id"], "revision": 1}})
    await greeter_.wait_revision("Live", 4)
    assert (await greeting(greeter_.endpoint("live")))["greeting"] == "Hello from Live"

    await greeter_.api.ok(SUSPEND, {"id": live["id"]})
    await greeter_.wait_deployment("Live", lambda d: d["status"] == "SUSPENDED", what="SUSPENDED")
    assert (await answer(greeter_.endpoint("live"))).status_code == 404
    assert containers_of(docker_engine, live["id"]) == []
    await greeter_.api.ok(RESUME, {"id": live["id"]})
    await greeter_.wait_deployment("Live", lambda d: d["status"] == "ACTIVE", what="ACTIVE")
    assert (await greeting(greeter_.endpoint("live")))["greeting"] == "Hello from Live"
    assert len(containers_of(docker_engine, live["id"])) == 1


async def test_images_that_fail_leave_the_running_one_serving(
    greeter: tuple[Greeter, PromenadeProcess],
) -> None:
    greeter_, _ = greeter
    for values, reason in (
        ({"GREETER_FAIL": "crash"}, "exited with code 3"),
        ({"GREETER_FAIL": "unhealthy"}, "GET /healthz answered HTTP 503"),
        ({"GREETER_FAIL": "memory"}, "was killed for running out of memory"),
    ):
        before = await greeter_.deployment("Test")
        await configure(greeter_, "Test", values, restart=True)
        earlier = before["lastError"]

        def failed_anew(deployment: dict[str, Any], earlier: str | None = earlier) -> bool:
            return deployment["lastError"] not in (None, earlier)

        failed = await greeter_.wait_deployment("Test", failed_anew, what=reason, within=60)
        assert reason in failed["lastError"], failed["lastError"]
        assert failed["status"] == "ACTIVE"  # the old one serves on
        assert (await greeting(greeter_.endpoint("test")))["greeting"] == TEST_VALUES["GREETING"]
        # Back to a working configuration for the next round (takes effect at a restart).
        await configure(greeter_, "Test", {"GREETER_FAIL": None})

    missing = await greeter_.create_build("2.0.0", "promenade-test/nothing-here:2.0.0")
    assert missing
    await greeter_.api.ok(
        """mutation($input: DeployInput!) { deploy(input: $input) {
            __typename ... on Error { code message } ... on Deployment { id } } }""",
        {
            "input": {
                "integrationId": greeter_.integration_id,
                "buildId": greeter_.builds["2.0.0"],
                "environmentId": greeter_.environments["Test"],
            }
        },
    )
    failed = await greeter_.wait_deployment(
        "Test", lambda d: "no image" in (d["lastError"] or ""), what="the missing image"
    )
    assert "the engine has no image 'promenade-test/nothing-here:2.0.0'" in failed["lastError"]
    assert failed["build"]["version"] == "1.0.0"


async def test_a_build_for_containers_must_name_an_image(
    greeter: tuple[Greeter, PromenadeProcess],
) -> None:
    greeter_, _ = greeter
    refused = await greeter_.api.execute(
        """mutation($input: CreateBuildInput!) { createBuild(input: $input) {
            __typename ... on ValidationError { field message } } }""",
        {
            "input": {
                "integrationId": greeter_.integration_id,
                "version": "3.0.0",
                "artifact": "python3 /app/app.py",
            }
        },
    )
    assert refused["createBuild"]["__typename"] == "ValidationError"
    assert refused["createBuild"]["field"] == "artifact"
    assert "container image reference" in refused["createBuild"]["message"]


async def test_a_crashed_container_is_started_again_and_that_is_said(
    greeter: tuple[Greeter, PromenadeProcess], docker_engine: docker.DockerClient
) -> None:
    greeter_, _ = greeter
    test = await greeter_.deployment("Test")
    (container,) = containers_of(docker_engine, test["id"])
    container.kill()

    # The supervisor (every 10 s) starts it again and says how it ended.
    restarted = await greeter_.wait_deployment(
        "Test",
        lambda d: "it was restarted" in (d["lastError"] or ""),
        what="a restart after the crash",
        within=40,
    )
    assert "exited with code 137" in restarted["lastError"]
    assert restarted["status"] == "ACTIVE"
    assert (await greeting(greeter_.endpoint("test")))["greeting"] == TEST_VALUES["GREETING"]
    (again,) = containers_of(docker_engine, test["id"])
    assert again.id != container.id


async def test_no_request_fails_across_ten_restarts_under_load(
    greeter: tuple[Greeter, PromenadeProcess],
) -> None:
    greeter_, _ = greeter
    test = await greeter_.deployment("Test")
    url = greeter_.endpoint("test")
    outcomes: list[int | str] = []
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.get(url)
                outcomes.append(response.status_code)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        clients = [asyncio.create_task(load(client)) for _ in range(4)]
        try:
            for restart in range(10):
                await greeter_.api.ok(RESTART, {"id": test["id"]})
                await greeter_.wait_revision("Test", test["revision"] + restart + 1, within=60)
        finally:
            stop.set()
            await asyncio.gather(*clients)

    failures = [outcome for outcome in outcomes if outcome != 200]
    assert len(outcomes) > 100, "too little load to show anything"
    assert failures == [], f"{len(failures)} of {len(outcomes)} requests failed: {failures[:10]}"


async def test_logs_come_from_the_data_plane_through_the_api_masked(
    greeter: tuple[Greeter, PromenadeProcess],
) -> None:
    greeter_, _ = greeter
    await greeting(greeter_.endpoint("test"))
    test = await greeter_.deployment("Test")
    started = time.monotonic()
    body = await greeter_.api.execute(
        "query($id: ID!) { deployment(id: $id) { logs(lines: 50) } }", {"id": test["id"]}
    )
    lines = body["deployment"]["logs"]
    assert time.monotonic() - started < 5
    assert any(line.startswith("greeter: listening on 127.0.0.1:8080") for line in lines), lines
    assert any('"GET / HTTP/1.1" 200' in line for line in lines), lines
    assert len(lines) <= 50
