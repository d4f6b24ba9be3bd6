"""The floor of fan-out for bench/subscribers.py: a bare broadcaster on the same server stack
as Promenade (uvicorn, its websockets, permessage-deflate when a client offers it).

It speaks just enough graphql-transport-ws for the benchmark's clients (``connection_init`` is
acknowledged, whatever it holds; a ``subscribe`` is remembered by its id) and, for each event
POSTed to ``/publish``, serializes one ``next`` frame and writes that text to every socket in
turn: no GraphQL, no authorization, no queues. What the same clients measure against it is what
the server stack and the clients' own CPU cost.

    python -m bench.broadcaster PORT     # prints "ready" once it listens
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# Open sockets -> the id of their subscription.
SOCKETS: dict[WebSocket, str] = {}


async def graphql(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="graphql-transport-ws")
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("type") == "connection_init":
                await websocket.send_text('{"type":"connection_ack"}')
            elif message.get("type") == "subscribe":
                SOCKETS[websocket] = str(message["id"])
            elif message.get("type") == "ping":
                await websocket.send_text('{"type":"pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        SOCKETS.pop(websocket, None)


async def publish(request: Request) -> JSONResponse:
    event: dict[str, Any] = await request.json()
    event["at"] = datetime.now(UTC).isoformat()
    payload = json.dumps({"data": {"deploymentEvents": event}}, separators=(",", ":"))
    frames: dict[str, str] = {}
    sent = 0
    for websocket, operation_id in list(SOCKETS.items()):
        frame = frames.get(operation_id)
        if frame is None:
            frame = f'{{"id":{json.dumps(operation_id)},"type":"next","payload":{payload}}}'
            frames[operation_id] = frame
        try:
            await websocket.send_text(frame)
            sent += 1
        except (WebSocketDisconnect, RuntimeError):
            SOCKETS.pop(websocket, None)
    return JSONResponse({"sent": sent})


app = Starlette(
    routes=[WebSocketRoute("/graphql", graphql), Route("/publish", publish, methods=["POST"])]
)


class _Server(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        print("ready", flush=True)


def main() -> None:
    port = int(sys.argv[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    _Server(config).run()


if __name__ == "__main__":
    main()
