"""Clients that try to keep power they lost, or to hurt the API for others, through the real
transports (uvicorn serving the app, real HTTP, real websockets): a revoked token loses its
open socket, a removed member its subscriptions, and malformed or oversized requests get a
4xx (or the protocol's close code) and change nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from app.graphql.refusals import MAX_DOCUMENT_CHARS
from app.services.access_watch import MAX_FAILED_READINGS, AccessWatch, Reading
from tests.graphql.governance import Live, World, governed_world, live_api

RECHECK_S = 0.5
# How long a socket may wait before connection_init here (5 s by default).
INIT_WAIT_S = 0.5
PROTOCOL = [Subprotocol("graphql-transport-ws")]
EVENTS = "subscription($e: ID) { deploymentEvents(environmentId: $e) { deploymentId status } }"


@pytest.fixture
async def live(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[tuple[Live, World]]:
    async with live_api(
        engine,
        session,
        secret_key,
        tmp_path,
        ws_recheck_s=RECHECK_S,
        ws_init_wait_s=INIT_WAIT_S,
        ws_per_user=3,
    ) as served:
        yield served, await governed_world(served.api, session)


def ws_url(live: Live) -> str:
    return live.url.replace("http://", "ws://") + "/graphql"


async def initialized(live: Live, token: str) -> ClientConnection:
    connection = await connect(ws_url(live), subprotocols=PROTOCOL, proxy=None)
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await connection.send(json.dumps(init))
    assert json.loads(await asyncio.wait_for(connection.recv(), 10)) == {"type": "connection_ack"}
    return connection


async def closed_with(connection: ClientConnection, within: float = 10) -> int | None:
    """The close code the server ends the connection with (pings answered meanwhile)."""
    try:
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await connection.recv())
                if message.get("type") == "ping":
                    await connection.send(json.dumps({"type": "pong"}))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


async def test_a_revoked_token_loses_its_open_socket(live: tuple[Live, World]) -> None:
    served, world = live
    token = await served.api.token_for(world.developer)
    connection = await initialized(served, token)
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": EVENTS, "variables": {"e": world.development}},
    }
    await connection.send(json.dumps(subscribe))
    tokens = await served.api.execute("{ viewer { apiTokens { id } } }", as_user=world.developer)
    for api_token in tokens["viewer"]["apiTokens"]:
        revoked = await served.api.execute(
            "mutation($id: ID!) { revokeApiToken(id: $id) { __typename } }",
            {"id": api_token["id"]},
            as_user=world.developer,
        )
        assert revoked["revokeApiToken"]["__typename"] == "Deleted"

    assert await closed_with(connection, within=RECHECK_S * 6) == 4403


async def test_an_operation_on_a_socket_whose_token_was_revoked_is_refused(
    live: tuple[Live, World], engine: AsyncEngine
) -> None:
    served, world = live
    token = await served.api.token_for(world.developer)
    connection = await initialized(served, token)
    async with engine.begin() as database:
        await database.execute(text("DELETE FROM api_tokens"))
    # Before the next periodic check: the operation itself is refused.
    create = {
        "id": "2",
        "type": "subscribe",
        "payload": {"query": 'mutation { createApiToken(name: "again") { __typename } }'},
    }
    await connection.send(json.dumps(create))
    assert await closed_with(connection) == 4403


async def test_a_removed_member_loses_its_subscriptions(live: tuple[Live, World]) -> None:
    served, world = live
    viewer = world.members["viewer"]
    connection = await initialized(served, await served.api.token_for(viewer))
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": EVENTS, "variables": {"e": world.development}},
    }
    await connection.send(json.dumps(subscribe))
    removed = await served.api.execute(
        "mutation($o: ID!, $u: ID!) { removeMember(organizationId: $o, userId: $u) "
        "{ __typename } }",
        {"o": world.org.id, "u": viewer.id},
        as_user=world.admin,
    )
    assert removed["removeMember"]["__typename"] == "Deleted"
    async with asyncio.timeout(RECHECK_S * 6):
        message = json.loads(await connection.recv())
        ended = json.loads(await connection.recv())
    # The subscription ends with an error, as for an object of another organization.
    assert message["type"] == "next", message
    assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert ended == {"id": "1", "type": "complete"}
    await connection.close()


async def test_a_socket_whose_token_cannot_be_checked_closes_after_a_few_tries(
    live: tuple[Live, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database not answering the token checks: not forever accepted."""
    served, world = live
    token = await served.api.token_for(world.developer)
    connection = await initialized(served, token)

    async def unanswered(self: AccessWatch, *args: object) -> Reading:
        raise ConnectionError("the database does not answer")

    monkeypatch.setattr(AccessWatch, "read", unanswered)
    assert await closed_with(connection, within=RECHECK_S * (MAX_FAILED_READINGS + 4)) == 1011


