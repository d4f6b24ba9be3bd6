"""app/client/transport.py and errors.py: what the CLI says when the API answers with something
else than data, for each way an answer can go wrong, over HTTP (an httpx mock transport) and
over graphql-transport-ws (a websockets server in the test that plays the API's part).

The CLI's own tests (test_cli_client.py) run the same code against a real server; these
reach the answers a real server gives rarely (a proxy's HTML page, a restart mid-subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from app.client.api import PromenadeAPI
from app.client.errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    Refused,
    RequestFailed,
    RequestFiled,
    ServerUnreachable,
    Unauthenticated,
)
from app.client.transport import GraphQLClient

URL = "http://promenade.test"
TOKEN = "prm_test-token"
Handler = Callable[[httpx.Request], httpx.Response]
Script = Callable[[ServerConnection], Awaitable[None]]


def http_client(handler: Handler) -> GraphQLClient:
    return GraphQLClient(URL, TOKEN, transport=httpx.MockTransport(handler))


async def execute(handler: Handler, operation: str = "ViewerOrganizations") -> dict[str, Any]:
    async with http_client(handler) as client:
        return await client.execute(operation)


# ---- HTTP --------------------------------------------------------------------------------------


async def test_a_request_is_the_named_operation_with_its_fragments_and_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"deployment": None}})

    async with http_client(handler) as client:
        data = await client.execute("Deployment", {"id": "dep_1"})
    assert data == {"deployment": None}
    (request,) = seen
    assert request.url == f"{URL}/graphql"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.content)
    assert body["variables"] == {"id": "dep_1"}
    assert body["query"].startswith("query Deployment($id: ID!)")
    assert "fragment DeploymentFields on Deployment" in body["query"]
    assert "fragment PromotionFields" not in body["query"]


async def test_a_refused_token_says_how_to_give_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"errors": [{"message": "a valid token is required"}]})

    with pytest.raises(Unauthenticated) as raised:
        await execute(handler)
    assert str(raised.value) == (
        f"Promenade at {URL}/graphql refused the token (HTTP 401): set PROMENADE_TOKEN or "
        "--token to a valid API token"
    )
    assert raised.value.exit_code == 1


async def test_graphql_errors_are_one_line_with_their_codes() -> None:
    errors = [
        {"message": "no integration int_1", "extensions": {"code": "NOT_FOUND"}},
        {"message": "and another"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": None, "errors": errors})

    with pytest.raises(RequestFailed) as raised:
        await execute(handler)
    assert str(raised.value) == "no integration int_1; and another"
    assert raised.value.codes == ("NOT_FOUND",)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            f"{URL}/graphql answered HTTP 502 without a GraphQL response (is this a Promenade "
            "API URL?)",
        ),
        (
            httpx.Response(200, json=["not", "an", "object"]),
            f"{URL}/graphql answered HTTP 200 without a GraphQL response (is this a Promenade "
            "API URL?)",
        ),
        (httpx.Response(500, json={"data": {"viewer": None}}), f"{URL}/graphql answered HTTP 500"),
        (httpx.Response(200, json={"data": None}), f"{URL}/graphql answered HTTP 200"),
    ],
    ids=["html", "not an object", "500 with data", "no data"],
)
async def test_an_answer_that_is_no_graphql_response_is_named(
    response: httpx.Response, message: str
) -> None:
    with pytest.raises(ClientError) as raised:
        await execute(lambda request: response)
    assert type(raised.value) is ClientError
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx.ReadTimeout("slow"), f"Promenade at {URL}/graphql did not answer within 30 s"),
        (
            httpx.ConnectError("connection refused"),
            f"cannot reach Promenade at {URL}/graphql: connection refused",
        ),
    ],
    ids=["timeout", "refused"],
)
async def test_no_answer_is_server_unreachable(failure: httpx.HTTPError, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(ServerUnreachable) as raised:
        await execute(handler)
    assert str(raised.value) == message


def test_a_url_that_is_no_http_url_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ClientError, match="must be http:// or https://, not 'ftp://x'"):
        GraphQLClient("ftp://x", TOKEN)


# ---- mutation results --------------------------------------------------------------------------


def deploy_answering(result: dict[str, Any]) -> Handler:
    return lambda request: httpx.Response(200, json={"data": {"deploy": result}})


async def deploy(result: dict[str, Any]) -> None:
    async with http_client(deploy_answering(result)) as client:
        await PromenadeAPI(client).deploy(
            {"integrationId": "int_1", "buildId": "bld_1", "environmentId": "env_1"}
        )


async def test_an_error_type_is_refused_with_its_code_and_keys() -> None:
    with pytest.raises(Refused) as raised:
        await deploy(
            {
                "__typename": "MissingConfigurationError",
                "errorCode": "MISSING_CONFIGURATION",
                "errorMessage": "Development lacks required configuration",
                "missingKeys": ["GREETING", "API_KEY"],
            }
        )
    refused = raised.value
    assert (refused.typename, refused.code, refused.exit_code) == (
        "MissingConfigurationError",
        "MISSING_CONFIGURATION",
        2,
    )
    assert refused.missing_keys == ("GREETING", "API_KEY")
    assert refused.detail() == (
        "Development lacks required configuration (missing: GREETING, API_KEY)"
    )


async def test_a_change_that_became_a_request_is_filed_not_failed() -> None:
    with pytest.raises(RequestFiled) as raised:
        await deploy({"__typename": "Promotion", "id": "pro_1", "requiredApprovals": 2})
    assert raised.value.exit_code == 0
    assert (raised.value.request_id, raised.value.required_approvals) == ("pro_1", 2)
    assert "waiting for 2 approval(s) (request pro_1" in str(raised.value)


async def test_not_found_error_is_not_found() -> None:
    with pytest.raises(NotFound, match="no build bld_1"):
        await deploy(
            {
                "__typename": "NotFoundError",
                "errorCode": "NOT_FOUND",
                "errorMessage": "no build bld_1",
            }
        )


async def test_pages_are_followed_to_the_last() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        after = json.loads(request.content)["variables"]["after"]
        node, has_next, cursor = {
            None: ({"id": "bld_1", "version": "1.0.0", "commit": None}, True, "c1"),
            "c1": ({"id": "bld_2", "version": "2.0.0", "commit": "abc"}, False, None),
        }[after]
        builds = {
            "edges": [{"node": node}],
            "pageInfo": {"hasNextPage": has_next, "endCursor": cursor},
        }
        return httpx.Response(200, json={"data": {"integration": {"builds": builds}}})

    async with http_client(handler) as client:
        build = await PromenadeAPI(client).find_build("int_1", "2.0.0")
    assert build == {"id": "bld_2", "version": "2.0.0", "commit": "abc"}


# ---- graphql-transport-ws ----------------------------------------------------------------------


async def receive(websocket: ServerConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await websocket.recv())
    return message


async def send(websocket: ServerConnection, message: dict[str, Any]) -> None:
    await websocket.send(json.dumps(message))


async def acknowledge(websocket: ServerConnection) -> dict[str, Any]:
    """connection_init answered; the subscribe message that follows."""
    init = await receive(websocket)
    assert init == {"type": "connection_init", "payload": {"authorization": f"Bearer {TOKEN}"}}
    await send(websocket, {"type": "connection_ack"})
    subscribe = await receive(websocket)
    assert subscribe["type"] == "subscribe"
    return subscribe


@contextlib.asynccontextmanager
async def api_server(
    script: Script, refuse_with: int | None = None
) -> AsyncIterator[GraphQLClient]:
    """A websockets server that runs ``script`` on each connection (or refuses the handshake
    with HTTP ``refuse_with``), and a client of it."""

    async def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await script(websocket)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if refuse_with is None:
            return None
        return Response(refuse_with, "Refused", Headers(), b"")

    async with serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        process_request=process_request,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with GraphQLClient(f"http://127.0.0.1:{port}", TOKEN) as client:
            yield client


async def statuses(client: GraphQLClient) -> list[str]:
    return [event["status"] async for event in PromenadeAPI(client).promotion_status("pro_1")]


def event(subscribe: dict[str, Any], status: str) -> dict[str, Any]:
    payload = {"promotionId": "pro_1", "status": status, "detail": None, "at": "2026-12-02"}
    return {
        "id": subscribe["id"],
        "type": "next",
        "payload": {"data": {"promotionStatus": payload}},
    }


async def test_a_subscription_yields_each_next_until_complete_and_answers_pings() -> None:
    pongs: list[dict[str, Any]] = []

    async def script(websocket: ServerConnection) -> None:
        subscribe = await acknowledge(websocket)
        assert subscribe["payload"]["variables"] == {"id": "pro_1"}
        assert subscribe["payload"]["query"].startswith("subscription PromotionStatus")
        await send(websocket, event(subscribe, "QUEUED"))
        await send(websocket, {"type": "ping"})
        pongs.append(await receive(websocket))
        await send(websocket, event(subscribe, "SUCCEEDED"))
        await send(websocket, {"id": subscribe["id"], "type": "complete"})
        await websocket.wait_closed()

    async with api_server(script) as client:
        assert await statuses(client) == ["QUEUED", "SUCCEEDED"]
    assert pongs == [{"type": "pong"}]


async def test_closing_a_subscription_early_sends_complete() -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def script(websocket: ServerConnection) -> None:
        subscribe = await acknowledge(websocket)
        await send(websocket, event(subscribe, "QUEUED"))
        await received.put(await receive(websocket))
        await websocket.wait_closed()

    async with api_server(script) as client:
        events = PromenadeAPI(client).promotion_status("pro_1")
        async with contextlib.aclosing(events):
            first = await anext(events)
        assert first["status"] == "QUEUED"
        assert await asyncio.wait_for(received.get(), 5) == {"id": "1", "type": "complete"}


async def test_an_error_message_is_request_failed_with_its_codes() -> None:
    async def script(websocket: ServerConnection) -> None:
        subscribe = await acknowledge(websocket)
        errors = [{"message": "no promotion with id pro_1", "extensions": {"code": "NOT_FOUND"}}]
        await send(websocket, {"id": subscribe["id"], "type": "error", "payload": errors})
        await websocket.wait_closed()

    async with api_server(script) as client:
        with pytest.raises(RequestFailed) as raised:
            await statuses(client)
    assert str(raised.value) == "no promotion with id pro_1"
    assert raised.value.codes == ("NOT_FOUND",)


async def test_a_refused_token_closes_with_4403_and_says_so() -> None:
    async def script(websocket: ServerConnection) -> None:
        await receive(websocket)
        await websocket.close(4403, "Forbidden")

    async with api_server(script) as client:
        with pytest.raises(Unauthenticated) as raised:
            await statuses(client)
    assert str(raised.value) == (
        f"Promenade at {client.websocket_url} refused the token (close code 4403): set "
        "PROMENADE_TOKEN or --token to a valid API token"
    )


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013])
async def test_a_restarting_server_is_a_lost_connection_worth_reconnecting(code: int) -> None:
    """What follow_promotion reconnects after (with backoff): ConnectionLost."""

    async def script(websocket: ServerConnection) -> None:
        subscribe = await acknowledge(websocket)
        await send(websocket, event(subscribe, "QUEUED"))
        await websocket.close(code, "going away")

    async with api_server(script) as client:
        with pytest.raises(ConnectionLost) as raised:
            await statuses(client)
    assert str(raised.value) == (
        f"the connection to {client.websocket_url} was lost (code {code}: going away)"
    )


async def test_a_normal_close_mid_subscription_is_no_lost_connection() -> None:
    async def script(websocket: ServerConnection) -> None:
        await acknowledge(websocket)
        await websocket.close(4400, "Invalid subscribe payload")

    async with api_server(script) as client:
        with pytest.raises(ClientError) as raised:
            await statuses(client)
    assert type(raised.value) is ClientError
    assert str(raised.value) == (
        f"Promenade at {client.websocket_url} closed the connection "
        "(code 4400: Invalid subscribe payload)"
    )


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, Unauthenticated, "refused the token (HTTP 401)"),
        (403, ClientError, "refused the websocket connection (HTTP 403)"),
    ],
)
async def test_a_refused_handshake_names_its_status(
    status: int, error: type[ClientError], message: str
) -> None:
    async def script(websocket: ServerConnection) -> None:
        raise AssertionError("refused before any message")

    async with api_server(script, refuse_with=status) as client:
        with pytest.raises(error) as raised:
            await statuses(client)
    assert type(raised.value) is error
    assert str(raised.value).endswith(message)


async def test_no_server_is_server_unreachable() -> None:
    async def script(websocket: ServerConnection) -> None:
        await acknowledge(websocket)

    async with api_server(script) as client:
        url = client.url
    # The server is gone: nothing listens on its port now.
    async with GraphQLClient(url, TOKEN) as client:
        with pytest.raises(ServerUnreachable, match=f"cannot reach Promenade at {url}"):
            await statuses(client)


async def test_subscribed_is_set_once_the_connection_is_acknowledged() -> None:
    """EventPump sends its change once ``subscribed`` is set (or after a while without)."""
    subscribed = asyncio.Event()
    reached = asyncio.Event()

    async def script(websocket: ServerConnection) -> None:
        await acknowledge(websocket)
        reached.set()
        await websocket.wait_closed()

    async with api_server(script) as client:
        events = PromenadeAPI(client).deployment_events(
            environment_id="env_1", integration_id="int_1", subscribed=subscribed
        )
        pump = asyncio.create_task(anext(events))
        await asyncio.wait_for(subscribed.wait(), 5)
        await asyncio.wait_for(reached.wait(), 5)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await events.aclose()
