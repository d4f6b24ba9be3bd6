"""Fan-out across API replicas: two ``promenade api`` processes and a ``promenade worker`` on
PostgreSQL and RabbitMQ. A client connected to one replica sees what a promotion requested
through the other does, as the worker does it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.delayed_greeter import new_greeter
from tests.support.documents import DEPLOYMENT_EVENTS, PROMOTION_STATUS, PROMOTION_STATUSES
from tests.support.graphql_client import graphql_over_http
from tests.support.graphql_ws import WsClient, data_of
from tests.support.installations import Scaled, scaled_installation
from tests.support.postgres import new_database, postgres_server
from tests.support.rabbitmq import amqp_server_url, virtual_host

# The subscription of a promotion reads the database again at least this often without an
# event; statuses that arrive much sooner after they happened came through the bus.
WITHOUT_EVENTS_S = 5.0


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    broker_url = amqp_server_url()
    data_dir: Path = tmp_path_factory.mktemp("replicas")
    for server_url in postgres_server():
        with (
            new_database(server_url, migrated=False) as database_url,
            virtual_host(broker_url, "promenade-live") as amqp_url,
            scaled_installation(data_dir, database_url, amqp_url, replicas=2) as installation,
        ):
            yield installation


async def test_a_subscriber_on_one_replica_follows_a_promotion_made_through_another(
    scaled: Scaled,
) -> None:
    replica_a, replica_b = (api.url for api in scaled.apis)
    async with graphql_over_http(replica_b, scaled.token) as through_b:
        greeter = await new_greeter(through_b, "replicas")
        production = greeter.environments["Production"]
        filters = {"environmentId": production, "integrationId": greeter.integration_id}
        async with (
            WsClient.connect(replica_a, scaled.token) as on_a,
            WsClient.connect(replica_b, scaled.token) as on_b,
        ):
            deployments_a = await on_a.subscribe(DEPLOYMENT_EVENTS, filters)
            deployments_b = await on_b.subscribe(DEPLOYMENT_EVENTS, filters)
            # Through B; the new instance takes 2 s to start, so A follows it live.
            promotion_id = await greeter.promote({"START_DELAY": "2"})
            statuses = await on_a.subscribe(PROMOTION_STATUS, {"id": promotion_id})

            seen = []
            while True:
                arrived, message = await on_a.timed_message(statuses, within=30)
                if message["type"] == "complete":
                    break
                seen.append((arrived, data_of(message, "promotionStatus")))
            names = [status["status"] for _, status in seen]
            assert names == PROMOTION_STATUSES[-len(names) :], names
            assert "RESTARTING" in names  # A subscribed before the instance was up
            # Each status after the first reached A within moments of being recorded: it was
            # an event from the worker, through RabbitMQ, that woke A's subscription.
            for arrived, status in seen[1:]:
                lag = arrived - datetime.fromisoformat(status["at"]).timestamp()
                assert lag < WITHOUT_EVENTS_S / 2, (status, lag)

            # Both replicas heard the worker's event that the deployment is ACTIVE: each API
            # process has a queue of its own on the events exchange.
            for client, operation in ((on_a, deployments_a), (on_b, deployments_b)):
                while True:
                    event = data_of(await client.message(operation, 30), "deploymentEvents")
                    assert event["environmentId"] == production
                    if event["status"] == "ACTIVE":
                        break
                assert event["revision"] == 1
                assert event["endpointUrl"]
        assert (await greeter.promotion(promotion_id))["status"] == "SUCCEEDED"
