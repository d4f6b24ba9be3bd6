"""Subscriptions over graphql-transport-ws, on a real websocket server.

What a promotion does is watched on a real ``promenade up``; what a slow, dead or greedy client
does to the server is watched on the app served by uvicorn in this process, whose event hub
the test feeds and counts.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlmodel.ext.asyncio.session import AsyncSession
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.graphql.websocket import MAX_SUBSCRIPTIONS_PER_CONNECTION
from app.messaging.fanout import SUBSCRIBER_QUEUE_SIZE
from tests.graphql.governance import (
    Subscription,
    governed_world,
    live_api,
    promote,
    set_policy,
)
from tests.support.delayed_greeter import new_greeter
from tests.support.documents import DEPLOYMENT_EVENTS, PROMOTION_STATUS, PROMOTION_STATUSES
from tests.support.graphql_client import GraphQLClient, graphql_over_http
from tests.support.graphql_ws import WsClient, connection_init, data_of, error_codes, raw_connection
from tests.support.servers import Embedded, LiveApp, live_app_on, small_receive_buffer_socket
from tests.support.waiting import eventually

# ---- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"authorization": "Bearer not-a-token"},
        {"authorization": "Bearer "},
        {"authorization": "Basic YWRtaW46YWRtaW4="},
    ],
    ids=["no token", "bad token", "empty token", "not a bearer token"],
)
async def test_connection_without_a_valid_token_is_closed_with_4403(
    live_app: LiveApp, payload: dict[str, str]
) -> None:
    async with raw_connection(live_app.url) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed):
            message = await asyncio.wait_for(connection.recv(), 10)
            pytest.fail(f"the server answered {message!r} instead of closing")
        assert connection.close_code == 4403
    assert live_app.hub.subscriber_count == 0


async def test_only_graphql_transport_ws_is_spoken(live_app: LiveApp) -> None:
    """The legacy graphql-ws protocol (subscriptions-transport-ws) is not offered: a client
    that speaks only it is told so (4406); one that offers both gets graphql-transport-ws."""
    async with raw_connection(live_app.url, subprotocols=[Subprotocol("graphql-ws")]) as legacy:
        assert legacy.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(legacy.recv(), 10)
        assert legacy.close_code == 4406
    both = [Subprotocol("graphql-ws"), Subprotocol("graphql-transport-ws")]
    async with WsClient.connect(live_app.url, live_app.token, subprotocols=both) as client:
        assert client.connection.subprotocol == "graphql-transport-ws"


async def test_subscribing_before_the_connection_is_acknowledged_is_refused(
    live_app: LiveApp,
) -> None:
    async with raw_connection(live_app.url) as connection:
        await connection.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": DEPLOYMENT_EVENTS}})
        )
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(connection.recv(), 10)
        assert connection.close_code == 4401
    assert live_app.hub.subscriber_count == 0


# ---- another organization's objects ----------------------------------------------------------


async def test_another_organizations_objects_are_not_found_and_never_yield_events(
    embedded: Embedded, admin: GraphQLClient, intruder: str
) -> None:
    greeter = await new_greeter(admin)
    production = greeter.environments["Production"]
    async with (
        WsClient.connect(embedded.url, embedded.token) as owner,
        WsClient.connect(embedded.url, intruder) as stranger,
    ):
        watched = await owner.subscribe(DEPLOYMENT_EVENTS, {"environmentId": production})
        everything = await stranger.subscribe(DEPLOYMENT_EVENTS)
        promotion_id = await greeter.promote()
        attempts = {
            "promotion": await stranger.subscribe(PROMOTION_STATUS, {"id": promotion_id}),
            "environment": await stranger.subscribe(
                DEPLOYMENT_EVENTS, {"environmentId": production}
            ),
            "integration": await stranger.subscribe(
                DEPLOYMENT_EVENTS, {"integrationId": greeter.integration_id}
            ),
            # One of the filters the stranger's own, the other not: still not found.
            "mixed": await stranger.subscribe(
                DEPLOYMENT_EVENTS,
                {"integrationId": greeter.integration_id, "environmentId": "env_unknown"},
            ),
        }
        for what, operation in attempts.items():
            messages = await stranger.until_complete(operation)
            assert len(messages) == 1, (what, messages)
            (message,) = messages
            assert message["payload"]["data"] is None, (what, message)
            assert error_codes(message) == ["NOT_FOUND"], (what, message)

        # The owner sees the promotion's deployment become ACTIVE; by then the stranger's
        # subscription to "everything it may see" has had every chance to get it, and has not.
        while data_of(await owner.message(watched), "deploymentEvents")["status"] != "ACTIVE":
            pass
        await asyncio.sleep(0.2)
        assert stranger.pending(everything) == 0


# ---- a promotion followed live ---------------------------------------------------------------


async def test_subscribers_see_every_status_from_the_current_one_to_the_final_one(
    embedded: Embedded, admin: GraphQLClient
) -> None:
    greeter = await new_greeter(admin)
    # The new instance takes 2 s to come up: the promotion stays RESTARTING meanwhile.
    promotion_id = await greeter.promote({"START_DELAY": "2"})
    async with (
        WsClient.connect(embedded.url, embedded.token) as early,
        WsClient.connect(embedded.url, embedded.token) as late,
    ):
        from_start = await early.subscribe(PROMOTION_STATUS, {"id": promotion_id})
        deployments = await early.subscribe(
            DEPLOYMENT_EVENTS,
            {
                "environmentId": greeter.environments["Production"],
                "integrationId": greeter.integration_id,
            },
        )
        await greeter.wait_promotion(promotion_id, "RESTARTING")
        midway = await late.subscribe(PROMOTION_STATUS, {"id": promotion_id})

        seen_early = [data_of(m, "promotionStatus") for m in await early.until_complete(from_start)]
        seen_late = [data_of(m, "promotionStatus") for m in await late.until_complete(midway)]
        recorded = (await greeter.promotion(promotion_id))["events"]
        assert [event["status"] for event in recorded] == PROMOTION_STATUSES

        def comparable(events: list[dict[str, Any]]) -> list[tuple[str, str | None, datetime]]:
            return [(e["status"], e["detail"], datetime.fromisoformat(e["at"])) for e in events]

        # Each subscriber starts at the status current when it subscribed, then gets every
        # later one, in order, exactly as recorded, and the subscription completes after
        # SUCCEEDED (until_complete returned).
        assert seen_early, "nothing before complete"
        assert comparable(seen_early) == comparable(recorded)[-len(seen_early) :]
        assert comparable(seen_late) == comparable(recorded)[-2:]  # RESTARTING, SUCCEEDED
        assert {e["promotionId"] for e in seen_early + seen_late} == {promotion_id}

        # The deployment's events: it restarts, and is ACTIVE at revision 1 (its first).
        statuses: list[str] = []
        while not statuses or statuses[-1] != "ACTIVE":
            event = data_of(await early.message(deployments), "deploymentEvents")
            assert event["integrationId"] == greeter.integration_id
            assert event["environmentId"] == greeter.environments["Production"]
            statuses.append(event["status"])
        assert event["revision"] == 1
        assert event["endpointUrl"]

        # Once the promotion has ended, a subscriber gets its final status and the end.
        after = await late.subscribe(PROMOTION_STATUS, {"id": promotion_id})
        ended = [data_of(m, "promotionStatus") for m in await late.until_complete(after)]
        assert [status["status"] for status in ended] == ["SUCCEEDED"]


# ---- filters ---------------------------------------------------------------------------------


async def test_deployment_events_are_filtered_by_environment_integration_and_organization(
    live_app: LiveApp,
) -> None:
    development = live_app.environments["Development"]
    async with (
        WsClient.connect(live_app.url, live_app.token) as viewer,
        WsClient.connect(live_app.url, live_app.other_token) as other,
    ):
        by_environment = await viewer.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        unfiltered = await viewer.subscribe(DEPLOYMENT_EVENTS)
        others = await other.subscribe(DEPLOYMENT_EVENTS)
        await live_app.wait_subscribers(3)

        in_production = live_app.deployment_event("Production")
        in_development = live_app.deployment_event("Development")
        foreign = live_app.deployment_event("Development")
        foreign.body["organizationId"] = "org_someone_else"
        for message in (in_production, foreign, in_development):
            await live_app.publish(message)

        def details(messages: list[dict[str, Any]]) -> list[str]:
            return [data_of(m, "deploymentEvents")["detail"] for m in messages]

        assert details([await viewer.message(by_environment)]) == [in_development.body["detail"]]
        assert details([await viewer.message(unfiltered), await viewer.message(unfiltered)]) == [
            in_production.body["detail"],
            in_development.body["detail"],
        ]
        await asyncio.sleep(0.2)
        assert viewer.pending(by_environment) == viewer.pending(unfiltered) == 0
        assert other.pending(others) == 0


# ---- slow, dead and greedy clients -----------------------------------------------------------


def send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to on this machine (bytes)."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


async def test_a_client_that_stops_reading_is_cut_off_and_holds_back_no_one(
    live_app: LiveApp,
) -> None:
    development = live_app.environments["Development"]
    async with WsClient.connect(live_app.url, live_app.token) as fast:
        prompt = await fast.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        # The slow client: a small receive buffer, and once the subscription runs it never
        # reads again (websockets stops reading the socket when its queue of one is full).
        sock = small_receive_buffer_socket(live_app.url)
        async with raw_connection(
            live_app.url, sock=sock, compression=None, max_queue=1, ping_interval=None
        ) as slow:
            await slow.send(json.dumps(connection_init(live_app.token)))
            assert json.loads(await slow.recv()) == {"type": "connection_ack"}
            subscribe = {"query": DEPLOYMENT_EVENTS, "variables": {"environmentId": development}}
            await slow.send(json.dumps({"id": "slow", "type": "subscribe", "payload": subscribe}))
            await live_app.wait_subscribers(2)

            # Big events (8 kB each) fill the socket buffers between the server and the slow
            # client (the server's send buffer grows up to the kernel's tcp_wmem maximum, 4 MB
            # by default) in a few hundred events, then its queue in the hub.
            published = 0
            worst = 0.0
            # Small batches: an event waits for the rest of its batch to be published before it
            # is read, and that wait is not what the bound below is about.
            batch = 10
            flood = (send_buffer_max() + 2**20) // 8000 + 2 * SUBSCRIBER_QUEUE_SIZE
            for _ in range(-(-flood // batch)):
                for _ in range(batch):
                    message = live_app.deployment_event(revision=published)
                    message.body["detail"] += " " + "x" * 8000
                    await live_app.publish(message)
                    published += 1
                for _ in range(batch):
                    arrived, received = await fast.timed_message(prompt, within=5)
                    event = data_of(received, "deploymentEvents")
                    worst = max(worst, arrived - datetime.fromisoformat(event["at"]).timestamp())
            # The other subscriber got every event, promptly, all along.
            assert worst < 1.0, f"an event took {worst:.2f}s to reach the prompt subscriber"
            assert fast.pending(prompt) == 0

            # Now the slow client reads: what had reached its socket, in order and without a
            # gap, then the error that cut it off, then the end of the subscription.
            revisions: list[int] = []
            while True:
                try:
                    received = json.loads(await asyncio.wait_for(slow.recv(), 10))
                except TimeoutError:
                    pytest.fail(f"{len(revisions)} of {published} events, then nothing")
                if received["type"] != "next" or received["payload"].get("errors"):
                    break
                revisions.append(data_of(received, "deploymentEvents")["revision"])
            assert error_codes(received) == ["TOO_SLOW"], received
            assert json.loads(await asyncio.wait_for(slow.recv(), 10)) == {
                "id": "slow",
                "type": "complete",
            }
            assert revisions == list(range(len(revisions)))
            # The server kept no more for it than what the sockets held (a few MB: some
            # hundreds of these events) and its bounded queue (SUBSCRIBER_QUEUE_SIZE).
            assert len(revisions) < published - SUBSCRIBER_QUEUE_SIZE, len(revisions)
            # It left the hub; the prompt subscriber is still there.
            await live_app.wait_subscribers(1)


async def test_a_dead_client_is_dropped_by_the_keepalive_and_leaves_the_hub(
    live_engine: AsyncEngine, tmp_path: Path
) -> None:
    # The real servers ping every 20 s (uvicorn's default); here every 0.2 s.
    async with (
        live_app_on(live_engine, tmp_path, ws_ping_interval=0.2, ws_ping_timeout=0.2) as live,
        WsClient.connect(live.url, live.token, ping_interval=None) as client,
    ):
        for _ in range(3):
            await client.subscribe(DEPLOYMENT_EVENTS)
        await live.wait_subscribers(3)
        await asyncio.sleep(0.6)  # a few pings, answered
        assert live.hub.subscriber_count == 3
        # The client hangs: it reads nothing more, so it answers no ping.
        client.connection.transport.pause_reading()
        started = time.monotonic()
        await live.wait_subscribers(0, within=5)
        assert time.monotonic() - started < 3
        client.connection.transport.abort()  # no closing handshake with a hung client


async def test_subscriptions_per_connection_are_capped(live_app: LiveApp) -> None:
    async with WsClient.connect(live_app.url, live_app.token) as client:
        operations = [
            await client.subscribe(DEPLOYMENT_EVENTS)
            for _ in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        ]
        await live_app.wait_subscribers(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        refused = await client.subscribe(DEPLOYMENT_EVENTS)
        message = await client.message(refused)
        assert message["type"] == "error", message
        assert "limit" in message["payload"][0]["message"]
        assert live_app.hub.subscriber_count == MAX_SUBSCRIPTIONS_PER_CONNECTION

        # The others work on, and once one ends there is room for another.
        event = live_app.deployment_event()
        await live_app.publish(event)
        for operation in operations:
            assert (
                data_of(await client.message(operation), "deploymentEvents")["detail"]
                == (event.body["detail"])
            )
        await client.complete(operations[0])
        await live_app.wait_subscribers(MAX_SUBSCRIPTIONS_PER_CONNECTION - 1)
        again = await client.subscribe(DEPLOYMENT_EVENTS)
        await live_app.wait_subscribers(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        await live_app.publish(live_app.deployment_event())
        assert (await client.message(again))["type"] == "next"


async def test_the_hub_keeps_no_subscriber_of_a_client_that_is_gone(live_app: LiveApp) -> None:
    async with (
        WsClient.connect(live_app.url, live_app.token) as polite,
        WsClient.connect(live_app.url, live_app.token) as abrupt,
    ):
        first, *_ = [await polite.subscribe(DEPLOYMENT_EVENTS) for _ in range(3)]
        for _ in range(2):
            await abrupt.subscribe(DEPLOYMENT_EVENTS)
        # A subscription that fails its checks never joins the hub.
        missing = await polite.subscribe(PROMOTION_STATUS, {"id": "pro_missing"})
        assert error_codes(await polite.message(missing)) == ["NOT_FOUND"]
        await live_app.wait_subscribers(5)

        await polite.complete(first)  # the client ends one subscription
        await live_app.wait_subscribers(4)
        abrupt.connection.transport.abort()  # the connection breaks, without a close
        await live_app.wait_subscribers(2)
        await polite.connection.close()  # the client closes its connection
        await live_app.wait_subscribers(0)


# ---- queries and mutations over the websocket ------------------------------------------------

ENVIRONMENTS = "query($slug: String!) { organization(slug: $slug) { environments { name } } }"
CREATE_ENVIRONMENT = """
mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) {
    __typename ... on Error { code message } ... on Environment { id name } } }
