"""The API factory served by plain uvicorn (``uvicorn --factory app.main:api``) is a complete
API: its lifespan runs the outbox relay, so a deploy's command reaches RabbitMQ before any
other Promenade process runs, and the event hub, so a websocket subscription hears the
deployment's events; a worker started afterwards takes the command and the deployment goes
ACTIVE."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from cryptography.fernet import Fernet

from app.messaging.bus import command_queue
from app.services.dataplanes import LOCAL_ROUTING_KEY
from tests.processes import (
    PromenadeProcess,
    free_port,
    kill_instances,
    running_server,
    start_worker,
)
from tests.support.docker import docker_host
from tests.support.documents import DEPLOY
from tests.support.graphql_client import graphql_over_http
from tests.support.graphql_ws import WsClient, data_of
from tests.support.greeter import entries, new_greeter
from tests.support.installations import admin_token
from tests.support.postgres import new_database
from tests.support.rabbitmq import rabbitmqctl, virtual_host
from tests.support.waiting import eventually

EVENTS = """
subscription($environmentId: ID!) {
  deploymentEvents(environmentId: $environmentId) { status revision }
}
"""


@pytest.fixture
def own_database(postgres_server_url: str) -> Iterator[str]:
    """A database of this test's own: no other API's relay publishes its outbox."""
    with new_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def own_vhost(amqp_server_url: str) -> Iterator[str]:
    """A virtual host of this test's own: no other test's worker takes its commands."""
    with virtual_host(amqp_server_url, "promenade-factory") as url:
        yield url


async def test_uvicorn_on_the_factory_relays_commands_and_streams_events(
    tmp_path: Path, own_database: str, own_vhost: str
) -> None:
    port = free_port()
    token = await admin_token(own_database)
    env = {
        "PROMENADE_DATABASE_URL": own_database,
        "PROMENADE_AMQP_URL": own_vhost,
        "PROMENADE_SECRET_KEY": Fernet.generate_key().decode(),
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "app.main:api"]
    uvicorn += ["--host", "127.0.0.1", "--port", str(port)]
    worker: PromenadeProcess | None = None
    try:
        with running_server(uvicorn, tmp_path, env, port) as served:
            async with (
                graphql_over_http(served.url, token) as api,
                WsClient.connect(served.url, token) as events,
            ):
                greeter = await new_greeter(api, "http://127.0.0.1:1")
                development = greeter.environments["Development"]
                events_id = await events.subscribe(EVENTS, {"environmentId": development})
                await api.ok(
                    DEPLOY,
                    {
                        "input": {
                            "integrationId": greeter.integration_id,
                            "buildId": greeter.builds["1.0.0"],
                            "environmentId": development,
                            "configuration": entries({"GREETING": "Hi", "API_KEY": "k"}),
                        }
                    },
                )
                # No worker runs yet: only this API's relay can have published the deploy's
                # command (it waits in the data plane's queue) and its event, which this
                # API's hub heard from RabbitMQ.
                assert await next_event(events, events_id) == {
                    "status": "IN_PROGRESS",
                    "revision": 0,
                }
                await eventually(
                    lambda: queued_commands(own_vhost), within=20, what="the command queued"
                )
                worker = start_worker(tmp_path, {**env, "DOCKER_HOST": docker_host()})
                while (event := await next_event(events, events_id))["status"] != "ACTIVE":
                    assert event["status"] == "IN_PROGRESS", event
                assert event == {"status": "ACTIVE", "revision": 1}
    finally:
        if worker is not None:
            worker.stop()
        kill_instances(tmp_path / "runtime")


async def queued_commands(amqp_url: str) -> bool | None:
    """Whether one message waits in the ``local`` data plane's command queue (the broker's
    counts lag by a few seconds)."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    listing = rabbitmqctl(
        "list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "messages"
    )
    counts = dict(line.split() for line in listing.splitlines() if line.strip())
    return int(counts.get(command_queue(LOCAL_ROUTING_KEY), 0)) == 1 or None


async def next_event(events: WsClient, operation_id: str) -> dict[str, Any]:
    return data_of(await events.message(operation_id, within=30), "deploymentEvents")
