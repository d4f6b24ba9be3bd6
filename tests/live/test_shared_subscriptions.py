"""Subscriptions that many sockets share (app/graphql/broadcasts.py), on the app served by
uvicorn with real websocket clients: sockets asking the same question get one execution's
frames; a different role, different variables or a role that changes get answers of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, delete, update

from app.db import create_session_factory
from app.models import Membership, Role
from app.services.masking import OUTPUT_HEADING
from app.services.tokens import create_api_token
from tests.support.documents import DEPLOYMENT_EVENTS
from tests.support.graphql_ws import WsClient, data_of, error_codes
from tests.support.organizations import make_user
from tests.support.servers import LiveApp, live_app_on

RECHECK_S = 0.3
OUTPUT = "the instance printed this"


@pytest.fixture
async def live(live_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[LiveApp]:
    """Roles are read again every RECHECK_S."""
    async with live_app_on(live_engine, tmp_path, settings={"ws_recheck_s": RECHECK_S}) as app:
        yield app


async def member(live: LiveApp, name: str, role: Role) -> tuple[str, str]:
    """A new member of the live app's organization: their id and token."""
    async with create_session_factory(live.engine)() as session:
        user = await make_user(session, f"{name}@members.live.test")
        session.add(Membership(organization_id=live.organization_id, user_id=user.id, role=role))
        _, token = await create_api_token(session, actor=user, name="live")
        await session.commit()
        return user.id, token


async def set_role(live: LiveApp, user_id: str, role: Role | None) -> None:
    """The member's role in the live app's organization; None removes them from it."""
    membership = (
        col(Membership.user_id) == user_id,
        col(Membership.organization_id) == live.organization_id,
    )
    async with create_session_factory(live.engine)() as session:
        if role is None:
            await session.exec(delete(Membership).where(*membership))
        else:
            await session.exec(update(Membership).where(*membership).values(role=role))
        await session.commit()


async def failed_event(live: LiveApp) -> str:
    """Publishes a deployment event whose detail holds an instance's output; its detail."""
    message = live.deployment_event()
    message.body["status"] = "ERROR"
    message.body["detail"] = f"it exited with 1{OUTPUT_HEADING}{OUTPUT}"
    await live.publish(message)
    return str(message.body["detail"])


async def test_sockets_asking_the_same_question_share_one_execution(live: LiveApp) -> None:
    development = live.environments["Development"]
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(WsClient.connect(live.url, live.token))
            for _ in range(10)
        ]
        operations = [
            await client.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
            for client in clients
        ]
        await live.wait_subscribers(10)
        assert live.broadcasts.running == 1

        detail = await failed_event(live)
        received = [
            await client.message(operation)
            for client, operation in zip(clients, operations, strict=True)
        ]
        # Each under its own operation id, all with the one payload.
        assert [message["id"] for message in received] == operations
        assert all(message["payload"] == received[0]["payload"] for message in received)
        assert data_of(received[0], "deploymentEvents")["detail"] == detail

        # One socket leaves: the others go on with the same execution.
        await clients[0].complete(operations[0])
        await live.wait_subscribers(9)
        assert live.broadcasts.running == 1
        await failed_event(live)
        for client, operation in zip(clients[1:], operations[1:], strict=True):
            assert (await client.message(operation))["type"] == "next"
        assert clients[0].pending(operations[0]) == 0
    # All gone: the execution stopped and left the hub.
    await live.wait_subscribers(0)
    assert live.broadcasts.running == 0


async def test_different_roles_or_variables_get_answers_of_their_own(live: LiveApp) -> None:
    _, viewer_token = await member(live, "viewer", Role.VIEWER)
    development = live.environments["Development"]
    async with (
        WsClient.connect(live.url, live.token) as admin,
        WsClient.connect(live.url, viewer_token) as viewer,
    ):
        admins = await admin.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        viewers = await viewer.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        unfiltered = await admin.subscribe(DEPLOYMENT_EVENTS)
        await live.wait_subscribers(3)
        assert live.broadcasts.running == 3

        detail = await failed_event(live)
        # An instance's output is for ADMINs and DEVELOPERs only.
        assert data_of(await admin.message(admins), "deploymentEvents")["detail"] == detail
        assert data_of(await admin.message(unfiltered), "deploymentEvents")["detail"] == detail
        seen = data_of(await viewer.message(viewers), "deploymentEvents")["detail"]
        assert seen == "it exited with 1", seen


async def test_a_member_whose_role_changes_gets_what_the_new_role_may_see(
    live: LiveApp,
) -> None:
    developer_id, developer_token = await member(live, "developer", Role.DEVELOPER)
    async with (
        WsClient.connect(live.url, live.token) as admin,
        WsClient.connect(live.url, developer_token) as developer,
    ):
        admins = await admin.subscribe(DEPLOYMENT_EVENTS)
        developers = await developer.subscribe(DEPLOYMENT_EVENTS)
        await live.wait_subscribers(2)
        detail = await failed_event(live)
        assert data_of(await developer.message(developers), "deploymentEvents")["detail"] == detail
        assert data_of(await admin.message(admins), "deploymentEvents")["detail"] == detail

        await set_role(live, developer_id, Role.VIEWER)
        await asyncio.sleep(RECHECK_S * 4)  # the roles read again, and the socket moved
        detail = await failed_event(live)
        seen = data_of(await developer.message(developers), "deploymentEvents")["detail"]
        assert OUTPUT not in seen, seen
        # The admin's answer did not change with the other's role.
        assert data_of(await admin.message(admins), "deploymentEvents")["detail"] == detail


async def test_a_removed_member_of_a_shared_subscription_gets_not_found(live: LiveApp) -> None:
    developer_id, developer_token = await member(live, "removed", Role.DEVELOPER)
    development = live.environments["Development"]
    async with (
        WsClient.connect(live.url, live.token) as admin,
        WsClient.connect(live.url, developer_token) as developer,
    ):
        admins = await admin.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        removed = await developer.subscribe(DEPLOYMENT_EVENTS, {"environmentId": development})
        await live.wait_subscribers(2)
        await set_role(live, developer_id, None)
        assert error_codes(await developer.message(removed)) == ["NOT_FOUND"]
        assert (await developer.message(removed))["type"] == "complete"
        # The one who still belongs hears on.
        detail = await failed_event(live)
        assert data_of(await admin.message(admins), "deploymentEvents")["detail"] == detail
        assert developer.pending(removed) == 0