"""


def connections_in_use(engine: AsyncEngine) -> int:
    pool = engine.pool
    assert isinstance(pool, QueuePool), pool
    return pool.checkedout()


async def connections_released(engine: AsyncEngine, *, within_s: float = 2.0) -> int:
    """The connections still checked out once the server had a moment: an operation's session
    closes just after its ``complete`` message goes out, so a client that reads ``complete``
    can look a few milliseconds too early."""
    deadline = asyncio.get_running_loop().time() + within_s
    while connections_in_use(engine) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return connections_in_use(engine)


async def test_queries_over_the_websocket_see_fresh_data_and_hold_no_database_connection(
    live_app: LiveApp, live_engine: AsyncEngine
) -> None:
    """Clients such as gql's websockets transport or graphql-ws run queries and mutations over
    the socket too: each sees the database as it is, and none keeps a database connection
    (and its transaction) for as long as the socket is open."""

    def new_environment(name: str, position: int) -> dict[str, Any]:
        return {
            "input": {
                "organizationId": live_app.organization_id,
                "name": name,
                "dnsPrefix": name.lower(),
                "position": position,
            }
        }

    async def environments(client: WsClient) -> list[str]:
        (message,) = await client.until_complete(
            await client.subscribe(ENVIRONMENTS, {"slug": "viewers"})
        )
        return [e["name"] for e in data_of(message, "organization")["environments"]]

    async with (
        WsClient.connect(live_app.url, live_app.token) as client,
        graphql_over_http(live_app.url, live_app.token) as api,
    ):
        assert await environments(client) == ["Development", "Production"]
        assert await connections_released(live_engine) == 0

        await api.ok(CREATE_ENVIRONMENT, new_environment("Staging", 1))
        assert await environments(client) == ["Development", "Staging", "Production"]

        (created,) = await client.until_complete(
            await client.subscribe(CREATE_ENVIRONMENT, new_environment("QA", 2))
        )
        assert data_of(created, "createEnvironment")["name"] == "QA"
        assert await connections_released(live_engine) == 0
        organization = await api.execute(ENVIRONMENTS, {"slug": "viewers"})
        assert [e["name"] for e in organization["organization"]["environments"]] == [
            "Development",
            "Staging",
            "QA",
            "Production",
        ]


APPROVAL_REQUESTS = """
subscription($organizationId: ID!) {
    approvalRequests(organizationId: $organizationId) {
        id status integration { name } requestedBy { email }
    }
}
"""


async def test_a_reviewer_waiting_for_approval_requests_holds_no_database_connection(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> None:
    """approvalRequests reads each request's fields through the operation's session: once a
    request is sent, the subscription waits for the next without a database connection."""
    async with live_api(engine, session, secret_key, tmp_path) as live:
        world = await governed_world(live.api, session)
        await set_policy(live.api, world, required=1)
        async with Subscription.open(
            live, world.members["approver"], APPROVAL_REQUESTS, {"organizationId": world.org.id}
        ) as reviewer:
            promotion = await promote(live.api, world)
            message = await reviewer.message()
            assert data_of(message, "approvalRequests")["id"] == promotion["id"]

            async def released() -> bool | None:
                return True if connections_in_use(engine) == 0 else None

            await eventually(released, within=5, what="no database connection in use")
