"""Isolation as an attacker would try it, with real processes: an organization deploys a hostile
build (tests/support/probe) that looks for the platform's secret key, database and broker URLs,
another organization's secrets and the Docker socket, in /proc, the filesystem, its
environment and the sockets it can reach, on each runtime; and data planes of the same name in
two organizations are two data planes, each served by its own workers only."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import docker

from tests.processes import INSTANCE_PYTHON, run_promenade
from tests.support.docker import greeter_image, probe_image
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import answer, greeting, new_greeter
from tests.support.installations import Cluster
from tests.support.waiting import eventually

PROBE = Path(__file__).resolve().parents[1] / "support" / "probe" / "app.py"
PROBE_SCHEMA = [{"key": "PROBE_NOTE", "type": "STRING", "required": False}]
VICTIM_VALUES = {"GREETING": "Hello", "API_KEY": "the-victims-secret-5f0e1d"}


def assert_found_nothing(findings: dict[str, Any], cluster: Cluster, victim_secret: str) -> None:
    seen = json.dumps(findings)
    for what, value in (
        ("the installation's secret key", cluster.env["PROMENADE_SECRET_KEY"]),
        ("the database URL", cluster.env["PROMENADE_DATABASE_URL"]),
        ("the broker URL", cluster.env["PROMENADE_AMQP_URL"]),
        ("another organization's secret", victim_secret),
    ):
        assert value not in seen, f"the probe found {what}"
    assert "PROMENADE_SECRET_KEY" not in findings["environment"]
    assert "PROMENADE_DATABASE_URL" not in findings["environment"]
    assert findings["docker"] == {}, "the probe reached a Docker socket"
    assert findings["uid"] != 0


async def test_a_hostile_process_finds_nothing_of_the_worker_or_of_others(
    api: GraphQLClient, cluster: Cluster
) -> None:
    worker = cluster.start_worker()
    try:
        victim = await new_greeter(api, cluster.gateway_url)
        await victim.deploy(VICTIM_VALUES)
        probe = await new_greeter(api, cluster.gateway_url, schema=PROBE_SCHEMA)
        await probe.create_build("probe", shlex.join([INSTANCE_PYTHON, str(PROBE)]))
        await probe.deploy({}, version="probe")
        findings = await greeting(probe.endpoint("dev"))
    finally:
        worker.stop()
        cluster.workers.remove(worker)
    assert_found_nothing(findings, cluster, VICTIM_VALUES["API_KEY"])
    # Not the worker's environment, nor the victim's instance's.
    assert not any(key.endswith("/environ") for key in findings["processes"]), [
        key for key in findings["processes"] if key.endswith("/environ")
    ]


async def test_a_hostile_container_finds_nothing_and_reaches_nothing(
    api: GraphQLClient, cluster: Cluster, docker_engine: docker.DockerClient
) -> None:
    victim = await new_greeter(api, cluster.gateway_url, image=greeter_image(docker_engine))
    probe = await new_greeter(
        api, cluster.gateway_url, image=probe_image(docker_engine), schema=PROBE_SCHEMA
    )
    assert victim.live_plane and probe.live_plane
    worker = cluster.start_worker(data_plane=[victim.live_plane, probe.live_plane])
    try:
        await victim.deploy(VICTIM_VALUES)
        await probe.deploy({})
        findings = await greeting(probe.endpoint("test"))
    finally:
        worker.stop()
        cluster.workers.remove(worker)
    assert_found_nothing(findings, cluster, VICTIM_VALUES["API_KEY"])
    # Its own processes only, and no network: not the database, the broker or the API.
    assert findings["processes"] == {}
    assert findings["ports"] == {"postgresql": False, "rabbitmq": False, "promenade api": False}


async def test_data_planes_of_the_same_name_are_each_served_by_their_own_workers(
    api: GraphQLClient, cluster: Cluster
) -> None:
    worker = cluster.start_worker()
    try:
        ours = await new_greeter(api, cluster.gateway_url, live_on="edge")
        theirs = await new_greeter(api, cluster.gateway_url, live_on="edge")
        await ours.deploy(VICTIM_VALUES)
        await theirs.deploy(VICTIM_VALUES)
    finally:
        worker.stop()
        cluster.workers.remove(worker)
    assert ours.live_plane and theirs.live_plane and ours.live_plane != theirs.live_plane

    # A bare name names no data plane: a worker must say whose.
    refused = run_promenade(
        ["worker", "--data-plane", "edge", "--no-gateway"],
        cluster.data_dir,
        cluster.env,
        expect_failure=True,
    )
    assert "no data plane 'edge'" in refused

    our_worker = cluster.start_worker(data_plane=ours.live_plane)
    try:
        our_promotion = await ours.promote(
            "Development", "Live", {**VICTIM_VALUES, "GREETING": "ours"}
        )
        their_promotion = await theirs.promote(
            "Development", "Live", {**VICTIM_VALUES, "GREETING": "theirs"}
        )
        assert (await ours.wait_promotion(our_promotion["id"]))["status"] == "SUCCEEDED"
        assert (await greeting(ours.endpoint("live")))["greeting"] == "ours"
        # Nobody serves theirs yet: our workers never took it.
        waiting = await theirs.promotion(their_promotion["id"])
        assert waiting["status"] == "QUEUED", waiting
    finally:
        our_worker.stop()
        cluster.workers.remove(our_worker)

    their_worker = cluster.start_worker(data_plane=theirs.live_plane)
    try:
        assert (await theirs.wait_promotion(their_promotion["id"]))["status"] == "SUCCEEDED"
        answered = await eventually(
            lambda: _greeting_or_none(theirs.endpoint("live")), within=10, what="theirs"
        )
        assert answered["greeting"] == "theirs"
    finally:
        their_worker.stop()
        cluster.workers.remove(their_worker)


async def _greeting_or_none(url: str) -> dict[str, Any] | None:
    response = await answer(url)
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body
