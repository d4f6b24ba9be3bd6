"""The security matrix's subscriptions (tests/graphql/test_security_matrix.py has the queries
and mutations), over real websockets: every subscription field that takes an ID, generated
from schema.graphql, subscribed to with another organization's IDs by each role of the
caller's own organization, ends with a NOT_FOUND error and sends nothing of the other
organization."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from app.models import Role
from tests.graphql.governance import Live, World, add_member, governed_world, live_api
from tests.graphql.test_security_matrix import (
    SCHEMA,
    Matrix,
    calls,
    document,
    fields_with_ids,
    ids_of,
)

# The subscriptions this module calls; the security matrix checks that it is all of them.
COVERED = {"promotionStatus", "deploymentEvents", "approvalRequests", "releaseStatus"}


@pytest.fixture
async def live_matrix(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[tuple[Live, Matrix]]:
    async with live_api(engine, session, secret_key, tmp_path) as live:
        api = live.api
        world = await governed_world(api, session)
        callers = {Role.ADMIN: world.admin}
        for role in (Role.DEVELOPER, Role.APPROVER, Role.VIEWER):
            callers[role] = await add_member(api, session, world.org, f"sub-{role.value}", role)
        own = await ids_of(api, session, world.org, world)
        other = World(
            org=world.other,
            other=world.org,
            members={},
            integrations=world.integrations,
            development=world.other.environments["Development"],
            production=world.other.environments["Production"],
        )
        foreign = await ids_of(api, session, world.other, other)
        yield live, Matrix(api, world, callers, own, foreign)


async def outcome(live: Live, token: str, query: str, variables: dict[str, Any]) -> list[Any]:
    """What the subscription sends, until it ends."""
    url = live.url.replace("http://", "ws://") + "/graphql"
    async with connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None
    ) as connection:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await connection.send(json.dumps(init))
        assert json.loads(await connection.recv()) == {"type": "connection_ack"}
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
        await connection.send(json.dumps(subscribe))
        sent = []
        async with asyncio.timeout(10):
            while True:
                message = json.loads(await connection.recv())
                if message["type"] == "ping":
                    await connection.send(json.dumps({"type": "pong"}))
                    continue
                sent.append(message)
                if message["type"] in ("complete", "error"):
                    return sent


def ended_not_found(sent: list[Any]) -> bool:
    errors = []
    for message in sent:
        if message["type"] == "error":
            errors += message["payload"]
        elif message["type"] == "next":
            if message["payload"].get("data"):
                return False  # something of the other organization was sent
            errors += message["payload"].get("errors") or []
    return bool(errors) and all(e.get("extensions", {}).get("code") == "NOT_FOUND" for e in errors)


async def test_another_organizations_ids_end_every_subscription_as_not_found(
    live_matrix: tuple[Live, Matrix],
) -> None:
    live, matrix = live_matrix
    fields = fields_with_ids(SCHEMA.subscription_type)
    assert {name for name, _ in fields} == COVERED
    failures = []
    for field_name, field in fields:
        query = document("subscription", field_name, field)
        for variables in calls(field_name, field, matrix.own, matrix.foreign):
            for role, caller in matrix.callers.items():
                token = await live.api.token_for(caller)
                sent = await outcome(live, token, query, variables)
                if not ended_not_found(sent):
                    failures.append(f"{role.value} {field_name}({variables}): {sent}")
    assert not failures, "\n".join(failures)