async def test_malformed_and_idle_sockets_are_closed_with_the_protocols_codes(
    live: tuple[Live, World],
) -> None:
    served, world = live
    token = await served.api.token_for(world.developer)
    for payload in ("a string", None, {"query": 42}, {"query": "{ __typename }", "variables": 1}):
        connection = await initialized(served, token)
        await connection.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        assert await closed_with(connection) == 4400, payload
    for operation_id in (1, None, ["1"]):
        connection = await initialized(served, token)
        frame = {"id": operation_id, "type": "subscribe", "payload": {"query": "{ __typename }"}}
        await connection.send(json.dumps(frame))
        assert await closed_with(connection) == 4400, operation_id
    connection = await initialized(served, token)
    await connection.send("not json")
    assert await closed_with(connection) == 4400

    # A message over the body limit (1 MiB): uvicorn closes with 1009, message too big.
    connection = await initialized(served, token)
    huge = {"id": "1", "type": "subscribe", "payload": {"query": "#" + "x" * (2 << 20)}}
    await connection.send(json.dumps(huge))
    assert await closed_with(connection) == 1009

    # No connection_init: closed after the wait (ws_init_wait_s; the protocol's code 4408).
    silent = await connect(ws_url(served), subprotocols=PROTOCOL, proxy=None)
    assert await closed_with(silent, within=10) == 4408


async def test_a_user_holds_a_bounded_number_of_sockets(live: tuple[Live, World]) -> None:
    served, world = live
    token = await served.api.token_for(world.developer)
    held = [await initialized(served, token) for _ in range(3)]
    extra = await connect(ws_url(served), subprotocols=PROTOCOL, proxy=None)
    await extra.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert await closed_with(extra) == 4429
    await held.pop().close()
    await asyncio.sleep(0.2)
    held.append(await initialized(served, token))  # room again
    for connection in held:
        await connection.close()


async def test_too_many_sockets_from_one_address_are_refused_at_the_handshake(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> None:
    async with live_api(engine, session, secret_key, tmp_path, ws_per_address=2) as served:
        first = await connect(ws_url(served), subprotocols=PROTOCOL, proxy=None)
        second = await connect(ws_url(served), subprotocols=PROTOCOL, proxy=None)
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(served), subprotocols=PROTOCOL, proxy=None)
        assert refused.value.response.status_code == 403
        await first.close()
        await second.close()


async def post(live: Live, token: str, content: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.url, trust_env=False, timeout=30) as http:
        return await http.post(
            "/graphql",
            content=content,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                **headers,
            },
        )


