"""The clients frontend apps and scripts use, as they are, follow a promotion on a real
``promenade up``: the JavaScript ``graphql-ws`` client (on the machine's Node.js, with the
versions pinned in js/package-lock.json) and Python's ``gql`` with its websockets transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed
from gql.transport.websockets import WebsocketsTransport
from websockets.exceptions import ConnectionClosed

from tests.support.delayed_greeter import Greeter, new_greeter
from tests.support.documents import PROMOTION_STATUS, PROMOTION_STATUSES
from tests.support.graphql_client import GraphQLClient
from tests.support.graphql_ws import ws_url
from tests.support.node import JS, node_with_packages, run_script
from tests.support.servers import Embedded


@pytest.fixture(scope="session")
def follow_promotion() -> list[str]:
    """The command that runs js/follow-promotion.mjs."""
    return [node_with_packages(), str(JS / "follow-promotion.mjs")]


async def run_node(
    command: list[str], url: str, token: str, promotion_id: str
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the graphql-ws client following the promotion."""
    env = {"PROMENADE_WS_URL": ws_url(url), "PROMENADE_TOKEN": token}
    return await run_script([*command, promotion_id], env)


def assert_followed_to_success(greeter_statuses: list[dict[str, Any]], promotion_id: str) -> None:
    """The client saw the statuses from the one current when it subscribed to SUCCEEDED, in
    order, each once."""
    statuses = [status["status"] for status in greeter_statuses]
    assert statuses, "the client saw nothing"
    assert statuses == PROMOTION_STATUSES[-len(statuses) :], statuses
    # It subscribed while the new instance was starting: it saw the promotion move.
    assert len(statuses) >= 2, statuses
    assert {status["promotionId"] for status in greeter_statuses} == {promotion_id}


async def slow_promotion(admin: GraphQLClient) -> tuple[Greeter, str]:
    """A promotion whose new instance takes two seconds to start: the client, started once
    the promotion is requested, subscribes while it runs."""
    greeter = await new_greeter(admin)
    return greeter, await greeter.promote({"START_DELAY": "2"})


async def test_graphql_ws_follows_a_promotion_to_succeeded(
    embedded: Embedded, admin: GraphQLClient, follow_promotion: list[str]
) -> None:
    greeter, promotion_id = await slow_promotion(admin)
    code, stdout, stderr = await run_node(
        follow_promotion, embedded.url, embedded.token, promotion_id
    )
    assert code == 0, stderr
    assert_followed_to_success([json.loads(line) for line in stdout.splitlines()], promotion_id)
    assert (await greeter.promotion(promotion_id))["status"] == "SUCCEEDED"


async def test_graphql_ws_is_refused_without_a_valid_token(
    embedded: Embedded, admin: GraphQLClient, follow_promotion: list[str]
) -> None:
    code, stdout, stderr = await run_node(follow_promotion, embedded.url, "not-a-token", "pro_x")
    assert code == 2, (stdout, stderr)
    assert json.loads(stderr.splitlines()[-1])["closed"] == 4403
    assert stdout == ""


GQL_SUBPROTOCOLS = pytest.mark.parametrize(
    "subprotocols",
    [
        # As gql comes: it offers the legacy graphql-ws protocol first, then
        # graphql-transport-ws, and speaks the one the server picks.
        None,
        [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    ],
    ids=["gql defaults", "graphql-transport-ws only"],
)


@GQL_SUBPROTOCOLS
async def test_gql_follows_a_promotion_to_succeeded(
    embedded: Embedded, admin: GraphQLClient, subprotocols: list[str] | None
) -> None:
    """A script: it reads the target deployment, follows the promotion, and reads the
    deployment again, all over its one websocket."""
    greeter = await new_greeter(admin)
    deployment = GraphQLRequest(
        """query($i: ID!, $e: ID!) { integration(id: $i) {
            deployment(environmentId: $e) { status revision } } }""",
        variable_values={
            "i": greeter.integration_id,
            "e": greeter.environments["Production"],
        },
    )
    transport = WebsocketsTransport(
        url=ws_url(embedded.url),
        init_payload={"authorization": f"Bearer {embedded.token}"},
        subprotocols=subprotocols,
    )
    seen = []
    async with Client(transport=transport) as session:
        assert transport.subprotocol == WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL
        before = (await session.execute(deployment))["integration"]["deployment"]
        assert before["revision"] == 0, before
        promotion_id = await greeter.promote({"START_DELAY": "2"})
        request = GraphQLRequest(PROMOTION_STATUS, variable_values={"id": promotion_id})
        async with asyncio.timeout(60):
            async for result in session.subscribe(request):
                seen.append(result["promotionStatus"])
        after = (await session.execute(deployment))["integration"]["deployment"]
    assert_followed_to_success(seen, promotion_id)
    assert after == {"status": "ACTIVE", "revision": 1}
    assert (await greeter.promotion(promotion_id))["status"] == "SUCCEEDED"


@GQL_SUBPROTOCOLS
async def test_gql_is_refused_without_a_valid_token(
    embedded: Embedded, subprotocols: list[str] | None
) -> None:
    transport = WebsocketsTransport(
        url=ws_url(embedded.url),
        init_payload={"authorization": "Bearer not-a-token"},
        subprotocols=subprotocols,
    )
    with pytest.raises(TransportConnectionFailed) as closed:
        async with Client(transport=transport) as session:
            request = GraphQLRequest(PROMOTION_STATUS, variable_values={"id": "pro_x"})
            async for _ in session.subscribe(request):
                pytest.fail("an event without a valid token")
    cause = closed.value.__cause__
    assert isinstance(cause, ConnectionClosed), repr(closed.value)
    assert cause.rcvd is not None and cause.rcvd.code == 4403
