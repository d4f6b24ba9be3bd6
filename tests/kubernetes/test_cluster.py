"""The KUBERNETES runtime on a real cluster: deploy, promote (a new change rolls the Deployment),
a failing image and a crashing instance (the rollout fails, the old ReplicaSet keeps serving),
a first change that fails (nothing left running), suspend, and a worker killed in the middle of
a start (the next one's identical start finds what it applied and finishes it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.kubernetes.conftest import Cluster
from workers.runtimes.base import InstanceSpec, StartFailed
from workers.runtimes.kubernetes.manifests import LABEL_CHANGE, LABEL_DEPLOYMENT
from workers.runtimes.kubernetes.rollout import Complete, rollout_state

ROUTE = "/acme/staging/shop/orders"
DEPLOYMENT = "dep_01jkubernetes"


def spec(
    cluster: Cluster, change_id: str, *, image: str | None = None, **values: str
) -> InstanceSpec:
    return InstanceSpec(
        deployment_id=DEPLOYMENT,
        change_id=change_id,
        artifact=image or cluster.image,
        values={"GREETING": "hello", **values, "API_KEY": f"secret-of-{change_id}"},
        secret_keys=frozenset({"API_KEY"}),
        organization_id="org_01jacme",
        route=ROUTE,
        health_path="/healthz",
        health_timeout_s=20,
    )


async def deployment(cluster: Cluster) -> dict[str, Any]:
    namespace = cluster.runtime.settings.namespace_template.format(
        organization="acme", environment="staging"
    )
    found = await cluster.api.list(
        "apps/v1", "Deployment", namespace, {LABEL_DEPLOYMENT: DEPLOYMENT}
    )
    assert len(found) == 1
    return found[0]


async def serving_change(cluster: Cluster) -> str:
    """The change whose pods are ready behind the Service."""
    current = await deployment(cluster)
    namespace = current["metadata"]["namespace"]
    pods = await cluster.api.list("v1", "Pod", namespace, {LABEL_DEPLOYMENT: DEPLOYMENT})
    ready = {
        pod["metadata"]["labels"][LABEL_CHANGE]
        for pod in pods
        if all(status.get("ready") for status in pod["status"].get("containerStatuses") or [{}])
        and not pod["metadata"].get("deletionTimestamp")
    }
    assert len(ready) == 1, ready
    return str(ready.pop())


async def test_deploy_then_promote(cluster: Cluster) -> None:
    first = await cluster.runtime.start(spec(cluster, "chg_first"))
    assert first.address.endswith(":80")
    url = await cluster.runtime.route(DEPLOYMENT, ROUTE, first)
    assert url == cluster.runtime.endpoint_url(ROUTE)
    assert await serving_change(cluster) == "chg_first"
    assert await cluster.runtime.deployments() == {DEPLOYMENT}

    second = await cluster.runtime.start(spec(cluster, "chg_second", GREETING="bonjour"))
    await cluster.runtime.retire_others(DEPLOYMENT, "chg_second")
    assert second.address == first.address  # the Service stays
    assert await serving_change(cluster) == "chg_second"
    logs = await cluster.runtime.logs(DEPLOYMENT)
    assert all("secret-of-" not in line for line in logs)

    # Starting the same change again returns it; nothing rolls.
    generation = (await deployment(cluster))["metadata"]["generation"]
    again = await cluster.runtime.start(spec(cluster, "chg_second", GREETING="bonjour"))
    assert again == second
    assert (await deployment(cluster))["metadata"]["generation"] == generation


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        ({"image": "promenade-test-image-that-does-not-exist:0"}, "image cannot be pulled"),
        ({"GREETER_FAIL": "crash"}, "exited with code 3"),
        # Its startup probe fails: killed and started again, or not ready by the deadline.
        ({"GREETER_FAIL": "unhealthy"}, "readiness probe does not succeed|keeps exiting"),
    ],
)
async def test_a_failed_rollout_leaves_the_old_replica_set_serving(
    cluster: Cluster, broken: dict[str, str], says: str
) -> None:
    await cluster.runtime.start(spec(cluster, "chg_good"))
    with pytest.raises(StartFailed, match=says):
        await cluster.runtime.start(spec(cluster, "chg_bad", **broken))
    current = await deployment(cluster)
    # Rolled back: the template is the serving change's again, and its rollout is complete.
    assert current["spec"]["template"]["metadata"]["labels"][LABEL_CHANGE] == "chg_good"
    assert await serving_change(cluster) == "chg_good"
    for _ in range(60):
        current = await deployment(cluster)
        pods = await cluster.api.list(
            "v1", "Pod", current["metadata"]["namespace"], {LABEL_DEPLOYMENT: DEPLOYMENT}
        )
        if rollout_state(current, pods, change_id="chg_good") == Complete():
            break
        await asyncio.sleep(1)
    else:
        pytest.fail("the rollback did not complete")


async def test_a_failed_first_change_leaves_nothing_running(cluster: Cluster) -> None:
    with pytest.raises(StartFailed, match="exited with code 3"):
        await cluster.runtime.start(spec(cluster, "chg_first", GREETER_FAIL="crash"))
    assert (await deployment(cluster))["spec"]["replicas"] == 0


async def test_suspend_scales_to_zero_and_a_start_brings_it_back(cluster: Cluster) -> None:
    await cluster.runtime.start(spec(cluster, "chg_one"))
    # As the supervisor stops what should run nothing: by the deployment, without its route.
    await cluster.runtime.stop(DEPLOYMENT, "")
    assert (await deployment(cluster))["spec"]["replicas"] == 0
    for _ in range(60):
        if DEPLOYMENT not in await cluster.runtime.deployments():
            break
        await asyncio.sleep(1)
    else:
        pytest.fail("the suspended deployment's pods did not go")
    await cluster.runtime.start(spec(cluster, "chg_two"))
    assert (await deployment(cluster))["spec"]["replicas"] == 1
    assert await serving_change(cluster) == "chg_two"


async def test_a_worker_killed_during_a_start_is_finished_by_the_next(cluster: Cluster) -> None:
    await cluster.runtime.start(spec(cluster, "chg_before"))
    started = asyncio.create_task(cluster.runtime.start(spec(cluster, "chg_after")))
    # Killed once the new template is applied, before the rollout completes.
    for _ in range(100):
        current = await deployment(cluster)
        if current["spec"]["template"]["metadata"]["labels"][LABEL_CHANGE] == "chg_after":
            break
        await asyncio.sleep(0.1)
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    worker = await cluster.another_worker()
    try:
        instance = await worker.start(spec(cluster, "chg_after"))
    finally:
        await worker.k8s.api.close()
    assert instance.change_id == "chg_after"
    assert await serving_change(cluster) == "chg_after"
    namespace = (await deployment(cluster))["metadata"]["namespace"]
    replica_sets = await cluster.api.list(
        "apps/v1",
        "ReplicaSet",
        namespace,
        {LABEL_DEPLOYMENT: DEPLOYMENT, LABEL_CHANGE: "chg_after"},
    )
    assert len(replica_sets) == 1  # applied twice, one ReplicaSet
