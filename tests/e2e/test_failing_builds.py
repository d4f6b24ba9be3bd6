"""Builds that fail: one whose process exits at start, one that cannot be run at all, and one
that never becomes healthy. The change is FAILED, ``lastError`` says why (the exit code and the
last lines of output, or the health check's answer), and the instance that ran before keeps
serving.

The greeter reads GREETER_FAIL from its environment, and configuration values reach it as
environment variables, so the integration declares GREETER_FAIL (not required).

The worker gives new instances HEALTH_TIMEOUT_S to become healthy (PROMENADE_HEALTH_TIMEOUT_S),
so the unhealthy build's test waits that long, not the default 30 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.processes import PromenadeProcess, instance_processes, start_worker
from tests.support.documents import DEPLOY, SET_CONFIGURATION
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import Greeter, entries, greeting, new_greeter
from tests.support.installations import Cluster

DEV_VALUES = {"GREETING": "Hello from Development", "API_KEY": "dev-key"}
PROD_VALUES = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}
HEALTH_TIMEOUT_S = 5


@pytest.fixture(scope="module")
def worker(cluster: Cluster) -> Iterator[PromenadeProcess]:
    worker = start_worker(
        cluster.data_dir,
        {**cluster.env, "PROMENADE_HEALTH_TIMEOUT_S": str(HEALTH_TIMEOUT_S)},
        concurrency=4,
    )
    yield worker
    worker.stop()


@pytest.fixture
async def greeter(api: GraphQLClient, cluster: Cluster, worker: PromenadeProcess) -> Greeter:
    """The greeter ACTIVE in Development and in Production, each with its own values."""
    greeter = await new_greeter(api, cluster.gateway_url)
    await greeter.deploy(DEV_VALUES)
    promoted = await greeter.promote("Development", "Production", PROD_VALUES)
    assert (await greeter.wait_promotion(promoted["id"]))["status"] == "SUCCEEDED"
    await greeter.wait_revision("Production", 1)
    return greeter


def failed(deployment: dict[str, Any]) -> bool:
    return deployment["lastError"] is not None


async def test_a_build_that_crashes_at_start_leaves_the_old_instance_serving(
    greeter: Greeter, cluster: Cluster
) -> None:
    before = await greeting(greeter.endpoint("dev"))

    await greeter.api.ok(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "environmentId": greeter.environments["Development"],
                "entries": entries({"GREETING": "Never served", "GREETER_FAIL": "crash"}),
                "restart": True,
            }
        },
    )
    development = await greeter.wait_deployment("Development", failed, what="lastError")
    error = development["lastError"]
    assert "exited with code 3" in error, error
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in error, error
    assert development["status"] == "ACTIVE"
    assert development["revision"] == 1
    assert development["history"]["totalCount"] == 1
    # The values that failed are set, and not running.
    assert development["restartRequired"] is True
    assert await greeting(greeter.endpoint("dev")) == before
    assert instance_processes(cluster.runtime_dir, development["id"]) == [before["pid"]]


async def test_a_promotion_whose_build_crashes_is_failed_and_production_keeps_serving(
    greeter: Greeter, cluster: Cluster
) -> None:
    before = await greeting(greeter.endpoint("prod"))
    assert before["greeting"] == "Hello from Production"

    promoted = await greeter.promote(
        "Development", "Production", {"GREETING": "Never served", "GREETER_FAIL": "crash"}
    )
    assert promoted["__typename"] == "Promotion", promoted
    promotion = await greeter.wait_promotion(promoted["id"])
    assert promotion["status"] == "FAILED"
    assert "exited with code 3" in promotion["error"], promotion
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in promotion["error"], promotion
    assert promotion["events"][-1]["status"] == "FAILED"

    production = await greeter.deployment("Production")
    assert production["lastError"] == promotion["error"]
    assert (production["status"], production["revision"]) == ("ACTIVE", 1)
    assert production["history"]["totalCount"] == 1
    assert await greeting(greeter.endpoint("prod")) == before
    assert instance_processes(cluster.runtime_dir, production["id"]) == [before["pid"]]


async def test_a_build_that_cannot_be_run_leaves_the_old_instance_serving(
    greeter: Greeter,
) -> None:
    before = await greeting(greeter.endpoint("dev"))
    await greeter.create_build("2.0.0", "/nonexistent/greeter --port $PORT")
    await greeter.api.ok(
        DEPLOY,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "buildId": greeter.builds["2.0.0"],
                "environmentId": greeter.environments["Development"],
            }
        },
    )
    development = await greeter.wait_deployment("Development", failed, what="lastError")
    assert "could not run '/nonexistent/greeter'" in development["lastError"], development
    assert (development["status"], development["revision"]) == ("ACTIVE", 1)
    assert development["build"]["version"] == "1.0.0"
    assert await greeting(greeter.endpoint("dev")) == before


async def test_a_promotion_whose_build_never_becomes_healthy_is_failed(
    greeter: Greeter, cluster: Cluster
) -> None:
    before = await greeting(greeter.endpoint("prod"))
    production = await greeter.deployment("Production")

    promoted = await greeter.promote(
        "Development", "Production", {"GREETING": "Never served", "GREETER_FAIL": "unhealthy"}
    )
    assert promoted["__typename"] == "Promotion", promoted
    promotion = await greeter.wait_promotion(promoted["id"], within=HEALTH_TIMEOUT_S + 20)
    assert promotion["status"] == "FAILED"
    error = promotion["error"]
    assert f"did not become healthy within {HEALTH_TIMEOUT_S}s" in error, error
    reason, output = error.split("last lines of output:\n", 1)
    assert "GET /healthz answered HTTP 503" in reason, error
    # The body of its answer is the instance's own words: with its output, which only
    # DEVELOPER and ADMIN read, then the last lines it printed (the health checks it answered).
    assert "GET /healthz answered: unhealthy (GREETER_FAIL=unhealthy)" in output, error
    assert "GREETER_FAIL" not in reason, error
    assert 'greeter: 127.0.0.1 "GET /healthz HTTP/1.1" 503' in output, error

    after = await greeter.deployment("Production")
    assert after["lastError"] == error
    assert (after["status"], after["revision"]) == ("ACTIVE", 1)
    assert await greeting(greeter.endpoint("prod")) == before
    # The instance that never became healthy was stopped.
    assert instance_processes(cluster.runtime_dir, production["id"]) == [before["pid"]]