async def test_malformed_or_oversized_requests_get_a_4xx(live: tuple[Live, World]) -> None:
    served, world = live
    token = await served.api.token_for(world.members["viewer"])
    comment = "#" + "x" * (MAX_DOCUMENT_CHARS + 10) + "\n{ __typename }"
    cases: list[tuple[bytes, int, str]] = [
        (b'"hello"', 400, "must be a JSON object"),
        (b"null", 400, "must be a JSON object"),
        (b"[1, 2]", 400, "must be a JSON object"),
        ('{"query": "{ __typename }"}'.encode("utf-16"), 400, "not UTF-8"),
        (b"{not json", 400, "not JSON"),
        (b'{"query": 7}', 400, "query must be a string"),
        (b'{"query": "{ __typename }", "variables": [1]}', 400, "variables"),
        (json.dumps({"query": comment}).encode(), 413, "characters"),
        (b"x" * (2 << 20), 413, "over 1048576 bytes"),
        (b'{"query": "{ deployment(id: \\"\\\\u0000\\") { id } }"}', 400, "NUL"),
        (b'{"query": "{ deployment(id: \\"\\\\u{0}\\") { id } }"}', 400, "NUL"),
        (json.dumps({"query": EVENTS}).encode(), 400, "subscribe over a websocket"),
        # Nested deeper than Python's stack: refused, not a RecursionError.
        (b"[" * 100_000, 400, "not JSON"),
        (b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 100_000 + b"}", 400, "JSON"),
        # Half a surrogate pair: no UTF-8 text holds it, nor can an error message quote it.
        (b'{"query": "{ __typename }", "operationName": "\\ud800"}', 400, "surrogates"),
        (
            b'{"query": "{ node(id: \\"x\\") { id } }", "variables": {"\\udfff": 1}}',
            400,
            "surrogates",
        ),
        (
            b'{"query": "query($i: ID!) { deployment(id: $i) { id } }", '
            b'"variables": {"i": "\\u0000"}}',
            400,
            "NUL",
        ),
    ]
    for body, status, says in cases:
        response = await post(served, token, body)
        assert response.status_code == status, (body[:40], response.text[:200])
        (error,) = response.json()["errors"]
        assert says in error["message"], (body[:40], error)
    # Strawberry reads every content type that mentions application/json as JSON: each is
    # checked as one; anything else is not read at all.
    for content_type in ("text/plain", "application/graphql-response+json", ""):
        response = await post(
            served, token, b'{"query": "{ __typename }"}', **{"Content-Type": content_type}
        )
        assert response.status_code == 415, content_type
    response = await post(served, token, b'"hello"', **{"Content-Type": "text/application/jsonx"})
    assert response.status_code == 400
    # The API still answers everyone.
    ok = await post(served, token, b'{"query": "{ __typename }"}')
    assert ok.json() == {"data": {"__typename": "Query"}}


async def test_production_mode_hides_the_schema(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> None:
    async with live_api(engine, session, secret_key, tmp_path, production=True) as served:
        world = await governed_world(served.api, session)
        token = await served.api.token_for(world.admin)
        introspection = await post(served, token, b'{"query": "{ __schema { types { name } } }"}')
        body: dict[str, Any] = introspection.json()
        assert "data" not in body or body["data"] is None
        assert "introspection" in json.dumps(body["errors"]).lower()
        for typo in (
            '{ organizationz(slug: "acme") { id } }',  # a field
            '{ organization(slugg: "acme") { id } }',  # an argument
            '{ organization(slug: "acme") { ... on Organizatio { id } } }',  # a type
            'query($r: Rol) { organization(slug: "acme") { id } }',  # a variable's type
        ):
            answer = await post(served, token, json.dumps({"query": typo}).encode())
            assert answer.status_code in (200, 400)
            messages = [e["message"] for e in answer.json()["errors"]]
            assert messages and not any("Did you mean" in m for m in messages), messages


async def test_clients_that_vanish_mid_request_leave_no_tracebacks(
    engine: AsyncEngine,
    session: AsyncSession,
    secret_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sockets cut off while their operations read the database (DataLoader batches among
    them): every session is closed cleanly, nothing is logged as an error."""
    async with live_api(engine, session, secret_key, tmp_path, ws_per_user=1000) as served:
        world = await governed_world(served.api, session)
        await _vanishing_clients(served, world, caplog)


async def _vanishing_clients(served: Live, world: World, caplog: pytest.LogCaptureFixture) -> None:
    token = await served.api.token_for(world.admin)
    query = "{ viewer { memberships { organization { environments { name } } } } }"

    async def vanish(n: int) -> None:
        connection = await initialized(served, token)
        for operation, document in enumerate((EVENTS, query)):
            await connection.send(
                json.dumps(
                    {"id": str(operation), "type": "subscribe", "payload": {"query": document}}
                )
            )
        await asyncio.sleep(0.01 * (n % 50))
        connection.transport.abort()

    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(vanish(n) for n in range(150)), return_exceptions=True)
        await asyncio.sleep(1.0)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [], [
        (r.getMessage(), r.exc_info[1] if r.exc_info else None) for r in problems
    ][:5]
