"""graphql-transport-ws by hand, over ``websockets``: for tests that look at close codes and
raw messages (the real clients of frontends and scripts, graphql-ws and gql, are in
tests/live/test_real_clients.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


class WsClient:
    """One graphql-transport-ws connection. A reader task sorts the server's messages by
    operation id, each with the time it arrived."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._inboxes: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {}
        self._ids = 0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, http_url: str, token: str | None, **options: Any
    ) -> AsyncIterator[WsClient]:
        """Connected and acknowledged (``connection_init`` with ``{"authorization": "Bearer
        <token>"}``); closed afterwards."""
        async with raw_connection(http_url, **options) as connection:
            client = cls(connection)
            await connection.send(json.dumps(connection_init(token)))
            ack = json.loads(await asyncio.wait_for(connection.recv(), 10))
            assert ack == {"type": "connection_ack"}, ack
            client.start_reading()
            try:
                yield client
            finally:
                await client.stop_reading()

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.connection:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.connection.send(json.dumps({"type": "pong"}))
                    continue
                self._inbox(str(message.get("id"))).put_nowait((time.time(), message))

    def _inbox(self, operation_id: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        return self._inboxes.setdefault(operation_id, asyncio.Queue())

    async def subscribe(self, query: str, variables: Mapping[str, Any] | None = None) -> str:
        self._ids += 1
        operation_id = str(self._ids)
        await self.connection.send(
            json.dumps(
                {
                    "id": operation_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": dict(variables or {})},
                }
            )
        )
        return operation_id

    async def complete(self, operation_id: str) -> None:
        await self.connection.send(json.dumps({"id": operation_id, "type": "complete"}))

    async def timed_message(
        self, operation_id: str, within: float = 10
    ) -> tuple[float, dict[str, Any]]:
        """The next message of the operation and when it arrived (``time.time()``)."""
        try:
            return await asyncio.wait_for(self._inbox(operation_id).get(), within)
        except TimeoutError:
            pytest.fail(f"no message for operation {operation_id} within {within:g}s")

    async def message(self, operation_id: str, within: float = 10) -> dict[str, Any]:
        return (await self.timed_message(operation_id, within))[1]

    async def until_complete(self, operation_id: str, within: float = 30) -> list[dict[str, Any]]:
        """Every message of the operation up to and without its ``complete``."""
        deadline = time.monotonic() + within
        messages: list[dict[str, Any]] = []
        while True:
            message = await self.message(operation_id, max(0.0, deadline - time.monotonic()))
            if message["type"] == "complete":
                return messages
            messages.append(message)

    def pending(self, operation_id: str) -> int:
        """Messages of the operation that arrived and were not taken yet."""
        return self._inbox(operation_id).qsize()


def connection_init(token: str | None) -> dict[str, Any]:
    payload = {} if token is None else {"authorization": f"Bearer {token}"}
    return {"type": "connection_init", "payload": payload}


@contextlib.asynccontextmanager
async def raw_connection(http_url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A websocket to /graphql offering graphql-transport-ws, without the machine's proxy."""
    options.setdefault("proxy", None)
    options.setdefault("subprotocols", [PROTOCOL])
    async with connect(ws_url(http_url), **options) as connection:
        yield connection


def data_of(message: Mapping[str, Any], field_name: str) -> dict[str, Any]:
    """The payload of a ``next`` message without errors."""
    assert message["type"] == "next", message
    payload = message["payload"]
    assert not payload.get("errors"), payload
    result: dict[str, Any] = payload["data"][field_name]
    return result


def error_codes(message: Mapping[str, Any]) -> list[str]:
    """The extension codes of a ``next`` message's errors (or of an ``error`` message)."""
    payload = message["payload"]
    errors = payload if message["type"] == "error" else payload.get("errors") or []
    return [str((error.get("extensions") or {}).get("code")) for error in errors]
